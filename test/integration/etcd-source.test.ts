// The etcd desired source against a real etcd, its connection cut by a TCP proxy (STYLE 9). Whatever happens
// (cuts mid-burst, a cut while a backlog replays, compaction, a long outage) it must end with exactly etcd's keys,
// every state it publishes must be etcd's at the revision it names, and stop() must be prompt and leave nothing running.
// The writer talks to etcd directly; only the source's client (and the plain etcd3 watcher shown losing a backlog) go
// through a proxy.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { Etcd3 } from 'etcd3';
import { createEtcd } from '../../agent/adapters/etcd/etcd-client.js';
import { EtcdDesiredSource, type SourceState } from '../../agent/adapters/etcd/etcd-source.js';
import { systemClock } from '../../agent/core/clock.js';
import { type Logger } from '../../agent/core/logger.js';
import { freePort, startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';

let etcd: TestEtcd;
/** The test's own client: straight to etcd, never through a proxy. */
let writer: Etcd3;

before(async () => {
  etcd = await startEtcd();
  writer = createEtcd({ endpoints: [etcd.url], prefix: '/', retries: 2 });
});

after(async () => {
  writer?.close();
  await etcd?.stop();
});

interface LogLine {
  level: string;
  msg: string;
  fields?: Record<string, unknown>;
}

function recordingLogger(lines: LogLine[]): Logger {
  const rec = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push({ level, msg, fields });
  return { info: rec('info'), warn: rec('warn'), error: rec('error'), debug: rec('debug') };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitUntil<T>(what: string, fn: () => T | false | undefined | Promise<T | false | undefined>, timeoutMs = 30_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== false && v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** key → "value@modRevision", as etcd holds it now. */
async function etcdState(prefix: string): Promise<Map<string, string>> {
  const res = await writer.getAll().prefix(prefix).exec();
  return new Map(res.kvs.map((kv) => [kv.key.toString(), `${kv.value.toString()}@${kv.mod_revision}`]));
}

function sourceState(source: EtcdDesiredSource): Map<string, string> {
  const snap = source.current();
  return new Map([...(snap?.entries ?? [])].map(([k, e]) => [k, `${e.value}@${e.modRevision}`]));
}

interface Diff {
  missing: number;
  extra: number;
  changed: number;
  examples: string[];
}

function diff(actual: ReadonlyMap<string, string>, expected: ReadonlyMap<string, string>): Diff {
  const d: Diff = { missing: 0, extra: 0, changed: 0, examples: [] };
  const note = (s: string) => d.examples.length < 5 && d.examples.push(s);
  for (const [k, v] of expected) {
    const a = actual.get(k);
    if (a === undefined) (d.missing++, note(`missing ${k}=${v}`));
    else if (a !== v) (d.changed++, note(`${k}: ${a}, etcd has ${v}`));
  }
  for (const [k, v] of actual) if (!expected.has(k)) (d.extra++, note(`extra ${k}=${v}`));
  return d;
}

const differs = (d: Diff) => d.missing + d.extra + d.changed > 0;

/** Waits until the source holds exactly etcd's keys under `prefix`, at a revision at least `minRevision`. */
async function converge(source: EtcdDesiredSource, prefix: string, minRevision: number, timeoutMs = 30_000): Promise<void> {
  let last: Diff | undefined;
  try {
    await waitUntil('the source to equal etcd', async () => {
      last = diff(sourceState(source), await etcdState(prefix));
      return !differs(last) && (source.current()?.revision ?? 0) >= minRevision;
    }, timeoutMs, 100);
  } catch (err) {
    throw new Error(`${(err as Error).message}: ${JSON.stringify(last)}, revision ${source.current()?.revision} < ${minRevision}?, state ${source.state}, stats ${JSON.stringify(source.stats)}`);
  }
}

interface Harness {
  source: EtcdDesiredSource;
  proxy: TcpProxy;
  lines: LogLine[];
  changes: () => number;
}

/** A source whose client goes through its own proxy; `onChange` runs inside the source's callback. */
async function startSource(t: TestContext, prefix: string, onChange?: (source: EtcdDesiredSource, proxy: TcpProxy) => void): Promise<Harness> {
  const proxy = await TcpProxy.forUrl(etcd.url);
  const client = createEtcd({ endpoints: [proxy.url], prefix, retries: 0 });
  const lines: LogLine[] = [];
  let changes = 0;
  const source: EtcdDesiredSource = new EtcdDesiredSource(client, prefix, () => {
    changes++;
    onChange?.(source, proxy);
  }, systemClock, recordingLogger(lines));
  t.after(async () => {
    await proxy.close(); // first: frees any call a stalled or held connection would keep waiting
    await Promise.race([source.stop(), sleep(5_000)]);
    client.close();
  });
  source.start();
  return { source, proxy, lines, changes: () => changes };
}

interface PlainWatcher {
  proxy: TcpProxy;
  entries: Map<string, string>;
  events: number;
  /** 'connected' events after the first: etcd3 resumed on its own. */
  reconnects: number;
  errors: string[];
}

/** etcd3's watcher left to its own resume: a snapshot (straight from etcd), then a watch through its own proxy. */
async function startPlainWatcher(t: TestContext, prefix: string, onData?: (w: PlainWatcher) => void): Promise<PlainWatcher> {
  const proxy = await TcpProxy.forUrl(etcd.url);
  const client = createEtcd({ endpoints: [proxy.url], prefix, retries: 0 });
  const snap = await writer.getAll().prefix(prefix).exec();
  const w: PlainWatcher = { proxy, entries: new Map(snap.kvs.map((kv) => [kv.key.toString(), `${kv.value.toString()}@${kv.mod_revision}`])), events: 0, reconnects: 0, errors: [] };
  const watcher = await client.watch().prefix(prefix).startRevision(String(Number(snap.header.revision) + 1)).create();
  watcher.on('connected', () => w.reconnects++);
  watcher.on('error', (err) => w.errors.push(err.message));
  watcher.on('data', (res) => {
    for (const ev of res.events) {
      const key = ev.kv.key.toString();
      if (ev.type === 'Put') w.entries.set(key, `${ev.kv.value.toString()}@${ev.kv.mod_revision}`);
      else w.entries.delete(key);
      w.events++;
    }
    onData?.(w);
  });
  t.after(async () => {
    await Promise.race([watcher.cancel(), sleep(1_000)]).catch(() => {});
    client.close();
    await proxy.close();
  });
  return w;
}

/**
 * `n` single-key writes from `concurrency` writers, one revision each: puts to distinct keys (k0…k3999),
 * then overwrites, and every tenth a delete. Returns the highest revision etcd reported.
 */
async function burst(prefix: string, n: number, concurrency = 20): Promise<number> {
  let next = 0;
  let last = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const res = i % 10 === 9 ? await writer.delete().key(`${prefix}k${i - 5}`).exec() : await writer.put(`${prefix}k${i % 4000}`).value(`v${i}`).exec();
      last = Math.max(last, Number(res.header.revision));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return last;
}

async function seed(prefix: string, n: number): Promise<number> {
  let rev = 0;
  for (let i = 0; i < n; i++) rev = Number((await writer.put(`${prefix}seed${i}`).value(`s${i}`).exec()).header.revision);
  return rev;
}

test('snapshot then watch: starts equal to etcd, follows puts and deletes, calls onChange', { timeout: 60_000 }, async (t) => {
  const P = '/basic/desired/';
  await seed(P, 5);
  await writer.put('/basic/other').value('outside the prefix').exec();
  const h = await startSource(t, P);
  await waitUntil('the first snapshot', () => h.source.current());
  assert.deepEqual(diff(sourceState(h.source), await etcdState(P)), { missing: 0, extra: 0, changed: 0, examples: [] });
  assert.equal(h.changes(), 1);
  await waitUntil('watching', () => h.source.state === 'watching', 10_000);

  await writer.put(`${P}seed0`).value('changed').exec();
  await writer.put(`${P}new`).value('n').exec();
  const last = Number((await writer.delete().key(`${P}seed1`).exec()).header.revision);
  await converge(h.source, P, last, 10_000);
  const entries = h.source.current()!.entries;
  assert.equal(entries.get(`${P}seed0`)?.value, 'changed');
  assert.equal(entries.get(`${P}new`)?.value, 'n');
  assert.equal(entries.has(`${P}seed1`), false);
  assert.equal(entries.has('/basic/other'), false);
  assert.ok(h.changes() >= 2, `onChange fired ${h.changes()} times`);
  assert.equal(h.source.stats.snapshots, 1);
  assert.equal(h.source.stats.events, 3);
});

test('cuts while a burst of 5,000 writes is delivered: the source re-snapshots and ends exactly equal to etcd', { timeout: 60_000 }, async (t) => {
  const P = '/cut-live/desired/';
  await seed(P, 10);
  const cutAt = [500, 2500];
  let cuts = 0;
  const h = await startSource(t, P, (source, proxy) => {
    if (cuts < cutAt.length && source.stats.events >= cutAt[cuts]!) {
      cuts++;
      proxy.cut();
    }
  });
  await waitUntil('watching', () => h.source.state === 'watching', 10_000);
  let plainCuts = 0;
  const plain = await startPlainWatcher(t, P, (w) => {
    if (plainCuts < cutAt.length && w.events >= cutAt[plainCuts]!) {
      plainCuts++;
      w.proxy.cut();
    }
  });

  const t0 = Date.now();
  const last = await burst(P, 5_000);
  const wroteMs = Date.now() - t0;
  await converge(h.source, P, last);
  assert.equal(cuts, 2, `cuts done (source saw ${h.source.stats.events} events)`);
  assert.ok(h.source.stats.resyncs >= 2, `resyncs ${h.source.stats.resyncs}`);
  assert.ok(h.source.stats.snapshots >= 3, `snapshots ${h.source.stats.snapshots}`);
  assert.ok(h.proxy.stats.dropped >= 2);

  // etcd3's own resume when the cuts land on a watcher that keeps up: reported, not asserted.
  const sentinel = Number((await writer.put(`${P}zz-sentinel`).value('1').exec()).header.revision);
  await waitUntil('the plain watcher to see the sentinel', () => plain.entries.has(`${P}zz-sentinel`), 15_000).catch(() => {});
  await converge(h.source, P, sentinel);
  const d = diff(plain.entries, await etcdState(P));
  t.diagnostic(`wrote 5000 in ${wroteMs} ms; source ${JSON.stringify(h.source.stats)}; plain etcd3 watcher: ${plainCuts} cuts, ${plain.events} events, diff ${JSON.stringify(d)}`);
});

test('a cut while a backlog replays: etcd3 resumes past it, the source re-snapshots and stays exact', { timeout: 60_000 }, async (t) => {
  const P = '/cut-backlog/desired/';
  await seed(P, 10);
  // Armed once the proxies resume: cut as soon as 500 events of the backlog have come through.
  let replaying = false;
  let sourceMark = 0;
  let sourceCut = false;
  const h = await startSource(t, P, (source, proxy) => {
    if (replaying && !sourceCut && source.stats.events - sourceMark >= 500) {
      sourceCut = true;
      proxy.cut();
    }
  });
  await waitUntil('watching', () => h.source.state === 'watching', 10_000);
  let plainMark = 0;
  let plainCutAt: { events: number; reconnects: number } | undefined;
  const plain = await startPlainWatcher(t, P, (w) => {
    if (replaying && !plainCutAt && w.events - plainMark >= 500) {
      plainCutAt = { events: w.events - plainMark, reconnects: w.reconnects };
      w.proxy.cut();
    }
  });

  await Promise.all([h.proxy.suspend(), plain.proxy.suspend()]);
  // Pacing only: whether the source handled the break is judged by its data at the end.
  await waitUntil('the source to notice', () => h.source.state !== 'watching', 3_000).catch(() => {});
  const snapshots = h.source.stats.snapshots;
  const t0 = Date.now();
  const last = await burst(P, 5_000);
  const wroteMs = Date.now() - t0;
  sourceMark = h.source.stats.events;
  plainMark = plain.events;
  replaying = true;
  await Promise.all([h.proxy.resume(), plain.proxy.resume()]);

  await converge(h.source, P, last);
  assert.ok(h.source.stats.snapshots > snapshots, `snapshots ${h.source.stats.snapshots}`);

  // etcd sends a backlog in batches of 1,000 revisions every 100 ms, each stamped with the *current* revision;
  // etcd3 resumes from that stamp, so a cut after the first batch skips the rest for good.
  const cutAt = await waitUntil('the plain watcher to be cut mid-backlog', () => plainCutAt, 15_000);
  await waitUntil('the plain watcher to resume', () => plain.reconnects > cutAt.reconnects, 15_000);
  const sentinel = Number((await writer.put(`${P}zz-sentinel`).value('1').exec()).header.revision);
  await waitUntil('the plain watcher to see the sentinel', () => plain.entries.has(`${P}zz-sentinel`), 15_000);
  await converge(h.source, P, sentinel);
  const d = diff(plain.entries, await etcdState(P));
  t.diagnostic(`wrote 5000 in ${wroteMs} ms; plain etcd3 watcher cut after ${cutAt.events} backlog events, saw ${plain.events - plainMark} of them, diff ${JSON.stringify(d)}; source ${JSON.stringify(h.source.stats)}`);
  assert.ok(differs(d), `etcd3's resume was expected to lose part of the backlog: ${JSON.stringify(d)}`);
});

test('a re-snapshot that finds nothing changed keeps the revision of the last change, although etcd moved on elsewhere', { timeout: 60_000 }, async (t) => {
  // The agent reports this revision in its node status: were it etcd's current revision, every reconnect would
  // rewrite the status at rest (its own registry and status writes move etcd's revision, not the desired state).
  const P = '/changed-at/desired/';
  await seed(P, 3);
  const h = await startSource(t, P);
  await waitUntil('watching', () => h.source.state === 'watching', 10_000);
  const changed = Number((await writer.put(`${P}seed0`).value('changed').exec()).header.revision);
  await converge(h.source, P, changed, 10_000);
  assert.equal(h.source.current()!.revision, changed);
  for (let i = 0; i < 5; i++) await writer.put('/changed-at/elsewhere').value(String(i)).exec();
  const snapshots = h.source.stats.snapshots;
  h.proxy.cut();
  await waitUntil('a new snapshot', () => h.source.stats.snapshots > snapshots && h.source.state === 'watching', 10_000);
  assert.equal(h.source.current()!.revision, changed, 'nothing under the prefix changed');
  assert.equal(h.changes(), 2, 'the first snapshot and the one put; the re-snapshot found nothing new');
  // The watch resumed at the revision the re-snapshot was current at: a put after it is seen, and named.
  const next = Number((await writer.put(`${P}seed1`).value('again').exec()).header.revision);
  await converge(h.source, P, next, 10_000);
  assert.equal(h.source.current()!.revision, next);
});

test('twelve cuts in a row: twelve re-snapshots, nothing left behind on the way', { timeout: 60_000 }, async (t) => {
  const P = '/many-cuts/desired/';
  await seed(P, 5);
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  t.after(() => void process.off('warning', onWarning));
  const h = await startSource(t, P);
  let last = 0;
  for (let i = 0; i < 12; i++) {
    await waitUntil('watching', () => h.source.state === 'watching', 10_000);
    last = Number((await writer.put(`${P}cut${i}`).value(String(i)).exec()).header.revision);
    await waitUntil('the change', () => h.source.current()?.entries.has(`${P}cut${i}`), 10_000);
    h.proxy.cut();
    await waitUntil('the break to be noticed', () => h.source.stats.resyncs > i, 10_000);
  }
  await converge(h.source, P, last, 10_000);
  assert.equal(h.source.stats.resyncs, 12);
  assert.equal(h.source.stats.snapshots, 13);
  assert.deepEqual(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning')), []);
});

test('every state the source publishes is etcd\'s state at the revision it names, also while a backlog replays', { timeout: 60_000 }, async (t) => {
  const P = '/consistent/desired/';
  await seed(P, 10);
  let recording = false;
  let stallNextWatch = false;
  const published: { revision: number; entries: Map<string, string> }[] = [];
  const h = await startSource(t, P, (source, proxy) => {
    if (recording) published.push({ revision: source.current()!.revision, entries: sourceState(source) });
    if (stallNextWatch && source.state === 'snapshotting') {
      stallNextWatch = false;
      proxy.stall();
    }
  });
  await waitUntil('watching', () => h.source.state === 'watching', 10_000);

  // A re-snapshot whose watch is stalled while 3,000 writes land: the watch then replays them as a backlog,
  // which etcd sends 1,000 revisions at a time, each batch stamped with the newest revision.
  await h.proxy.suspend();
  await writer.put(`${P}during-outage`).value('1').exec();
  stallNextWatch = true;
  recording = true;
  await h.proxy.resume();
  await waitUntil('the snapshot after the outage', () => !stallNextWatch, 20_000);
  const last = await burst(P, 3_000);
  await h.proxy.resume();
  await converge(h.source, P, last);

  assert.ok(published.length >= 3, `published ${published.length} states (a snapshot, then backlog batches)`);
  for (const p of published) {
    const res = await writer.getAll().prefix(P).revision(p.revision).exec();
    const atRevision = new Map(res.kvs.map((kv) => [kv.key.toString(), `${kv.value.toString()}@${kv.mod_revision}`]));
    const d = diff(p.entries, atRevision);
    assert.ok(!differs(d), `the state published as revision ${p.revision} is not etcd's at that revision: ${JSON.stringify(d)}`);
  }
  t.diagnostic(`published revisions ${published.map((p) => p.revision).join(', ')} (last write ${last})`);
});

test('compaction past the source\'s revision (during an outage, and under a pending watch): re-snapshot, no crash', { timeout: 60_000 }, async (t) => {
  const P = '/compact/desired/';
  await seed(P, 10);
  let stallNextWatch = false;
  const h = await startSource(t, P, (source, proxy) => {
    // Called from inside the snapshot, before its watch is created: that watch reaches etcd only on resume().
    if (stallNextWatch && source.state === 'snapshotting') {
      stallNextWatch = false;
      proxy.stall();
    }
  });
  await waitUntil('watching', () => h.source.state === 'watching', 10_000);

  // 1. An outage during which etcd compacts past everything the source has seen.
  await h.proxy.suspend();
  await waitUntil('the source to notice', () => h.source.state !== 'watching', 3_000).catch(() => {}); // pacing only
  const rev1 = await burst(P, 300, 10);
  await writer.kv.compact({ revision: rev1, physical: true });
  stallNextWatch = true;
  await h.proxy.resume();

  // 2. The snapshot after the outage worked, and its watch is stalled in the proxy: compact past it too.
  await waitUntil('the snapshot after the outage', () => !stallNextWatch, 20_000);
  const resyncs = h.source.stats.resyncs;
  const seen = h.source.current()!.revision;
  const rev2 = await burst(P, 300, 10);
  await writer.kv.compact({ revision: rev2, physical: true });
  assert.ok(seen + 1 < rev2, `the stalled watch starts at ${seen + 1}, compacted at ${rev2}`);
  await h.proxy.resume();

  await converge(h.source, P, rev2);
  assert.ok(h.source.stats.resyncs > resyncs, `resyncs ${h.source.stats.resyncs}`);
  const reasons = h.lines.filter((l) => l.msg.startsWith('etcd watch broke')).map((l) => String(l.fields?.reason));
  assert.ok(reasons.some((r) => r.startsWith('error:')), `a cancelled watch should be among the reasons: ${JSON.stringify(reasons)}`);
  await waitUntil('watching again', () => h.source.state === 'watching', 10_000);
});

test('an outage of 12 s: the source says so, then catches up with a change made meanwhile', { timeout: 60_000 }, async (t) => {
  const P = '/outage/desired/';
  const seeded = await seed(P, 5);
  const h = await startSource(t, P);
  await converge(h.source, P, seeded, 10_000);
  await waitUntil('watching', () => h.source.state === 'watching', 10_000);

  await h.proxy.suspend();
  await waitUntil('the source to notice', () => h.source.state !== 'watching', 5_000);
  const seen = new Set<SourceState>([h.source.state]);
  const sampler = setInterval(() => seen.add(h.source.state), 20);
  const changed = Number((await writer.put(`${P}changed-during-outage`).value('yes').exec()).header.revision);
  await sleep(12_000); // the outage itself
  clearInterval(sampler);
  assert.deepEqual([...seen].filter((s) => s !== 'waiting' && s !== 'snapshotting'), [], `states during the outage: ${[...seen]}`);
  assert.ok(seen.has('waiting'), `states during the outage: ${[...seen]}`);
  assert.equal(h.source.current()?.entries.has(`${P}changed-during-outage`), false);
  assert.ok(h.lines.some((l) => l.level === 'error' && l.msg.startsWith('cannot read desired state')));

  const t0 = Date.now();
  await h.proxy.resume();
  await converge(h.source, P, changed, 20_000);
  await waitUntil('watching again', () => h.source.state === 'watching', 10_000);
  t.diagnostic(`caught up ${Date.now() - t0} ms after the outage; stats ${JSON.stringify(h.source.stats)}`);
});

async function timedStop(source: EtcdDesiredSource, what: string): Promise<number> {
  const t0 = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`stop() ${what} did not resolve within 5 s (state ${source.state})`)), 5_000)));
  try {
    await Promise.race([source.stop(), timeout]);
  } finally {
    clearTimeout(timer);
  }
  assert.equal(source.state, 'stopped', what);
  return Date.now() - t0;
}

test('stop() resolves promptly whatever the source is doing', { timeout: 60_000 }, async (t) => {
  const P = '/stop/desired/';
  await seed(P, 3);
  const ms: Record<string, number> = {};

  const first = await startSource(t, P);
  ms.duringFirstSnapshot = await timedStop(first.source, 'right after start()');

  const watching = await startSource(t, P);
  await waitUntil('watching', () => watching.source.state === 'watching', 10_000);
  ms.watching = await timedStop(watching.source, 'while watching');

  const waiting = await startSource(t, P);
  await waitUntil('watching', () => waiting.source.state === 'watching', 10_000);
  await waiting.proxy.suspend();
  await waitUntil('waiting', () => waiting.source.state === 'waiting', 10_000);
  ms.waiting = await timedStop(waiting.source, 'while waiting for etcd');

  // The first snapshot worked, then etcd froze before answering the watch.
  let stall = true;
  const watchPending = await startSource(t, P, (_source, proxy) => {
    if (stall) {
      stall = false;
      proxy.stall();
    }
  });
  await waitUntil('the first snapshot', () => !stall, 10_000);
  await sleep(200); // let the watch request go out into the stalled connection
  assert.equal(watchPending.source.state, 'snapshotting');
  ms.watchPending = await timedStop(watchPending.source, 'while its watch waits for a stalled etcd');

  // The watch broke, and the new snapshot's connection is accepted but never answered.
  const snapshotPending = await startSource(t, P);
  await waitUntil('watching', () => snapshotPending.source.state === 'watching', 10_000);
  await snapshotPending.proxy.suspend('hold');
  await waitUntil('the re-snapshot to be held by the proxy', () => snapshotPending.proxy.held > 0 && snapshotPending.source.state === 'snapshotting', 10_000);
  await sleep(200);
  assert.equal(snapshotPending.source.state, 'snapshotting');
  ms.snapshotPending = await timedStop(snapshotPending.source, 'while its snapshot waits for an unresponsive etcd');

  t.diagnostic(`stop() took ${JSON.stringify(ms)} ms`);
  for (const [what, took] of Object.entries(ms)) assert.ok(took < 2_000, `stop() ${what} took ${took} ms`);
});

test('after stop() and close() nothing keeps the process alive', { timeout: 60_000 }, async (t) => {
  const P = '/exit/desired/';
  await seed(P, 3);
  const here = (rel: string) => new URL(rel, import.meta.url).href;
  const code = `
    const { createEtcd } = await import(${JSON.stringify(here('../../agent/adapters/etcd/etcd-client.js'))});
    const { EtcdDesiredSource } = await import(${JSON.stringify(here('../../agent/adapters/etcd/etcd-source.js'))});
    const { systemClock } = await import(${JSON.stringify(here('../../agent/core/clock.js'))});
    const { silentLogger } = await import(${JSON.stringify(here('../../agent/core/logger.js'))});
    const { URL: url, MODE: mode, PREFIX: prefix } = process.env;
    const client = createEtcd({ endpoints: [url], prefix, retries: 0 });
    const source = new EtcdDesiredSource(client, prefix, () => {}, systemClock, silentLogger);
    source.start();
    const want = { watching: 'watching', unreachable: 'waiting' }[mode];
    while (want && source.state !== want) await new Promise((r) => setTimeout(r, 20));
    await source.stop();
    client.close();
    console.log(JSON.stringify({ state: source.state, exitAfter: 'now' }));
  `;
  const unreachable = `http://127.0.0.1:${await freePort()}`;
  for (const [mode, url] of [['watching', etcd.url], ['immediate', etcd.url], ['unreachable', unreachable]] as const) {
    const t0 = Date.now();
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { env: { ...process.env, URL: url, MODE: mode, PREFIX: P }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    const exit = await new Promise<number | string>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve('still running after 15 s');
      }, 15_000);
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        resolve(code ?? String(signal));
      });
    });
    t.diagnostic(`${mode}: child exited (${exit}) after ${Date.now() - t0} ms`);
    assert.equal(exit, 0, `${mode}: ${out}`);
    assert.match(out, /"state":"stopped"/, mode);
  }
});
