// Namespaced documents and FQDN hosts through real Envoy sidecars: a VirtualService in namespace web routing
// reviews.prod.svc.cluster.local (its destinations written three ways) is applied and routes web's caller;
// with exportTo ["."] a caller in another namespace keeps the plain round robin.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { sendMany, startHttpApp, type HttpApp } from '../helpers/http-apps.js';
import { startEnvoyMesh, type EnvoyMesh } from '../helpers/envoy-mesh.js';
import { freePort } from '../helpers/etcd.js';

let mesh: EnvoyMesh;
let apps: HttpApp[];
const port: Record<string, number> = {};

const services = () => `
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: reviews, namespace: prod }
spec:
  port: 2000
  versions:
    v1: { image: reviews:1, nodes: [elsewhere] }
    v2: { image: reviews:2, port: 2001, nodes: [elsewhere] }
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: productpage, namespace: web }
spec:
  port: 1000
  versions: { v1: { image: productpage:1, nodes: [local] } }
  upstreams: [{ service: reviews, localPort: ${port.productpage} }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: batch }
spec:
  port: 1001
  versions: { v1: { image: batch:1, nodes: [local] } }
  upstreams: [{ service: reviews, localPort: ${port.batch} }]
---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: { name: reviews, namespace: prod }
spec:
  host: reviews
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
`;

const route = (exportTo: string) => `
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: reviews-for-web
  namespace: web
spec:
  hosts: [reviews.prod.svc.cluster.local]
  gateways: [mesh]
  ${exportTo}
  http:
    - match: [{ headers: { end-user: { exact: jason } } }]
      route: [{ destination: { host: reviews.prod.svc, subset: v2 } }]
    - route:
        - { destination: { host: reviews.prod, subset: v1 }, weight: 80 }
        - { destination: { host: reviews.prod.svc.cluster.local, subset: v2 }, weight: 20 }
`;

const apply = async (rules: string) => {
  mesh.apply(`${services()}---${rules}`, apps.map((a) => a.instance('elsewhere')));
  await Promise.all([mesh.synced('productpage-v1'), mesh.synced('batch-v1')]);
};
const JASON = { headers: { 'end-user': 'jason' } };

before(async () => {
  apps = await Promise.all([startHttpApp('reviews', 'v1'), startHttpApp('reviews', 'v2')]);
  port.productpage = await freePort();
  port.batch = await freePort();
  mesh = await startEnvoyMesh();
  mesh.apply(`${services()}---${route('exportTo: ["."]')}`, apps.map((a) => a.instance('elsewhere')));
  await mesh.startSidecar('productpage-v1');
  await mesh.startSidecar('batch-v1');
});

after(async () => {
  await mesh?.stop();
  for (const a of apps ?? []) await a.close();
});

test('the FQDN-host VirtualService routes the caller in its namespace: header match to v2, else 80/20 within 3 points', async () => {
  await apply(route('exportTo: ["."]'));
  assert.deepEqual((await sendMany(port.productpage!, 100, JASON)).byVersion, { v2: 100 });
  const t = await sendMany(port.productpage!, 2000);
  assert.deepEqual(t.byStatus, { 200: 2000 });
  const share = ((t.byVersion.v2 ?? 0) / 2000) * 100;
  assert.ok(Math.abs(share - 20) <= 3, `v2 got ${share}% (want 20 ± 3): ${JSON.stringify(t.byVersion)}`);
});

test('exportTo ["."]: the caller in namespace default is not routed by it (round robin, the header ignored)', async () => {
  await apply(route('exportTo: ["."]'));
  const t = await sendMany(port.batch!, 400, JASON);
  assert.deepEqual(t.byStatus, { 200: 400 });
  for (const v of ['v1', 'v2']) assert.ok((t.byVersion[v] ?? 0) >= 120, JSON.stringify(t.byVersion));
});

test('exported everywhere (no exportTo): the caller in namespace default takes the route too', async () => {
  await apply(route(''));
  assert.deepEqual((await sendMany(port.batch!, 100, JASON)).byVersion, { v2: 100 });
});
