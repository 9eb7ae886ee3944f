// Every etcd call the agent makes has a deadline (issue 10, item 2): with etcd frozen (SIGSTOP: its connections
// stay open and nothing answers) each adapter call settles within ETCD_CALL_DEADLINE_MS, with a message naming
// the operation, instead of waiting until gRPC's keepalive drops the connection (15 s) or, on a connection opened
// meanwhile, for good. After SIGCONT the writes that failed are retried and land.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import type { Etcd3 } from 'etcd3';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger, type Logger } from '../../agent/core/logger.js';
import { keys } from '../../agent/core/model/keys.js';
import { createEtcd } from '../../agent/adapters/etcd/etcd-client.js';
import { ETCD_CALL_DEADLINE_MS } from '../../agent/adapters/etcd/etcd-call.js';
import { NodeLease } from '../../agent/adapters/etcd/etcd-lease.js';
import { EtcdDesiredSource } from '../../agent/adapters/etcd/etcd-source.js';
import { Registry, type Registration } from '../../agent/adapters/etcd/etcd-registry.js';
import { StatusWriter, type NodeStatus } from '../../agent/adapters/etcd/status-writer.js';
import { NodeClaim } from '../../agent/adapters/etcd/node-claim.js';
import { startEtcd, uniquePrefix, type TestEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

// A loaded machine may fire a timer late; a call without a deadline takes 15 s (keepalive) or forever.
const SLACK_MS = 4_000;
const node = 'node-a';
let server: TestEtcd;
let etcd: Etcd3;

before(async () => {
  server = await startEtcd();
  etcd = createEtcd({ endpoints: [server.url], prefix: '', retries: 0, dialTimeoutMs: 1_000 });
});

after(async () => {
  etcd?.close();
  await server?.stop(); // thaws it first
});

type Line = { level: string; msg: string; fields?: Record<string, unknown> };
function recordingLog(): Logger & { lines: Line[] } {
  const lines: Line[] = [];
  const rec = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, ...(fields ? { fields } : {}) });
  return { info: rec('info'), warn: rec('warn'), error: rec('error'), debug: rec('debug'), lines };
}

const reviews = (port: number): Registration => ({ service: 'reviews', version: 'v1', address: '127.0.0.1', port, container: 'c', healthySince: '2024-05-01T10:00:00.000Z' });
const status = (n: number): NodeStatus => ({ node, agentVersion: 't', host: 'h', pid: 1, lease: '', leaseTtl: 6, desiredRevision: n, rejected: [], composeRuns: n, workloads: [] });

/** How long `p` took to settle, and the error message it failed with (or the one `failure` reads from its value). */
async function settle<T>(p: Promise<T>, failure: (v: T) => string | undefined = () => undefined): Promise<{ ms: number; error?: string }> {
  const t0 = performance.now();
  try {
    const v = await p;
    const error = failure(v);
    return { ms: performance.now() - t0, ...(error ? { error } : {}) };
  } catch (err) {
    return { ms: performance.now() - t0, error: (err as Error).message };
  }
}

test('etcd frozen: each call of the agent fails within its deadline naming the operation; after SIGCONT the retried writes land', { timeout: 120_000 }, async () => {
  const p = uniquePrefix('dl');
  const k = keys(p);
  const log = recordingLog();
  // Long enough to outlive the freeze (etcd's clock runs on while it is stopped); `pinger` pings every second.
  const lease = new NodeLease(etcd, 60, systemClock, silentLogger);
  await lease.start();
  const pinger = new NodeLease(etcd, 3, systemClock, log);
  await pinger.start();
  const claim = new NodeClaim(etcd, k.nodeOwner(node), { node, host: 'test-host', pid: process.pid, stateDir: '/var/lib/meshlet' }, log);
  await claim.take(lease.id);
  const registry = new Registry({ etcd, prefix: p, node, lease: lease.id, clock: systemClock, log });
  assert.equal((await registry.register(reviews(9081))).ok, true);
  const statusWriter = new StatusWriter(etcd, k.nodeStatus(node), lease.id, systemClock, log);
  await statusWriter.write(status(1));
  const inSync = new Registry({ etcd, prefix: uniquePrefix('rp'), node, lease: lease.id, clock: systemClock, log });
  assert.equal((await inSync.register(reviews(9090))).ok, true);
  const other = new NodeLease(etcd, 6, systemClock, silentLogger);
  const spare = new NodeLease(etcd, 6, systemClock, silentLogger);
  await spare.start();
  const source = new EtcdDesiredSource(etcd, k.desired, () => {}, systemClock, log);

  process.kill(server.pid, 'SIGSTOP');
  let thawed = false;
  const thaw = () => {
    if (!thawed) process.kill(server.pid, 'SIGCONT');
    thawed = true;
  };
  try {
    source.start();
    const within = `etcd did not answer within ${ETCD_CALL_DEADLINE_MS} ms`;
    const calls: [what: RegExp, outcome: Promise<{ ms: number; error?: string }>][] = [
      [/^claiming the node: /, settle(new NodeClaim(etcd, k.nodeOwner(node), { node, host: 'test-host', pid: process.pid, stateDir: '/var/lib/meshlet' }, log).take(lease.id))],
      [/^checking the node claim: /, settle(claim.renew(lease.id))],
      [/^releasing the node claim: /, settle(claim.release(lease.id))],
      [/^granting the node lease: /, settle(lease.grant())],
      [/^keepalive of lease 12345: /, settle(other.start('12345'))],
      [/^revoking lease \d+: /, settle(spare.revoke())],
      [/^writing 1 registration: /, settle(registry.register(reviews(9082)), (r) => r.error)],
      [/^reading the registry: |^reading the naming keys: /, settle(new Registry({ etcd, prefix: p, node, lease: lease.id, clock: systemClock, log: silentLogger }).adopt())],
      [/^writing the node status: /, settle(statusWriter.write(status(2)), () => log.lines.find((l) => l.msg === 'cannot write node status; retrying')?.fields?.error as string)],
    ];
    for (const [what, outcome] of calls) {
      const { ms, error } = await outcome;
      assert.match(error ?? '(no error)', what, `${what}: ${error}`);
      assert.ok(error!.endsWith(within), error);
      assert.ok(ms < ETCD_CALL_DEADLINE_MS + SLACK_MS, `${what} settled after ${ms.toFixed(0)} ms`);
      console.log(`# frozen etcd: ${error} (after ${ms.toFixed(0)} ms)`);
    }
    // The drift check's read-back (anti-entropy) gives up by its deadline: the next check tries again.
    const logged = (msg: string, error: RegExp) => log.lines.find((l) => l.msg === msg && error.test(String(l.fields?.error ?? '')));
    const repair = await settle(inSync.repair('drift check'));
    assert.ok(repair.ms < ETCD_CALL_DEADLINE_MS + SLACK_MS, `the read-back settled after ${repair.ms.toFixed(0)} ms`);
    assert.ok(logged('cannot read back this node\'s registrations; the next check tries again', new RegExp(`^reading back this node's registrations: ${within}$`)), JSON.stringify(log.lines));
    // Periodic work the adapters run on their own fails within its deadline and is retried.
    await waitFor('the desired-state snapshot to fail by its deadline', () => logged('cannot read desired state from etcd; retrying', new RegExp(`^reading ${p}/desired/: ${within}$`)), ETCD_CALL_DEADLINE_MS + SLACK_MS, 50);
    await waitFor('a lease keepalive to fail by its deadline', () => logged('lease keepalive failed; retrying', new RegExp(`^keepalive of lease ${pinger.id}: ${within}$`)), 1_000 + ETCD_CALL_DEADLINE_MS + SLACK_MS, 50);
  } finally {
    thaw();
  }
  // Thawed: the failed writes were not dropped: the registry's and the status writer's retries put them.
  await waitFor('the retried registration', async () => JSON.parse((await etcd.get(k.instance('reviews', 'v1', node)).string()) ?? '{}').port === 9082, 30_000, 100);
  await waitFor('the retried status', async () => JSON.parse((await etcd.get(k.nodeStatus(node)).string()) ?? '{}').desiredRevision === 2, 30_000, 100);
  assert.equal(registry.state, 'in-sync');
  assert.ok(log.lines.some((l) => l.msg === 'node status written again'), 'the status writer says it recovered');
  statusWriter.stop();
  registry.stop();
  inSync.stop();
  await source.stop();
  await pinger.stop();
  await lease.revoke();
});
