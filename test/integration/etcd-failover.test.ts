// The agent's etcd client moves off a dead member (issue 10, item 7): on a real three-member cluster, with the
// client built as the agent builds it (all three endpoints, retries 0), a killed leader and a frozen member
// (SIGSTOP, the one serving the client's watch) leave put/get, the lease keepalive and a watch working through the
// other two. Before the member gate (member-health.ts) a third of the calls after a kill failed with ECONNREFUSED
// (of 30 put+get pairs, 19 or more failed), and after a freeze a third waited out their whole deadline (13 of 30).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import { createEtcd, type MeshletEtcd } from '../../agent/adapters/etcd/etcd-client.js';
import { etcdCall } from '../../agent/adapters/etcd/etcd-call.js';
import { NodeLease, type LeaseState } from '../../agent/adapters/etcd/etcd-lease.js';
import { EtcdDesiredSource } from '../../agent/adapters/etcd/etcd-source.js';
import { startEtcdCluster, type ClusterMember, type EtcdCluster } from '../helpers/etcd-cluster.js';
import { uniquePrefix } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

const OPS = 30;
const TTL = 6;
let cluster: EtcdCluster;

before(async () => {
  cluster = await startEtcdCluster();
});

after(async () => {
  await cluster?.stop();
});

/** What the agent runs on one client: its lease kept alive, a key under it, and a desired-state watch. */
async function agentSide(prefix: string) {
  const client: MeshletEtcd = createEtcd({ endpoints: cluster.urls, prefix, retries: 0, dialTimeoutMs: 1_000 });
  const leaseLog = new RecordingLogger();
  const lease = new NodeLease(client, TTL, systemClock, leaseLog);
  const states: LeaseState[] = [];
  lease.on('state', (s) => states.push(s));
  await lease.start();
  await etcdCall('putting the leased key', (o) => client.put(`${prefix}/leased`).value('1').lease(lease.id).options(o).exec());
  const source = new EtcdDesiredSource(client, `${prefix}/desired/`, () => {}, systemClock, silentLogger);
  source.start();
  await waitFor('the desired-state watch', () => source.state === 'watching');
  // Every member gets used (and so gets a connection) before the fault: the pool picks one at random per call.
  assert.deepEqual(await putGets(client, `${prefix}/warm`, 15), []);
  const close = async () => {
    await source.stop();
    await lease.stop();
    client.close();
  };
  return { client, lease, leaseLog, states, source, close };
}

/** `n` puts each followed by a get of the same key, one after the other; the failures' messages. */
async function putGets(client: MeshletEtcd, prefix: string, n: number): Promise<string[]> {
  const failures: string[] = [];
  for (let i = 0; i < n; i++) {
    const key = `${prefix}/${i}`;
    try {
      await etcdCall(`writing ${key}`, (o) => client.put(key).value(String(i)).options(o).exec());
      const got = await etcdCall(`reading ${key}`, (o) => client.get(key).options(o).string());
      if (got !== String(i)) failures.push(`${key}: read ${got}`);
    } catch (err) {
      failures.push((err as Error).message);
    }
  }
  return failures;
}

/** The member serving the client's watch stream (only this test's client watches). */
async function watchHolder(): Promise<ClusterMember> {
  return waitFor('a member serving the watch', async () => {
    for (const m of cluster.members) if (m.pid !== undefined && (await cluster.watchStreams(m)) > 0) return m;
    return undefined;
  });
}

/** After the fault: the watch sees a new put, the lease was never lost, and its key outlived a whole TTL. */
async function assertWatchAndLease(side: Awaited<ReturnType<typeof agentSide>>, prefix: string, tag: string) {
  const key = `${prefix}/desired/${tag}`;
  await etcdCall('putting a desired key', (o) => side.client.put(key).value(tag).options(o).exec());
  await waitFor(`the watch to see ${key}`, () => side.source.current()?.entries.get(key)?.value === tag);
  await new Promise((r) => setTimeout(r, TTL * 1000 + 1_000));
  const leased = await etcdCall('reading the leased key', (o) => side.client.get(`${prefix}/leased`).options(o).string());
  const log = side.leaseLog.lines.map((l) => `${new Date(l.at).toISOString()} ${l.msg} ${JSON.stringify(l.fields)}`).join('\n');
  assert.ok(!side.states.includes('lost'), `lease states: ${side.states.join(' → ')}\n${log}`);
  assert.equal(leased, '1', 'the leased key outlived a TTL: the keepalive went on through a live member');
  assert.equal(side.lease.state, 'alive');
}

test('leader killed: put/get, the lease keepalive and the watch go on through the other two members', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix('failover-kill');
  const side = await agentSide(prefix);
  t.after(side.close);
  const leader = await cluster.leader();
  side.leaseLog.info('killing the leader', { member: leader.url });
  await cluster.kill(leader);
  t.after(() => cluster.restart(leader));
  // A new leader first: calls fail without one whichever member they go to (that is quorum, not the client).
  const next = await cluster.leader(20_000);
  assert.notEqual(next.name, leader.name);

  const failures = await putGets(side.client, `${prefix}/after`, OPS);
  assert.deepEqual(failures, [], `every call after the kill went to a live member (${OPS} put/get pairs)`);
  assert.ok(Object.keys(side.client.health!.down()).includes(leader.url), 'the killed member is known down');
  await assertWatchAndLease(side, prefix, 'after-kill');
  assert.deepEqual(await putGets(side.client, `${prefix}/later`, OPS), []);
});

test('member frozen (SIGSTOP), the one serving the watch: calls, keepalive and watch move to the other two; it comes back when thawed', { timeout: 120_000 }, async (t) => {
  const prefix = uniquePrefix('failover-freeze');
  const side = await agentSide(prefix);
  t.after(side.close);
  const frozen = await watchHolder();
  cluster.freeze(frozen);
  t.after(() => cluster.thaw(frozen));
  await cluster.leader(20_000);

  // One call may be on its way to the frozen member when it stops: it fails at its deadline. None after it.
  const failures = await putGets(side.client, `${prefix}/after`, OPS);
  assert.ok(failures.length <= 1, `at most the call caught by the freeze failed, got ${failures.length}: ${failures.join('; ')}`);
  for (const f of failures) assert.match(f, /etcd did not answer within \d+ ms/);
  assert.ok(Object.keys(side.client.health!.down()).includes(frozen.url), 'the frozen member is known down');
  await assertWatchAndLease(side, prefix, 'after-freeze');
  assert.deepEqual(await putGets(side.client, `${prefix}/later`, OPS), []);

  cluster.thaw(frozen);
  await waitFor('the thawed member to be back', () => !(frozen.url in side.client.health!.down()));
  assert.deepEqual(await putGets(side.client, `${prefix}/thawed`, OPS), []);
});
