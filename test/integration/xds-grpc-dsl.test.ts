// The http DSL of issue 14 through a real proxyless gRPC client (@grpc/grpc-js-xds) against meshlet's ADS
// server: a sourceLabels rule applies to the caller it names only, withoutHeaders behaves as in the sidecar
// (the header must be present), a queryParams rule (which gRPC's client would ignore, matching every call)
// is left out, and retryOn with gRPC codes is accepted. Every snapshot is ACKed.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpcXds from '@grpc/grpc-js-xds';
import { SnapshotCache } from '../../agent/xds/snapshot-cache.js';
import { AdsServer } from '../../agent/xds/ads-server.js';
import { TYPE } from '../../agent/core/xds/envoy-types.js';
import { loadDesired } from '../../agent/core/documents/desired.js';
import { buildProxylessResources } from '../../agent/core/xds/build-xds.js';
import type { Caller } from '../../agent/core/xds/source-labels.js';
import { callMany, echoClient, instancesOf, startEcho, xdsBootstrap, type EchoServer } from '../helpers/grpc-mesh.js';
import { waitFor } from '../helpers/wait.js';

const NODE = 'proxyless~n1~client-v1';
const YAML = `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: greeter }
spec:
  protocol: grpc
  port: 50051
  versions:
    v1: { image: greeter:1, nodes: [n1] }
    v2: { image: greeter:2, port: 50052, nodes: [n1] }
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: client }
spec:
  protocol: grpc
  port: 50060
  versions: { v1: { image: client:1, nodes: [n1] } }
  upstreams: [{ service: greeter, mode: xds }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: ops }
spec:
  port: 50070
  versions: { v1: { image: ops:1, nodes: [n1] } }
  upstreams: [{ service: greeter, mode: xds }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: greeter }
spec:
  hosts: [greeter]
  http:
    - match: [{ sourceLabels: { app: client, version: v1 }, headers: { x-pick: { exact: a } } }]
      route: [{ destination: { host: greeter, subset: v2 } }]
    - match: [{ queryParams: { q: { exact: "1" } } }]
      route: [{ destination: { host: greeter, subset: v2 } }]
    - match: [{ withoutHeaders: { x-skip: { exact: "yes" } } }]
      retries: { attempts: 2, retryOn: "unavailable,cancelled,5xx" }
      route: [{ destination: { host: greeter, subset: v2 } }]
    - route: [{ destination: { host: greeter, subset: v1 } }]
`;

const cache = new SnapshotCache();
let server: AdsServer;
let v1: EchoServer;
let v2: EchoServer;
let client: ReturnType<typeof echoClient>;

function publishFor(caller: Caller): void {
  const { desired, issues } = loadDesired([{ source: 'greeter.yaml', text: YAML }], { xdsPort: 15010 });
  assert.deepEqual(issues, []);
  const r = cache.setSnapshot(NODE, buildProxylessResources(['greeter'], desired, instancesOf([v1, v2]), [], caller));
  assert.ok(r.ok, JSON.stringify(r));
}

/** 20 calls with `headers`: the versions that answered (no errors allowed). */
async function versions(headers: Record<string, string> = {}): Promise<Record<string, number>> {
  const t = await callMany(client, 20, { headers, concurrency: 4 });
  assert.deepEqual(t.errors, {}, JSON.stringify(headers));
  return t.byVersion;
}

before(async () => {
  [v1, v2] = await Promise.all([startEcho('v1-a', 'v1'), startEcho('v2-a', 'v2')]);
  server = new AdsServer({ cache });
  const port = await server.start(0);
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = xdsBootstrap(port, NODE);
  grpcXds.register();
  publishFor({ service: 'client', version: 'v1', namespace: 'default' });
  client = echoClient('xds:///greeter');
});

after(async () => {
  client?.close();
  await server?.stop();
  v1?.stop();
  v2?.stop();
});

test('the caller the sourceLabels rule names takes it; no other call does (the queryParams rule is not rendered)', async () => {
  assert.deepEqual(await versions({ 'x-pick': 'a' }), { v2: 20 });
  assert.deepEqual(await versions(), { v1: 20 }, 'a call without headers falls through to v1: gRPC would have matched the queryParams rule for it');
  const status = server.clients()[NODE]!;
  assert.deepEqual(Object.keys(status.acked).sort(), [TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route].sort());
  assert.deepEqual(status.nacked, {});
});

test('withoutHeaders: x-skip: no matches, x-skip: yes and no x-skip do not (as in the sidecar)', async () => {
  assert.deepEqual(await versions({ 'x-skip': 'no' }), { v2: 20 });
  assert.deepEqual(await versions({ 'x-skip': 'yes' }), { v1: 20 });
});

test('the same rules rendered for another caller (ops): the sourceLabels rule is gone', async () => {
  publishFor({ service: 'ops', version: 'v1', namespace: 'default' });
  await waitFor('the client to follow the new snapshot', async () => (await versions({ 'x-pick': 'a' })).v1 === 20 || undefined, 10_000, 0);
  assert.deepEqual(server.clients()[NODE]!.nacked, {});
});
