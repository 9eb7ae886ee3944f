// A `grpc` service through the real Envoy sidecar over HTTP/2: a plain grpc-js client dials the caller's
// sidecar on 127.0.0.1:<localPort>; weights split calls, a metadata (header) match picks a version, and a
// fault abort surfaces as the gRPC status Istio names.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { startEnvoyMesh, type EnvoyMesh } from '../helpers/envoy-mesh.js';
import { callMany, callOnce, echoClient, startEcho, type EchoServer } from '../helpers/grpc-mesh.js';
import { freePort } from '../helpers/etcd.js';
import type { RunningEnvoy } from '../helpers/envoy.js';

let mesh: EnvoyMesh;
let servers: EchoServer[];
let localPort: number;
let client: ReturnType<typeof echoClient>;
let sidecar: RunningEnvoy;

const yaml = (http: string) => `
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: web }
spec:
  port: 1
  versions: { v1: { image: web:1, nodes: [local] } }
  upstreams: [{ service: greeter, localPort: ${localPort} }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: greeter }
spec:
  protocol: grpc
  port: 2
  versions:
    v1: { image: greeter:1, nodes: [elsewhere] }
    v2: { image: greeter:2, port: 3, nodes: [elsewhere] }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: greeter }
spec:
  hosts: [greeter]
  http:
${http}
`;

const weights = (w1: number, w2: number) => `    - route:
        - { destination: { host: greeter, subset: v1 }, weight: ${w1} }
        - { destination: { host: greeter, subset: v2 }, weight: ${w2} }`;
const jason = `    - match: [{ headers: { end-user: { exact: jason } } }]
      route: [{ destination: { host: greeter, subset: v2 } }]`;

before(async () => {
  servers = await Promise.all([startEcho('greeter-v1', 'v1'), startEcho('greeter-v2', 'v2')]);
  localPort = await freePort();
  mesh = await startEnvoyMesh();
  mesh.apply(yaml(weights(100, 0)), servers.map((s) => ({ service: 'greeter', version: s.version, node: 'elsewhere', address: '127.0.0.1', port: s.port })));
  sidecar = await mesh.startSidecar('web-v1');
  client = echoClient(`127.0.0.1:${localPort}`);
});

after(async () => {
  client?.close();
  await mesh?.stop();
  for (const s of servers ?? []) s.stop();
});

test('a call goes through the sidecar to the servers over HTTP/2', async () => {
  const r = await callOnce(client);
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.reply.version, 'v1');
  const stats = await sidecar.stats('http2_total');
  assert.ok((stats['cluster.greeter|v1.upstream_cx_http2_total'] ?? 0) >= 1, JSON.stringify(stats));
});

for (const [w1, w2] of [[70, 30], [50, 50]] as const) {
  test(`grpc weights ${w1}/${w2} over 1,000 calls through Envoy land within 5 points`, async () => {
    mesh.apply(yaml(weights(w1, w2)));
    await mesh.synced('web-v1');
    const t = await callMany(client, 1000, { concurrency: 20 });
    assert.deepEqual(t.errors, {});
    const share = ((t.byVersion.v2 ?? 0) / 1000) * 100;
    assert.ok(Math.abs(share - w2) <= 5, `v2 got ${share}% (want ${w2} ± 5): ${JSON.stringify(t.byVersion)}`);
  });
}

test('a metadata match (end-user: jason) sends every call to v2; other calls follow the weights', async () => {
  mesh.apply(yaml(`${jason}\n${weights(100, 0)}`));
  await mesh.synced('web-v1');
  const jasons = await callMany(client, 200, { headers: { 'end-user': 'jason' } });
  assert.deepEqual(jasons.byVersion, { v2: 200 });
  const others = await callMany(client, 200, { headers: { 'end-user': 'maria' } });
  assert.deepEqual(others.byVersion, { v1: 200 });
});

test('a fault abort with grpcStatus reaches the client as that status', async () => {
  mesh.apply(yaml(`${weights(100, 0)}\n      fault: { abort: { grpcStatus: UNAVAILABLE, percentage: { value: 100 } } }`));
  await mesh.synced('web-v1');
  const r = await callOnce(client);
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.code, grpc.status.UNAVAILABLE);
});
