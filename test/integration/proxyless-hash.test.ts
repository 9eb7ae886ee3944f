// consistentHash for a real proxyless gRPC client (@grpc/grpc-js-xds, gRFC A42): RING_HASH with a header hash
// keeps each header value on one server; useSourceIp hashes the channel (one client, one server).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpcXds from '@grpc/grpc-js-xds';
import { SnapshotCache } from '../../agent/xds/snapshot-cache.js';
import { AdsServer } from '../../agent/xds/ads-server.js';
import { loadDesired } from '../../agent/core/documents/desired.js';
import { buildProxylessResources } from '../../agent/core/xds/build-xds.js';
import { checkResources } from '../../agent/envoy-proto/check-envoy.js';
import { callMany, echoClient, instancesOf, startEcho, xdsBootstrap, type EchoServer } from '../helpers/grpc-mesh.js';
import { waitFor } from '../helpers/wait.js';

const NODE = 'proxyless~n1~client-v1';
const cache = new SnapshotCache();
let server: AdsServer;
let servers: EchoServer[];
let client: ReturnType<typeof echoClient>;

const mesh = (hash: string) => `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: greeter }
spec:
  protocol: grpc
  port: 50051
  versions: { v1: { image: greeter:1, nodes: [n1] } }
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: client }
spec:
  protocol: grpc
  port: 50060
  versions: { v1: { image: client:1, nodes: [n1] } }
  upstreams: [{ service: greeter, mode: xds }]
${hash ? `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: greeter }
spec: { host: greeter, trafficPolicy: { loadBalancer: { consistentHash: ${hash} } } }
` : ''}`;

/** Publishes the mesh; checks the resources strictly first. */
function publish(hash: string) {
  const { desired, issues } = loadDesired([{ source: 'greeter.yaml', text: mesh(hash) }], { xdsPort: 15010 });
  assert.deepEqual(issues, []);
  const res = buildProxylessResources(['greeter'], desired, instancesOf(servers), []);
  assert.deepEqual(checkResources('proxyless', res), []);
  assert.ok(cache.setSnapshot(NODE, res).ok);
  return res;
}

before(async () => {
  servers = await Promise.all(['a', 'b', 'c'].map((x) => startEcho(`v1-${x}`, 'v1')));
  server = new AdsServer({ cache });
  const port = await server.start(0);
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = xdsBootstrap(port, NODE);
  grpcXds.register();
  publish('');
  client = echoClient('xds:///greeter');
});

after(async () => {
  client?.close();
  await server?.stop();
  for (const s of servers ?? []) s.stop();
});

test('httpHeaderName: the client uses RING_HASH; each x-user value stays on one server, the values spread', async () => {
  const res = publish('{ httpHeaderName: x-user, ringHash: { minimumRingSize: 1024 } }');
  assert.equal(res.clusters[0]!.lb_policy, 'RING_HASH');
  await waitFor('the client to hash', async () => {
    const t = await callMany(client, 30, { concurrency: 3, headers: { 'x-user': 'probe' } });
    return Object.keys(t.byServer).length === 1;
  }, 10_000, 50);
  const homes = new Map<string, string[]>();
  for (let u = 0; u < 12; u++) {
    const t = await callMany(client, 20, { concurrency: 4, headers: { 'x-user': `user-${u}` } });
    assert.deepEqual(t.errors, {});
    homes.set(`user-${u}`, Object.keys(t.byServer));
  }
  for (const [user, on] of homes) assert.equal(on.length, 1, `${user} went to ${on.join(', ')}`);
  assert.ok(new Set([...homes.values()].flat()).size >= 2, JSON.stringify([...homes]));
});

test('useSourceIp: gRPC hashes its channel, so every call of this client goes to one server', async () => {
  const res = publish('{ useSourceIp: true }');
  assert.deepEqual((res.routes[0]!.virtual_hosts as { routes: { route: { hash_policy: unknown } }[] }[])[0]!.routes[0]!.route.hash_policy, [{ filter_state: { key: 'io.grpc.channel_id' } }]);
  await waitFor('the client to hash its channel', async () => Object.keys((await callMany(client, 60, { concurrency: 6 })).byServer).length === 1, 10_000, 50);
  const t = await callMany(client, 300, { concurrency: 10 });
  assert.deepEqual(t.errors, {});
  assert.equal(Object.keys(t.byServer).length, 1, JSON.stringify(t.byServer));
  // Control: round robin again spreads the same calls over all three.
  publish('');
  await waitFor('round robin', async () => Object.keys((await callMany(client, 60, { concurrency: 6 })).byServer).length === 3, 10_000, 50);
});
