// The publisher between the loop and the snapshot cache: valid snapshots are served, a refused one leaves the
// last good one serving and is reported, workloads gone stop being served, and outside proxyless clients get
// resources for the services they name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../agent/core/logger.js';
import { SnapshotCache } from '../../agent/xds/snapshot-cache.js';
import { XdsPublisher } from '../../agent/xds/publisher.js';
import { TYPE } from '../../agent/core/xds/envoy-types.js';
import { greeterMesh, greeterResources, type EchoServer } from '../helpers/grpc-mesh.js';

const servers = [{ id: 'g1', version: 'v1', port: 50051 }, { id: 'g2', version: 'v2', port: 50052 }] as EchoServer[];
const good = (w1: number) => greeterResources({ weights: { v1: w1, v2: 100 - w1 } }, servers);

test('valid snapshots are served; a refused one keeps the last good one and is reported per node id', () => {
  const cache = new SnapshotCache();
  const pub = new XdsPublisher(cache, silentLogger);
  const desired = greeterMesh({ weights: { v1: 90, v2: 10 } });
  pub.publish({ 'proxyless~n1~client-v1': good(90) }, desired, []);
  const first = cache.getSnapshot('proxyless~n1~client-v1');
  assert.ok(first);
  assert.deepEqual(pub.errors(), {});

  const bad = good(50);
  (bad.clusters[0] as Record<string, unknown>).lb_policy = 'NOT_A_POLICY';
  pub.publish({ 'proxyless~n1~client-v1': bad }, desired, []);
  assert.equal(cache.getSnapshot('proxyless~n1~client-v1')!.version, first.version, 'the last good snapshot keeps serving');
  const errors = pub.errors()['proxyless~n1~client-v1'];
  assert.ok(errors && errors.some((e) => e.includes('lb_policy')), JSON.stringify(pub.errors()));

  pub.publish({ 'proxyless~n1~client-v1': good(50) }, desired, []);
  assert.notEqual(cache.getSnapshot('proxyless~n1~client-v1')!.version, first.version);
  assert.deepEqual(pub.errors(), {}, 'errors clear once a good snapshot is published');
});

test('a node id missing from the pass stops being served', () => {
  const cache = new SnapshotCache();
  const pub = new XdsPublisher(cache, silentLogger);
  const desired = greeterMesh({ weights: { v1: 90, v2: 10 } });
  pub.publish({ a: good(90), b: good(90) }, desired, []);
  assert.deepEqual(cache.nodeIds(), ['a', 'b']);
  pub.publish({ a: good(90) }, desired, []);
  assert.deepEqual(cache.nodeIds(), ['a']);
});

test('an outside proxyless client is served the services it names, and nothing for unknown names', () => {
  const cache = new SnapshotCache();
  const pub = new XdsPublisher(cache, silentLogger);
  pub.publish({}, greeterMesh({ weights: { v1: 90, v2: 10 } }), []);
  const snap = cache.resolve('proxyless~elsewhere~app', ['greeter']);
  assert.ok(snap);
  assert.deepEqual([...snap.resources[TYPE.listener].keys()], ['greeter']);
  assert.equal(cache.resolve('proxyless~elsewhere~other', ['no-such-service']), undefined);
});

test('client status keeps the short type names, the ACKed versions and the last NACK', () => {
  const pub = new XdsPublisher(new SnapshotCache(), silentLogger);
  const status = pub.clientStatus({
    'sidecar~n1~web-v1': {
      connected: true,
      streams: 1,
      acked: { [TYPE.cluster]: 'c1', [TYPE.listener]: 'l1' },
      nacked: { [TYPE.route]: { version: 'r2', message: 'bad regex', at: '2026-12-01T00:00:00.000Z' } },
    },
  });
  assert.deepEqual(status, {
    'sidecar~n1~web-v1': {
      connected: true,
      acked: { Cluster: 'c1', Listener: 'l1' },
      nack: { type: 'RouteConfiguration', version: 'r2', message: 'bad regex', at: '2026-12-01T00:00:00.000Z' },
    },
  });
});
