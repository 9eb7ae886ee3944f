// Weighted splits through a real Envoy sidecar, configured by meshlet's renderer and ADS server.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { startEnvoyMesh, type EnvoyMesh } from '../helpers/envoy-mesh.js';
import { sendMany, startHttpApp, type HttpApp } from '../helpers/http-apps.js';
import { freePort } from '../helpers/etcd.js';

let mesh: EnvoyMesh;
let apps: HttpApp[];
let localPort: number;

const yaml = (w1: number, w2: number) => `
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: web }
spec:
  port: 1
  versions: { v1: { image: web:1, nodes: [local] } }
  upstreams: [{ service: api, localPort: ${localPort} }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: api }
spec:
  port: 2
  versions:
    v1: { image: api:1, nodes: [elsewhere] }
    v2: { image: api:2, port: 3, nodes: [elsewhere] }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api }
spec:
  hosts: [api]
  http:
    - route:
        - { destination: { host: api, subset: v1 }, weight: ${w1} }
        - { destination: { host: api, subset: v2 }, weight: ${w2} }
`;

before(async () => {
  apps = await Promise.all([startHttpApp('api', 'v1'), startHttpApp('api', 'v2')]);
  localPort = await freePort();
  mesh = await startEnvoyMesh();
  mesh.apply(yaml(90, 10), apps.map((a) => a.instance('elsewhere')));
  await mesh.startSidecar('web-v1');
});

after(async () => {
  await mesh?.stop();
  for (const a of apps ?? []) await a.close();
});

for (const [w1, w2] of [[90, 10], [50, 50], [100, 0]] as const) {
  test(`${w1}/${w2} over 2,000 requests lands within 3 points`, async () => {
    mesh.apply(yaml(w1, w2));
    await mesh.synced('web-v1');
    const t = await sendMany(localPort, 2000, { concurrency: 16 });
    assert.deepEqual(t.byStatus, { 200: 2000 });
    const share = ((t.byVersion.v2 ?? 0) / 2000) * 100;
    assert.ok(Math.abs(share - w2) <= 3, `v2 got ${share}% (want ${w2} ± 3): ${JSON.stringify(t.byVersion)}`);
  });
}
