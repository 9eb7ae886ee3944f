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

function setup() {
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
  const tracker = new HealthTracker(noProbes, clock, silentLogger);
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
