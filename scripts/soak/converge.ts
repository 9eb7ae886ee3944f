// Waiting for the mesh to heal, and watching it at rest: observe, check every invariant, again, until they hold.
import { observe, type Observed, type Target } from './observe.js';
import { differences, type Expectations } from './checks.js';
import type { Tally } from './report.js';

export interface Watched {
  target: Target;
  expect: Expectations;
  agent: { pid: number | undefined };
}

export interface Converged {
  ok: boolean;
  /** performance.now() of the first observation on which every invariant held. */
  at: number;
  observed?: Observed;
  diffs: string[];
  /** What still differed at the last observation before the one that converged (why it took long). */
  before?: string[];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** One observation and what differs in it. */
async function look(w: Watched, tally: Tally): Promise<{ o: Observed; diffs: string[] }> {
  w.expect.agentPid = w.agent.pid;
  const started = performance.now();
  const o = await observe(w.target);
  const diffs = await differences(w.target, o, w.expect);
  tally.observed(performance.now() - started);
  return { o, diffs };
}

/** Observes (every 50 ms for 2 s, then every 200 ms) until every invariant holds, or `ms` passed (then the last differences). */
export async function converge(w: Watched, tally: Tally, ms: number): Promise<Converged> {
  const start = performance.now();
  const deadline = start + ms;
  let last: Converged = { ok: false, at: 0, diffs: ['never observed'] };
  for (;;) {
    try {
      const { o, diffs } = await look(w, tally);
      last = { ok: diffs.length === 0, at: performance.now(), observed: o, diffs, before: last.diffs };
      if (last.ok) return last;
    } catch (err) {
      last = { ...last, ok: false, diffs: [`observing failed: ${(err as Error).message}`] };
    }
    if (performance.now() > deadline) return last;
    await sleep(performance.now() - start < 2_000 ? 50 : 200);
  }
}

/** Container id per rendered compose service that has exactly one container. */
export function idsOf(o: Observed): Record<string, string> {
  const out: Record<string, string> = {};
  for (const svc of o.rendered.composeServices) {
    const list = o.containers.filter((c) => c.service === svc);
    if (list.length === 1) out[svc] = list[0]!.id;
  }
  return out;
}

/**
 * After `first` (converged): `n` more observations 1 s apart. Every invariant must hold in each, no container
 * change, and etcd must not move at all (an idle agent writes nothing; the soak writes nothing meanwhile).
 */
export async function atRest(w: Watched, tally: Tally, first: Observed, n = 10): Promise<string[]> {
  const diffs: string[] = [];
  const ids = JSON.stringify(idsOf(first));
  let last = first;
  for (let i = 1; i <= n; i++) {
    await sleep(1_000);
    const seen = await look(w, tally);
    last = seen.o;
    diffs.push(...seen.diffs.map((d) => `at rest, observation ${i}: ${d}`));
    if (JSON.stringify(idsOf(last)) !== ids) diffs.push(`at rest, observation ${i}: containers changed: ${JSON.stringify(idsOf(last))}, were ${ids}`);
  }
  if (last.revision !== first.revision) {
    const moved = last.kvs.filter((kv) => kv.modRevision > first.revision).map((kv) => `${kv.key}${changedFields(first.kvs.find((x) => x.key === kv.key)?.value, kv.value)}`);
    diffs.push(`at rest: etcd revision moved ${first.revision} → ${last.revision} in ${n} s (keys written: ${moved.join(', ') || 'deleted ones only'})`);
  }
  return [...new Set(diffs)];
}

/** ` (field: old → new, …)` for two JSON objects' top-level fields; ` (new)` when there was none. */
function changedFields(before: string | undefined, after: string): string {
  if (before === undefined) return ' (new)';
  if (before === after) return ' (same value)';
  try {
    const [a, b] = [JSON.parse(before) as Record<string, unknown>, JSON.parse(after) as Record<string, unknown>];
    const fields = [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((f) => JSON.stringify(a[f]) !== JSON.stringify(b[f]));
    return ` (${fields.map((f) => `${f}: ${JSON.stringify(a[f])} → ${JSON.stringify(b[f])}`).join(', ').slice(0, 600)})`;
  } catch {
    return ' (changed)';
  }
}
