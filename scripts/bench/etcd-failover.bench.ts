// How soon the agent's etcd client works again after the member it talks to dies: on a real three-member cluster,
// the member serving the client's desired-state watch is killed (SIGKILL) or frozen (SIGSTOP); measured from
// the signal to the next put+get pair through the agent's client that succeeds, and to the watch delivering a
// put made meanwhile (through a live member by another client); then, of 10 put+get pairs in a row, how many
// still failed (the user's report: calls kept going to the dead member). BENCH_FAILOVER_N rounds of each (default 12).
import { Etcd3 } from 'etcd3';
import { noop } from 'cockatiel';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import { createEtcd } from '../../agent/adapters/etcd/etcd-client.js';
import { etcdCall } from '../../agent/adapters/etcd/etcd-call.js';
import { EtcdDesiredSource } from '../../agent/adapters/etcd/etcd-source.js';
import { startEtcdCluster, type ClusterMember } from '../../test/helpers/etcd-cluster.js';
import { waitFor } from '../../test/helpers/wait.js';
import { report } from './stats.js';

const N = Number(process.env.BENCH_FAILOVER_N ?? 12);
const ATTEMPT_EVERY_MS = 100;
const AFTER_PAIRS = 10;
const prefix = '/bench-failover';
const cluster = await startEtcdCluster();
const client = createEtcd({ endpoints: cluster.urls, prefix, retries: 0, dialTimeoutMs: 1_000 });
const source = new EtcdDesiredSource(client, `${prefix}/desired/`, () => {}, systemClock, silentLogger);
source.start();

/** The member serving the client's watch stream (the only watch on this cluster). */
const watchHolder = () => waitFor('a member serving the watch', async () => {
  for (const m of cluster.members) if (m.pid !== undefined && (await cluster.watchStreams(m).catch(() => 0)) > 0) return m;
  return undefined;
}, 60_000, 50);

/**
 * Milliseconds from `t0` until a put and a get of the same key through the agent's client both succeed, with a new
 * pair started every ATTEMPT_EVERY_MS (as the agent's several loops would): a call caught in flight by the fault
 * waits out its deadline without holding up the figure. Also counts the pairs that failed.
 */
async function untilPutGet(t0: number, round: string): Promise<{ ms: number; failed: number }> {
  let failed = 0;
  let done: ((ms: number) => void) | undefined;
  const first = new Promise<number>((resolve) => (done = resolve));
  const attempt = async (i: number) => {
    const key = `${prefix}/rw/${round}/${i}`;
    try {
      await etcdCall(`writing ${key}`, (o) => client.put(key).value('v').options(o).exec());
      if ((await etcdCall(`reading ${key}`, (o) => client.get(key).options(o).string())) !== 'v') throw new Error(`${key}: wrong value`);
      done!(performance.now() - t0);
    } catch (err) {
      if (process.env.BENCH_DEBUG) console.error(`${round} #${i} at ${Math.round(performance.now() - t0)} ms: ${(err as Error).message}`);
      failed++;
    }
  };
  const pending: Promise<void>[] = [];
  let succeeded = false;
  void first.then(() => (succeeded = true));
  for (let i = 0; !succeeded; i++) {
    pending.push(attempt(i));
    await Promise.race([first, new Promise((r) => setTimeout(r, ATTEMPT_EVERY_MS))]);
  }
  const ms = await first;
  await Promise.all(pending); // the ones still out end at their deadline: counted
  return { ms, failed };
}

/** Once the cluster takes writes again: of AFTER_PAIRS put+get pairs in a row, how many failed (went to the dead member). */
async function failuresAfter(round: string): Promise<number> {
  let failed = 0;
  for (let i = 0; i < AFTER_PAIRS; i++) {
    const key = `${prefix}/after/${round}/${i}`;
    try {
      await etcdCall(`writing ${key}`, (o) => client.put(key).value('v').options(o).exec());
      await etcdCall(`reading ${key}`, (o) => client.get(key).options(o).string());
    } catch {
      failed++;
    }
  }
  return failed;
}

/** Milliseconds from `t0` until the watch delivers a key put through `live` by another client. */
async function untilWatched(t0: number, live: ClusterMember, round: string): Promise<number> {
  const writer = new Etcd3({ hosts: live.url, faultHandling: { host: () => noop, global: noop } });
  const key = `${prefix}/desired/${round}`;
  try {
    // Retried until it lands: if the killed member was the leader, writes wait for the next one.
    await waitFor(`putting ${key}`, () => writer.put(key).value(round).options({ deadline: new Date(Date.now() + 1_000) }).exec().then(() => true), 60_000, 10);
    await waitFor(`the watch to deliver ${key}`, () => source.current()?.entries.get(key)?.value === round, 120_000, 5);
    return performance.now() - t0;
  } finally {
    writer.close();
  }
}

async function rounds(fault: 'kill' | 'freeze') {
  const putGet: number[] = [];
  const watched: number[] = [];
  const wasLeader: boolean[] = [];
  let failedPairs = 0;
  const failedAfter: number[] = [];
  for (let r = 0; r < N; r++) {
    // Settled first: a leader, every member answering the client's probes, the watch attached.
    await cluster.leader(30_000);
    await waitFor('every member up for the client', () => Object.keys(client.health?.down() ?? {}).length === 0, 60_000, 50);
    await waitFor('the watch', () => source.state === 'watching', 60_000, 10);
    const target = await watchHolder();
    wasLeader.push((await cluster.leader()).name === target.name);
    const live = cluster.members.find((m) => m !== target && m.pid !== undefined)!;
    const round = `${fault}-${r}`;
    const t0 = performance.now();
    if (fault === 'kill') void cluster.kill(target);
    else cluster.freeze(target);
    const [a, b] = await Promise.all([untilPutGet(t0, round), untilWatched(t0, live, round)]);
    putGet.push(a.ms);
    failedPairs += a.failed;
    failedAfter.push(await failuresAfter(round));
    watched.push(b);
    if (fault === 'kill') await cluster.restart(target);
    else cluster.thaw(target);
  }
  const extra = { fault: fault === 'kill' ? 'SIGKILL' : 'SIGSTOP', members: 3, leaderFaulted: wasLeader.filter(Boolean).length, failedPairs };
  report(`etcd_failover_${fault}_to_put_get`, 'ms', putGet, extra);
  report(`etcd_failover_${fault}_to_watch_event`, 'ms', watched, extra);
  report(`etcd_failover_${fault}_failed_pairs_after`, `of ${AFTER_PAIRS} pairs`, failedAfter, extra);
  // Split by the faulted member's role: a leader's loss adds an election, and a write already forwarded to it
  // waits out its deadline (etcd drops the proposal); that is the quorum, not the client.
  for (const [role, leader] of [['leader', true], ['follower', false]] as const) {
    const pick = (xs: number[]) => xs.filter((_, i) => wasLeader[i] === leader);
    if (pick(putGet).length === 0) continue;
    report(`etcd_failover_${fault}_${role}_to_put_get`, 'ms', pick(putGet), { fault: extra.fault, members: 3 });
    report(`etcd_failover_${fault}_${role}_to_watch_event`, 'ms', pick(watched), { fault: extra.fault, members: 3 });
  }
}

try {
  await rounds('kill');
  await rounds('freeze');
} finally {
  await source.stop();
  client.close();
  await cluster.stop();
}
