// The health tracker on a fake clock with scripted probes: Docker's interval/timeout/retries/startPeriod
// semantics, restarts, exec checks through Docker's health, no check at all, and removal.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../agent/core/logger.js';
import type { HealthCheck, HealthTiming } from '../../agent/core/model/model.js';
import { HealthTracker, type HealthState, type TrackedInstance } from '../../agent/health/health-tracker.js';
import type { ProbedCheck, ProbeResult, ProbeRunner } from '../../agent/health/probes.js';
import { FakeClock, T0 } from '../helpers/fake-clock.js';

/** Answers with the result set per instance ('hang' never answers); records every call. */
class FakeProbes implements ProbeRunner {
  readonly calls: { key: string; at: number; port: number }[] = [];
  readonly released: string[] = [];
  readonly results = new Map<string, ProbeResult | 'hang'>();

  constructor(private readonly clock: FakeClock) {}

  set(key: string, result: boolean | 'hang'): void {
    this.results.set(key, typeof result === 'boolean' ? { ok: result, detail: result ? 'HTTP 200' : 'HTTP 503' } : result);
  }

  probe(key: string, _address: string, port: number, _check: ProbedCheck, _timeoutMs: number): Promise<ProbeResult> {
    this.calls.push({ key, at: this.clock.now() - T0, port });
    const r = this.results.get(key) ?? { ok: false, detail: 'connection refused' };
    return r === 'hang' ? new Promise(() => {}) : Promise.resolve(r);
  }

  release(key: string): void {
    this.released.push(key);
  }
}

const timing = (t: Partial<HealthTiming> = {}): HealthTiming => ({ intervalMs: 1_000, timeoutMs: 500, retries: 3, startPeriodMs: 0, ...t });
const http = (t: Partial<HealthTiming> = {}): HealthCheck => ({ kind: 'http', path: '/healthz', timing: timing(t) });

function instance(key: string, health?: HealthCheck, port = 9080): TrackedInstance {
  const [service, version] = key.split('/') as [string, string];
  return { key, service, version, address: '127.0.0.1', port, ...(health ? { health } : {}) };
}

function setup() {
  const clock = new FakeClock();
  const probes = new FakeProbes(clock);
  const tracker = new HealthTracker(probes, clock, silentLogger);
  const changes: { key: string; state: HealthState; at: number }[] = [];
  tracker.onChange((key, state, since) => changes.push({ key, state, at: since - T0 }));
  const state = (key: string) => tracker.snapshot().get(key)?.state;
  return { clock, probes, tracker, changes, state };
}

describe('health tracker: probed checks', () => {
  test('starting until a probe passes; retries consecutive failures one interval apart make it unhealthy', async () => {
    const { clock, probes, tracker, changes, state } = setup();
    tracker.setInstances([instance('reviews/v1', http({ retries: 3 }))]);
    assert.equal(state('reviews/v1'), 'starting');
    await clock.advance(5_000);
    assert.equal(probes.calls.length, 0, 'no probe before the container is known to run');

    probes.set('reviews/v1', true);
    tracker.containerUpdate('reviews/v1', { running: true, startedAt: clock.now() });
    await clock.advance(0);
    assert.equal(state('reviews/v1'), 'healthy', 'first probe at once');
    probes.set('reviews/v1', false);
    await clock.advance(1_000);
    await clock.advance(1_000);
    assert.equal(state('reviews/v1'), 'healthy', 'two failures of three');
    assert.equal(tracker.snapshot().get('reviews/v1')!.failures, 2);
    await clock.advance(1_000);
    assert.equal(state('reviews/v1'), 'unhealthy');
    assert.deepEqual(probes.calls.map((c) => c.at), [5_000, 6_000, 7_000, 8_000]);
    assert.deepEqual(changes, [
      { key: 'reviews/v1', state: 'healthy', at: 5_000 },
      { key: 'reviews/v1', state: 'unhealthy', at: 8_000 },
    ]);
  });

  test('a probe that never answers fails at its timeout, and the next one starts an interval later', async () => {
    const { clock, probes, tracker, state } = setup();
    tracker.setInstances([instance('reviews/v1', http({ retries: 2, timeoutMs: 300, intervalMs: 1_000 }))]);
    probes.set('reviews/v1', 'hang');
    tracker.containerUpdate('reviews/v1', { running: true, startedAt: clock.now() });
    await clock.advance(299);
    assert.equal(tracker.snapshot().get('reviews/v1')!.failures, 0);
    await clock.advance(1);
    assert.equal(tracker.snapshot().get('reviews/v1')!.failures, 1);
    assert.match(tracker.snapshot().get('reviews/v1')!.detail, /timed out after 300 ms/);
    await clock.advance(1_300);
    assert.equal(state('reviews/v1'), 'unhealthy');
    assert.deepEqual(probes.calls.map((c) => c.at), [0, 1_300]);
  });

  test('start period: failures do not count while starting; then they do', async () => {
    const { clock, probes, tracker, changes, state } = setup();
    tracker.setInstances([instance('reviews/v1', http({ retries: 2, startPeriodMs: 5_000 }))]);
    tracker.containerUpdate('reviews/v1', { running: true, startedAt: new Date(clock.now()).toISOString() });
    await clock.advance(4_999);
    assert.equal(state('reviews/v1'), 'starting');
    assert.equal(tracker.snapshot().get('reviews/v1')!.failures, 0);
    assert.equal(probes.calls.length, 5);
    await clock.advance(1);
    assert.equal(tracker.snapshot().get('reviews/v1')!.failures, 1, 'the probe at 5 s is past the start period');
    await clock.advance(1_000);
    assert.deepEqual(changes, [{ key: 'reviews/v1', state: 'unhealthy', at: 6_000 }]);
  });

  test('start period: a success makes it healthy at once, and failures count from then on', async () => {
    const { clock, probes, tracker, changes } = setup();
    tracker.setInstances([instance('reviews/v1', http({ retries: 2, startPeriodMs: 10_000 }))]);
    tracker.containerUpdate('reviews/v1', { running: true, startedAt: clock.now() });
    await clock.advance(1_500);
    probes.set('reviews/v1', true);
    await clock.advance(500);
    probes.set('reviews/v1', false);
    await clock.advance(2_000);
    assert.deepEqual(changes, [
      { key: 'reviews/v1', state: 'healthy', at: 2_000 },
      { key: 'reviews/v1', state: 'unhealthy', at: 4_000 },
    ]);
  });

  test('the start period counts from the container start, not from when the agent first saw it', async () => {
    const { clock, probes, tracker, changes } = setup();
    tracker.setInstances([instance('reviews/v1', http({ retries: 1, startPeriodMs: 60_000 }))]);
    // Adopted after an agent restart: running for 10 minutes already.
    tracker.containerUpdate('reviews/v1', { running: true, startedAt: clock.now() - 600_000 });
    await clock.advance(0);
    assert.deepEqual(changes, [{ key: 'reviews/v1', state: 'unhealthy', at: 0 }]);
    assert.equal(probes.calls.length, 1);
  });

  test('recovery: one passing probe turns unhealthy back to healthy', async () => {
    const { clock, probes, tracker, changes } = setup();
    tracker.setInstances([instance('reviews/v1', http({ retries: 1 }))]);
    tracker.containerUpdate('reviews/v1', { running: true, startedAt: clock.now() });
    await clock.advance(0);
    probes.set('reviews/v1', true);
    await clock.advance(1_000);
    assert.deepEqual(changes.map((c) => `${c.state}@${c.at}`), ['unhealthy@0', 'healthy@1000']);
    assert.equal(tracker.snapshot().get('reviews/v1')!.failures, 0);
  });

  test('a restarted container (new start time, no stop seen) goes back to starting and is probed afresh', async () => {
    const { clock, probes, tracker, changes, state } = setup();
    tracker.setInstances([instance('reviews/v1', http({ startPeriodMs: 3_000 }))]);
    probes.set('reviews/v1', true);
    tracker.containerUpdate('reviews/v1', { running: true, startedAt: clock.now() });
    await clock.advance(10_500);
    assert.equal(state('reviews/v1'), 'healthy');
    probes.set('reviews/v1', false);
    tracker.containerUpdate('reviews/v1', { running: true, startedAt: clock.now() });
    assert.equal(state('reviews/v1'), 'starting');
    await clock.advance(2_000);
    assert.equal(state('reviews/v1'), 'starting', 'failures inside the new start period do not count');
    probes.set('reviews/v1', true);
    await clock.advance(1_000);
    assert.deepEqual(changes.map((c) => `${c.state}@${c.at}`), ['healthy@0', 'starting@10500', 'healthy@13500']);
    // The same start time again (a re-list) is not a restart.
    tracker.containerUpdate('reviews/v1', { running: true, startedAt: T0 + 10_500 });
    tracker.containerUpdate('reviews/v1', { running: true });
    assert.equal(state('reviews/v1'), 'healthy');
  });

  test('stopped while the container does not run: no probes; starting again when it runs', async () => {
    const { clock, probes, tracker, changes } = setup();
    tracker.setInstances([instance('reviews/v1', http())]);
    probes.set('reviews/v1', true);
    tracker.containerUpdate('reviews/v1', { running: true, startedAt: clock.now() });
    await clock.advance(500);
    tracker.containerUpdate('reviews/v1', { running: false });
    const before = probes.calls.length;
    await clock.advance(10_000);
    assert.equal(probes.calls.length, before);
    tracker.containerUpdate('reviews/v1', { running: true, startedAt: clock.now() });
    await clock.advance(0);
    assert.deepEqual(changes.map((c) => `${c.state}@${c.at}`), ['healthy@0', 'stopped@500', 'starting@10500', 'healthy@10500']);
  });

  test('removal stops probing, releases the probe target and reports the instance stopped', async () => {
    const { clock, probes, tracker, changes } = setup();
    tracker.setInstances([instance('reviews/v1', http()), instance('ratings/v1', http())]);
    probes.set('reviews/v1', true);
    probes.set('ratings/v1', true);
    tracker.containerUpdate('reviews/v1', { running: true, startedAt: clock.now() });
    tracker.containerUpdate('ratings/v1', { running: true, startedAt: clock.now() });
    await clock.advance(2_000);
    tracker.setInstances([instance('ratings/v1', http())]);
    assert.deepEqual(probes.released, ['reviews/v1']);
    const before = probes.calls.filter((c) => c.key === 'reviews/v1').length;
    await clock.advance(10_000);
    assert.equal(probes.calls.filter((c) => c.key === 'reviews/v1').length, before);
    assert.equal(probes.calls.filter((c) => c.key === 'ratings/v1').length, 13);
    assert.deepEqual([...tracker.snapshot().keys()], ['ratings/v1']);
    assert.deepEqual(changes.filter((c) => c.key === 'reviews/v1').map((c) => c.state), ['healthy', 'stopped']);
    tracker.stop();
    assert.equal(clock.pending, 0, 'no sleeper left behind');
  });

  test('setInstances is idempotent; a changed port starts over and probes the new port', async () => {
    const { clock, probes, tracker, changes } = setup();
    tracker.setInstances([instance('reviews/v1', http())]);
    probes.set('reviews/v1', true);
    tracker.containerUpdate('reviews/v1', { running: true, startedAt: clock.now() });
    await clock.advance(0);
    tracker.setInstances([instance('reviews/v1', http())]);
    tracker.setInstances([instance('reviews/v1', http())]);
    await clock.advance(500);
    assert.equal(probes.calls.length, 1, 'the same list again changes nothing');
    tracker.setInstances([instance('reviews/v1', http(), 9090)]);
    await clock.advance(0);
    assert.deepEqual(probes.calls.map((c) => `${c.port}@${c.at}`), ['9080@0', '9090@500']);
    assert.deepEqual(changes.map((c) => `${c.state}@${c.at}`), ['healthy@0', 'starting@500', 'healthy@500']);
  });

  test('a container update that comes before the instance is listed is kept for it', async () => {
    const { clock, probes, tracker, state } = setup();
    probes.set('reviews/v1', true);
    tracker.containerUpdate('reviews/v1', { running: true, startedAt: clock.now() });
    tracker.setInstances([instance('reviews/v1', http())]);
    await clock.advance(0);
    assert.equal(state('reviews/v1'), 'healthy');
  });
});

describe('health tracker: Docker-checked and unchecked instances', () => {
  test('exec: Docker health is authoritative and nothing is probed', async () => {
    const { clock, probes, tracker, changes } = setup();
    const exec: HealthCheck = { kind: 'exec', command: ['wget', '-q', '-O-', 'http://127.0.0.1:9080/'], timing: timing() };
    tracker.setInstances([instance('reviews/v1', exec)]);
    tracker.containerUpdate('reviews/v1', { running: true, startedAt: clock.now(), dockerHealth: 'starting' });
    await clock.advance(1_000);
    tracker.containerUpdate('reviews/v1', { running: true, dockerHealth: 'healthy' });
    await clock.advance(1_000);
    tracker.containerUpdate('reviews/v1', { running: true, dockerHealth: 'unhealthy' });
    await clock.advance(1_000);
    tracker.containerUpdate('reviews/v1', { running: true, dockerHealth: 'healthy' });
    tracker.containerUpdate('reviews/v1', { running: false });
    // A start event carries no health: Docker starts every run at "starting".
    tracker.containerUpdate('reviews/v1', { running: true });
    assert.deepEqual(changes.map((c) => `${c.state}@${c.at}`), ['healthy@1000', 'unhealthy@2000', 'healthy@3000', 'stopped@3000', 'starting@3000']);
    assert.equal(probes.calls.length, 0);
  });

  test('no check: healthy as soon as it runs, stopped when it does not', async () => {
    const { clock, probes, tracker, changes } = setup();
    tracker.setInstances([instance('details/v1')]);
    await clock.advance(100);
    tracker.containerUpdate('details/v1', { running: true, startedAt: clock.now() });
    await clock.advance(100);
    tracker.containerUpdate('details/v1', { running: false });
    assert.deepEqual(changes.map((c) => `${c.state}@${c.at}`), ['healthy@100', 'stopped@200']);
    assert.equal(probes.calls.length, 0);
  });
});
