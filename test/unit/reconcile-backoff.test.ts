// The loop under a failure that lasts (Docker away, an image missing), on the fake clock: failing passes back
// off whatever triggers arrive, the failure is logged once per reason, the recovery once with the count and the
// duration; a desired change ends a backoff (no sooner than the floor), a Docker event does not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { Reconciler, RETRY_FLOOR_MS } from '../../agent/reconcile.js';
import { loadTemplates } from '../../agent/adapters/files/templates.js';
import { contentHash } from '../../agent/core/model/canonical.js';
import { ExternalError } from '../../agent/core/errors.js';
import type { ContainerInfo } from '../../agent/adapters/docker/docker-observer.js';
import { FakeDockerObserver, RecordingComposeRunner } from '../helpers/docker-fakes.js';
import { FakeSource, RecordingStateStore } from '../helpers/loop-fakes.js';
import { FakeClock, settle, T0 } from '../helpers/fake-clock.js';
import { RecordingLogger } from '../helpers/recording-logger.js';
import { tempDir } from '../helpers/paths.js';

const PROJECT = 'meshlet-node-a';
const AWAY = 'Docker: could not list the containers of project meshlet-node-a: connect ENOENT /var/run/docker.sock';
const mesh = (image = 'web:1', port = 18080) => `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: web }
spec:
  port: ${port}
  versions: { v1: { image: "${image}", nodes: [node-a] } }
`;

async function setup(o: { failureSummaryMs?: number } = {}) {
  const clock = new FakeClock();
  const log = new RecordingLogger(() => clock.now());
  const source = new FakeSource();
  source.load(mesh());
  const ops: string[] = [];
  const docker = new FakeDockerObserver(ops);
  for (const img of ['web:1', 'envoy:test']) docker.images.add(img);
  const compose = new RecordingComposeRunner('v1', ops);
  compose.onUp = (project, file) => {
    const doc = parse(readFileSync(file, 'utf8')) as { services: Record<string, { image: string }> };
    const list: ContainerInfo[] = Object.entries(doc.services).map(([name, svc]) => ({ id: `id-${name}`, name, composeService: name, state: 'running', image: svc.image, configHash: contentHash(svc) }));
    docker.setContainers(project, list);
  };
  // Every pass publishes first thing: the publish times are the pass times (ms after T0).
  const passAt: number[] = [];
  const stateDir = tempDir('meshlet-backoff-');
  const templates = await loadTemplates();
  const r = new Reconciler(
    { node: 'node-a', project: PROJECT, stateDir, prefix: '/meshlet', advertiseAddress: '127.0.0.1', sidecarImage: 'envoy:test', xdsPort: 15010, adminPorts: { from: 15100, to: 15199 } },
    {
      source, docker, compose, templates: async () => templates, state: new RecordingStateStore(stateDir, ops), clock, log, random: () => 0.5,
      ...(o.failureSummaryMs !== undefined ? { failureSummaryMs: o.failureSummaryMs } : {}),
      publish: () => void passAt.push(clock.now() - T0),
      report: async () => {},
    },
  );
  await r.init();
  const running = r.run();
  const stop = async () => {
    r.triggers.close();
    await running;
  };
  return { r, clock, log, source, docker, ops, passAt, running, stop };
}

/** Waits (real time) for a pass that does file I/O, which the fake clock's settle() does not wait for. */
async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * `ms` of fake time in 50 ms steps, notifying `reasons` at every step (a trigger storm). Each step first waits for
 * the failing loop to be back in its backoff: a failed apply writes files (real I/O) before it fails.
 */
async function storm(clock: FakeClock, r: Reconciler, ms: number, reasons: string[]): Promise<void> {
  for (let t = 0; t < ms; t += 50) {
    await until('the loop to back off', () => clock.pending > 0);
    for (const reason of reasons) r.triggers.notify(reason);
    await clock.advance(50);
  }
}

const lines = (log: RecordingLogger) => log.since(0).map((l) => `${l.level} ${l.msg}`);

test('Docker away for 30 s under a storm of events: passes at 0, 0.5, 1.5, 3.5, 7.5, 15.5 s; one error line; recovery is one line with count and duration', async () => {
  const { r, clock, log, docker, passAt, stop } = await setup();
  docker.failLists(new ExternalError(AWAY));
  r.triggers.notify('etcd');
  await settle();
  await storm(clock, r, 30_000, ['docker die web-v1', 'registry', 'drift check']);
  assert.deepEqual(passAt, [0, 500, 1_500, 3_500, 7_500, 15_500], 'the backoff doubles from 0.5 s; 1,800 triggers add no pass');
  assert.deepEqual(lines(log), ['error pass failed']);
  assert.equal(log.lines[0]!.fields.error, AWAY);
  assert.deepEqual(log.lines.filter((l) => l.level === 'debug').map((l) => l.fields.failures), [2, 3, 4, 5, 6], 'repeats only at debug, counted');
  assert.equal(r.stats.failedPasses, 6);

  // Docker answers again: its event feed reconnects ("docker resync"), which ends the 16 s wait at once.
  docker.failLists();
  r.triggers.notify('docker resync');
  await until('the recovery line', () => log.since(0, /recovered/).length > 0);
  assert.deepEqual(passAt.slice(6), [30_000]);
  const [recovered] = log.since(0, /recovered/);
  assert.equal(recovered!.level, 'info');
  assert.equal(recovered!.msg, 'pass recovered');
  assert.deepEqual({ failures: recovered!.fields.failures, forMs: recovered!.fields.forMs, lastError: recovered!.fields.lastError }, { failures: 6, forMs: 30_000, lastError: AWAY });
  assert.deepEqual(lines(log).filter((l) => !l.startsWith('info applying')), ['error pass failed', 'info pass recovered'], 'two lines for the whole outage');
  await stop();
});

test('during a backoff a desired change ends the wait (not before the floor) and applies once Docker is back; Docker events do not', async () => {
  const { r, clock, log, source, docker, ops, passAt, stop } = await setup();
  docker.failLists(new ExternalError(AWAY));
  r.triggers.notify('etcd');
  await clock.advance(3_600); // failed passes at 0, 0.5, 1.5 and 3.5 s; the next waits until 7.5 s
  assert.deepEqual(passAt, [0, 500, 1_500, 3_500]);
  r.triggers.notify('docker die web-v1');
  await clock.advance(100);
  docker.failLists(); // Docker is back, unnoticed: no event says so
  source.load(mesh('web:1', 18090));
  r.triggers.notify('etcd'); // 3.7 s: before the floor (3.5 s + 1 s)
  await clock.advance(RETRY_FLOOR_MS - 250);
  assert.deepEqual(passAt, [0, 500, 1_500, 3_500], 'nothing before the floor');
  await clock.advance(100);
  await until('the change to apply', () => ops.some((o) => o.startsWith('up ')) && log.since(0, /recovered/).length > 0);
  assert.deepEqual(passAt, [0, 500, 1_500, 3_500, 3_500 + RETRY_FLOOR_MS], 'the desired change went at the floor, not at 7.5 s');
  assert.equal(r.state.appliedRevision, source.revision);
  assert.deepEqual(lines(log).filter((l) => !l.startsWith('info applying')), ['error pass failed', 'info pass recovered']);
  await stop();
});

test('another reason is one line naming the previous one with its count; the recovery counts every failure', async () => {
  const { r, clock, log, docker, stop } = await setup();
  docker.failLists(new ExternalError(AWAY));
  r.triggers.notify('etcd');
  await clock.advance(600); // two failures (0 and 0.5 s)
  const refused = 'Docker: could not list the containers of project meshlet-node-a: connect ECONNREFUSED /var/run/docker.sock';
  docker.failLists(new ExternalError(refused));
  await clock.advance(4_000); // 1.5 s and 3.5 s: the new reason, then a repeat
  assert.deepEqual(lines(log), ['error pass failed', 'error pass failed']);
  assert.equal(log.lines.filter((l) => l.level !== 'debug')[1]!.fields.error, refused);
  assert.deepEqual(log.lines.filter((l) => l.level !== 'debug')[1]!.fields.previous, { error: AWAY, reasons: ['etcd'], failures: 2, forMs: 1_500 });
  docker.failLists();
  r.triggers.notify('docker resync');
  await until('the recovery line', () => log.since(0, /recovered/).length > 0);
  assert.equal(log.since(0, /recovered/)[0]!.fields.failures, 4);
  await stop();
});

test('a failure that lasts is summarised at most once per summary period, with the count and how long', async () => {
  const { r, clock, log, docker, stop } = await setup({ failureSummaryMs: 60_000 });
  docker.failLists(new ExternalError(AWAY));
  r.triggers.notify('etcd');
  await clock.advance(185_000); // failures at 0, .5, 1.5, 3.5, 7.5, 15.5, 31.5, 61.5, 91.5, 121.5, 151.5, 181.5 s
  assert.equal(r.stats.failedPasses, 12, 'capped at 30 s');
  const summaries = log.since(0, /still/);
  assert.deepEqual(summaries.map((l) => [l.at - T0, l.fields.failures, l.fields.forMs]), [[61_500, 8, 61_500], [121_500, 10, 121_500], [181_500, 12, 181_500]]);
  assert.deepEqual(summaries.map((l) => l.level), ['warn', 'warn', 'warn']);
  assert.equal(log.since(0).length, 4, 'the first failure and three summaries');
  await stop();
});

test('a failed apply action (an image missing) backs off the same way, logged once with the action; a desired change that drops it recovers', async () => {
  const { r, clock, log, source, passAt, stop } = await setup();
  source.load(mesh('web:2'));
  r.triggers.notify('etcd');
  await until('the first failure', () => log.since(0, /apply failed/).length === 1);
  await storm(clock, r, 4_000, ['docker die web-v1']);
  assert.deepEqual(passAt, [0, 500, 1_500, 3_500]);
  const failed = log.since(0, /apply failed/);
  assert.equal(failed.length, 1);
  assert.equal(failed[0]!.level, 'error');
  assert.equal(failed[0]!.fields.action, 'check images');
  assert.match(String(failed[0]!.fields.error), /image not present on this host: web:2/);
  await until('the loop to back off', () => clock.pending > 0);
  source.load(mesh('web:1'));
  r.triggers.notify('etcd'); // 4 s: the wait ends at the floor, 1 s after the failure at 3.5 s
  await clock.advance(RETRY_FLOOR_MS);
  await until('the recovery line', () => log.since(0, /recovered/).length > 0);
  assert.equal(log.since(0, /recovered/)[0]!.fields.failures, 4);
  await stop();
});

test('while the loop backs off, publishNow() publishes (a route change reaches the sidecars); when idle it does not', async () => {
  const { r, clock, source, docker, passAt, stop } = await setup();
  await r.publishNow();
  assert.deepEqual(passAt, [], 'idle: the next pass publishes');
  docker.failLists(new ExternalError(AWAY));
  r.triggers.notify('etcd');
  await clock.advance(600); // failed at 0 and 0.5 s; waiting until 1.5 s
  source.load(mesh('web:1', 18090));
  await r.publishNow();
  assert.deepEqual(passAt, [0, 500, 600], 'published during the backoff');
  await stop();
});

test('close() ends a backoff at once: the loop stops without waiting it out', async () => {
  const { r, clock, docker, running } = await setup();
  docker.failLists(new ExternalError(AWAY));
  r.triggers.notify('etcd');
  await clock.advance(200_000); // the backoff is at its 30 s cap
  assert.ok(clock.pending > 0, 'a backoff is waiting');
  r.triggers.close();
  await running;
  assert.equal(clock.pending, 0);
});
