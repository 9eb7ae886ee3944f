// A `tcp` service through the real Envoy sidecar's TCP proxy: connections split by the VirtualService's tcp
// route weights, all versions without one, and a 100/0 flip that leaves the 0-weight version out.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startEnvoyMesh, type EnvoyMesh } from '../helpers/envoy-mesh.js';
import { exchange, exchangeMany, startTcpEcho, type TcpApp } from '../helpers/tcp-apps.js';
import { freePort } from '../helpers/etcd.js';

let mesh: EnvoyMesh;
let apps: TcpApp[];
let localPort: number;

const services = () => `
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: web }
spec:
  port: 1
  versions: { v1: { image: web:1, nodes: [local] } }
  upstreams: [{ service: store, localPort: ${localPort} }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: store }
spec:
  protocol: tcp
  port: 2
  versions:
    v1: { image: store:1, nodes: [elsewhere] }
    v2: { image: store:2, port: 3, nodes: [elsewhere] }
`;

const weights = (w1: number, w2: number) => `${services()}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: store }
spec:
  hosts: [store]
  tcp:
    - route:
        - { destination: { host: store, subset: v1 }, weight: ${w1} }
        - { destination: { host: store, subset: v2 }, weight: ${w2} }
`;

before(async () => {
  apps = await Promise.all([startTcpEcho('store', 'v1'), startTcpEcho('store', 'v2')]);
  localPort = await freePort();
  mesh = await startEnvoyMesh();
  mesh.apply(services(), apps.map((a) => a.instance('elsewhere')));
  await mesh.startSidecar('web-v1');
});

after(async () => {
  await mesh?.stop();
  for (const a of apps ?? []) await a.close();
});

test('bytes go both ways through the TCP proxy unchanged', async () => {
  const answer = await exchange(localPort, 'ping with spaces');
  assert.match(answer, /^v[12] store-v[12] ping with spaces$/);
});

test('no VirtualService: connections go to every version', async () => {
  mesh.apply(services());
  await mesh.synced('web-v1');
  const t = await exchangeMany(localPort, 400);
  assert.equal(t.failed, 0);
  for (const v of ['v1', 'v2']) assert.ok((t.byVersion[v] ?? 0) >= 120, JSON.stringify(t.byVersion));
});

for (const [w1, w2] of [[80, 20], [30, 70]] as const) {
  test(`tcp weights ${w1}/${w2} over 1,000 connections land within 5 points`, async () => {
    mesh.apply(weights(w1, w2));
    await mesh.synced('web-v1');
    const t = await exchangeMany(localPort, 1000);
    assert.equal(t.failed, 0);
    const share = ((t.byVersion.v2 ?? 0) / 1000) * 100;
    assert.ok(Math.abs(share - w2) <= 5, `v2 got ${share}% (want ${w2} ± 5): ${JSON.stringify(t.byVersion)}`);
  });
}

test('tcp weights 100/0 and 0/100 are accepted by Envoy and send every connection to one version', async () => {
  for (const [w1, w2, only] of [[100, 0, 'v1'], [0, 100, 'v2']] as const) {
    mesh.apply(weights(w1, w2));
    await mesh.synced('web-v1');
    const t = await exchangeMany(localPort, 200);
    assert.deepEqual(t.byVersion, { [only]: 200 }, `${w1}/${w2}`);
  }
});
