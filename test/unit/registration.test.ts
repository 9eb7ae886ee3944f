// Registration binds health to the registry: the loop's view of containers and Docker's events drive the
// health tracker, and each verdict becomes one register or deregister, with the container id and address.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../agent/core/logger.js';
import { HealthTracker } from '../../agent/health/health-tracker.js';
import type { ProbeRunner } from '../../agent/health/probes.js';
import { Registration, type RegistryWriter } from '../../agent/health/registration.js';
import type { ContainerInfo, DockerEvent } from '../../agent/adapters/docker/docker-observer.js';
import { FakeClock, T0, settle } from '../helpers/fake-clock.js';

const noProbes: ProbeRunner = { probe: () => Promise.reject(new Error('no probed checks in these tests')), release: () => {} };

function setup(probes: ProbeRunner = noProbes) {
  const clock = new FakeClock();
  const ops: string[] = [];
  const registry: RegistryWriter = {
    register: async (r) => {
      ops.push(`register ${r.service}/${r.version} ${r.address}:${r.port} ${r.container ?? '-'} ${r.healthySince}`);
      return { ok: true, changed: 1 };
    },
    deregister: async (service, version) => {
      ops.push(`deregister ${service}/${version}`);
      return { ok: true, changed: 1 };
    },
  };
  const tracker = new HealthTracker(probes, clock, silentLogger);
  const registration = new Registration(tracker, registry, '198.18.0.10', silentLogger, () => clock.now());
  return { clock, ops, tracker, registration };
}

const app = (id: string, state: string, extra: Partial<ContainerInfo> = {}): ContainerInfo =>
  ({ id, name: 'meshlet-n1_web-v1_1', composeService: 'web-v1', role: 'app', service: 'web', version: 'v1', state, image: 'web:1', ...extra });

const event = (action: string, id = 'c1', composeService = 'web-v1'): DockerEvent =>
  ({ id, action, composeService, service: 'web', version: 'v1', timeNano: BigInt(T0 + 5_000) * 1_000_000n });

test('an app without a check registers once its container runs, with the advertised address and container id', async () => {
  const { ops, registration } = setup();
  registration.update([{ service: 'web', version: 'v1', port: 8080 }], []);
  await settle();
  // No container yet: the instance is stopped, and deregistering what is not registered writes nothing in etcd.
  assert.deepEqual(ops, ['deregister web/v1']);
  registration.update([{ service: 'web', version: 'v1', port: 8080 }], [app('c1', 'running', { startedAt: new Date(T0).toISOString() })]);
  await settle();
  assert.deepEqual(ops.slice(1), [`register web/v1 198.18.0.10:8080 c1 ${new Date(T0).toISOString()}`]);
  // The same view again changes nothing.
  registration.update([{ service: 'web', version: 'v1', port: 8080 }], [app('c1', 'running', { startedAt: new Date(T0).toISOString() })]);
  await settle();
  assert.equal(ops.length, 2);
});

test('Docker events act at once: die deregisters, start registers again with the new container', async () => {
  const { clock, ops, registration } = setup();
  registration.update([{ service: 'web', version: 'v1', port: 8080 }], [app('c1', 'running', { startedAt: new Date(T0).toISOString() })]);
  await settle();
  registration.onEvent(event('die'));
  await clock.advance(5_000);
  registration.onEvent(event('start', 'c2'));
  await settle();
  assert.deepEqual(ops.slice(1), ['deregister web/v1', `register web/v1 198.18.0.10:8080 c2 ${new Date(T0 + 5_000).toISOString()}`]);
});

test('sidecar events and events of apps not placed here are ignored', async () => {
  const { ops, registration } = setup();
  registration.update([{ service: 'web', version: 'v1', port: 8080 }], [app('c1', 'running', { startedAt: new Date(T0).toISOString() })]);
  await settle();
  registration.onEvent(event('die', 's1', 'web-v1-envoy'));
  registration.onEvent({ ...event('die', 'x1', 'api-v1'), service: 'api' } as DockerEvent);
  await settle();
  assert.equal(ops.length, 1, JSON.stringify(ops));
});

test('an app no longer placed on this node is deregistered', async () => {
  const { ops, registration } = setup();
  registration.update([{ service: 'web', version: 'v1', port: 8080 }], [app('c1', 'running', { startedAt: new Date(T0).toISOString() })]);
  await settle();
  registration.update([], [app('c1', 'running', { startedAt: new Date(T0).toISOString() })]);
  await settle();
  assert.deepEqual(ops.slice(1), ['deregister web/v1']);
});

test('a container the loop sees exited is deregistered even without an event', async () => {
  const { ops, registration } = setup();
  registration.update([{ service: 'web', version: 'v1', port: 8080 }], [app('c1', 'running', { startedAt: new Date(T0).toISOString() })]);
  await settle();
  registration.update([{ service: 'web', version: 'v1', port: 8080 }], [app('c1', 'exited')]);
  await settle();
  assert.deepEqual(ops.slice(1), ['deregister web/v1']);
});

// One compose recreate (v1): kill, die, stop of the old container; create and start of the new one; then the old
// one's destroy. The instance is deregistered once when the old one stops and registered once when the new one is
// healthy: nothing for the old container's later events, nor for the next listing.
const okProbes: ProbeRunner = { probe: async () => ({ ok: true, detail: 'HTTP 200' }), release: () => {} };
const httpCheck = { kind: 'http' as const, path: '/health', timing: { intervalMs: 1_000, timeoutMs: 500, retries: 2, startPeriodMs: 0 } };

test('a recreate: one deregister when the old container stops, one register when the new one is healthy; the old one\'s destroy and the next listing change nothing', async () => {
  const { clock, ops, registration } = setup(okProbes);
  const apps = [{ service: 'web', version: 'v1', port: 8080, health: httpCheck }];
  registration.update(apps, [app('old', 'running', { startedAt: new Date(T0).toISOString() })]);
  await settle();
  assert.deepEqual(ops, [`register web/v1 198.18.0.10:8080 old ${new Date(T0).toISOString()}`]);
  ops.length = 0;
  for (const action of ['kill', 'die', 'stop']) registration.onEvent(event(action, 'old'));
  await clock.advance(300);
  registration.onEvent(event('start', 'new'));
  await settle();
  registration.onEvent(event('destroy', 'old'));
  await settle();
  // The pass after compose lists the new container with Docker's StartedAt (a few ms before its start event).
  registration.update(apps, [app('new', 'running', { startedAt: new Date(T0 + 298).toISOString() })]);
  await clock.advance(5_000); // several probe intervals
  assert.deepEqual(ops, ['deregister web/v1', `register web/v1 198.18.0.10:8080 new ${new Date(T0 + 300).toISOString()}`]);
});

test('a listing that shows the recreate\'s old container (exited) beside the new one (running) takes the running one, in either order', async () => {
  for (const order of [['old', 'new'], ['new', 'old']]) {
    const { ops, registration } = setup();
    const apps = [{ service: 'web', version: 'v1', port: 8080 }];
    registration.update(apps, [app('old', 'running', { startedAt: new Date(T0).toISOString() })]);
    for (const action of ['kill', 'die', 'stop']) registration.onEvent(event(action, 'old'));
    registration.onEvent(event('start', 'new'));
    await settle();
    assert.deepEqual(ops.slice(1).map((o) => o.split(' ').slice(0, 4).join(' ')), ['deregister web/v1', 'register web/v1 198.18.0.10:8080 new'], order.join(', '));
    const both = { old: app('old', 'exited'), new: app('new', 'running', { startedAt: new Date(T0 + 300).toISOString() }) };
    registration.update(apps, order.map((id) => both[id as 'old' | 'new']));
    await settle();
    registration.update(apps, order.map((id) => both[id as 'old' | 'new']));
    await settle();
    assert.equal(ops.length, 3, `${order.join(', ')}: ${JSON.stringify(ops)}`);
  }
});

test('deregister is asked once per stop, not again for each state that is not healthy (stopped → starting)', async () => {
  const { clock, ops, registration } = setup(okProbes);
  const apps = [{ service: 'web', version: 'v1', port: 8080, health: { ...httpCheck, timing: { ...httpCheck.timing, retries: 1 } } }];
  registration.update(apps, []);
  await settle();
  assert.deepEqual(ops, ['deregister web/v1'], 'nothing known yet: deregistered (an adopted registration goes)');
  registration.update(apps, [app('c1', 'exited')]);
  await clock.advance(100);
  assert.deepEqual(ops, ['deregister web/v1'], 'stopped again: not asked again');
});
