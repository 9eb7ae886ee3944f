// The soak's fault plan (scripts/soak/plan.ts): a seed gives one sequence of faults, always the same, in range.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng, describe, nextFault, type Fault } from '../../scripts/soak/plan.js';

const OPTS = { leaseTtlMs: 10_000, workloads: ['api-v1', 'api-v2', 'web-v1'] };

function plan(seed: number, n: number): { fault: Fault; settleMs: number }[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => nextFault(rng, OPTS));
}

test('the same seed gives the same faults with the same parameters; another seed does not', () => {
  assert.deepEqual(plan(42, 200), plan(42, 200));
  assert.notDeepEqual(plan(42, 200), plan(43, 200));
  // A longer run plays a longer prefix of the same sequence.
  assert.deepEqual(plan(42, 200).slice(0, 50), plan(42, 50));
});

test('every kind comes up, and every parameter is in its range', () => {
  const faults = plan(7, 2_000);
  const kinds = new Set(faults.map((f) => f.fault.kind));
  assert.deepEqual([...kinds].sort(), ['agent-kill', 'dockerd-restart', 'env-change', 'etcd-cut', 'etcd-freeze', 'route-change']);
  for (const { fault: f, settleMs } of faults) {
    assert.ok(settleMs >= 1_000 && settleMs <= 5_000, describe(f));
    if (f.kind === 'etcd-cut' || f.kind === 'etcd-freeze') assert.ok(f.ms >= 1_000 && f.ms <= 15_000, describe(f));
    if (f.kind === 'agent-kill') assert.ok(f.downMs >= 0 && f.downMs <= 15_000, describe(f));
    if (f.kind === 'env-change') assert.ok(OPTS.workloads.includes(f.workload), describe(f));
    const change = 'change' in f ? f.change : undefined;
    if (change) assert.ok(change.v1 % 10 === 0 && change.v1 >= 0 && change.v1 <= 100, describe(f));
  }
  // Cuts and freezes go beyond the lease TTL (lease expiry) as well as stay within it.
  const ms = faults.flatMap((x) => (x.fault.kind === 'etcd-freeze' ? [x.fault.ms] : []));
  assert.ok(ms.some((m) => m > 10_000) && ms.some((m) => m < 10_000));
});
