// sourceLabels and delegation through real Envoy sidecars (issue 14): two callers, web and ops, each with its
// own sidecar; a rule for `app: ops` is taken by ops's requests only, a rule for `app: web, version: v2` by
// neither (both run v1), and a delegate VirtualService's rules apply under the delegating rule's match.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { sendMany, type SendOptions } from '../helpers/http-apps.js';
import { startHttpApp, type HttpApp } from '../helpers/http-apps.js';
import { startEnvoyMesh, type EnvoyMesh } from '../helpers/envoy-mesh.js';
import { freePort } from '../helpers/etcd.js';

let mesh: EnvoyMesh;
let apps: HttpApp[];
let webPort: number;
let opsPort: number;

const yaml = () => `
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: web }
spec:
  port: 1000
  # web v2 runs on another node: no sidecar here carries version v2.
  versions: { v1: { image: web:1, nodes: [local] }, v2: { image: web:2, port: 1001, nodes: [elsewhere] } }
  upstreams: [{ service: api, localPort: ${webPort} }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: ops }
spec:
  port: 1100
  versions: { v1: { image: ops:1, nodes: [local] } }
  upstreams: [{ service: api, localPort: ${opsPort} }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: api }
spec:
  port: 2000
  versions:
    v1: { image: api:1, nodes: [elsewhere] }
    v2: { image: api:2, port: 2001, nodes: [elsewhere] }
    v3: { image: api:3, port: 2002, nodes: [elsewhere] }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api }
spec:
  hosts: [api]
  http:
    - match: [{ sourceLabels: { app: web, version: v2 }, port: 2000 }]
      route: [{ destination: { host: api, subset: v3 } }]
    - match: [{ sourceLabels: { app: ops }, uri: { prefix: /admin } }, { sourceLabels: { app: ops, version: v1 }, headers: { x-ops: { exact: "1" } } }]
      route: [{ destination: { host: api, subset: v2 } }]
    - match: [{ uri: { prefix: /team } }]
      headers: { request: { set: { x-delegated-by: api } } }
      delegate: { name: api-team }
    - match: [{ sourceNamespace: default, uri: { prefix: /ns } }]
      route: [{ destination: { host: api, subset: v3 } }]
    - route: [{ destination: { host: api, subset: v1 } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api-team }
spec:
  http:
    - match: [{ uri: { prefix: /team/reports } }]
      route: [{ destination: { host: api, subset: v3 } }]
    - match: [{ sourceLabels: { app: ops } }]
      route: [{ destination: { host: api, subset: v2 } }]
    - route: [{ destination: { host: api, subset: v1 } }]
`;

before(async () => {
  apps = await Promise.all(['v1', 'v2', 'v3'].map((v) => startHttpApp('api', v, `api-${v}`)));
  webPort = await freePort();
  opsPort = await freePort();
  mesh = await startEnvoyMesh();
  mesh.apply(yaml(), apps.map((a) => a.instance('elsewhere')));
  await mesh.startSidecar('web-v1');
  await mesh.startSidecar('ops-v1');
});

after(async () => {
  await mesh?.stop();
  for (const a of apps ?? []) await a.close();
});

/** 10 requests through `port`, all answered 200 by `version`. */
async function expectVersion(port: number, version: string, opts: SendOptions = {}): Promise<void> {
  const tally = await sendMany(port, 10, { ...opts, concurrency: 2 });
  assert.deepEqual(tally.byStatus, { 200: 10 }, JSON.stringify(opts));
  assert.deepEqual(tally.byVersion, { [version]: 10 }, `${port === webPort ? 'web' : 'ops'} ${JSON.stringify(opts)}`);
}

test('a sourceLabels rule for app ops is taken by ops\'s requests only', async () => {
  await expectVersion(opsPort, 'v2', { path: '/admin/x' });
  await expectVersion(webPort, 'v1', { path: '/admin/x' });
  await expectVersion(opsPort, 'v2', { path: '/', headers: { 'x-ops': '1' } });
  await expectVersion(webPort, 'v1', { path: '/', headers: { 'x-ops': '1' } });
  await expectVersion(opsPort, 'v1', { path: '/other' });
});

test('sourceNamespace default: every caller (all in namespace default) takes the rule', async () => {
  await expectVersion(webPort, 'v3', { path: '/ns/1' });
  await expectVersion(opsPort, 'v3', { path: '/ns/1' });
});

test('a rule for app web, version v2 is taken by neither caller: web runs v1', async () => {
  const before = apps[2]!.seen.length;
  await expectVersion(webPort, 'v1');
  await expectVersion(opsPort, 'v1');
  assert.equal(apps[2]!.seen.length, before, 'v3 (the web v2 rule\'s destination) got nothing');
});

test('delegate: the delegate\'s rules apply under the /team match, with the root\'s headers; sourceLabels inside a delegate too', async () => {
  await expectVersion(webPort, 'v3', { path: '/team/reports/1' });
  await expectVersion(webPort, 'v1', { path: '/team/x' });
  await expectVersion(opsPort, 'v2', { path: '/team/x' });
  await expectVersion(opsPort, 'v3', { path: '/team/reports' });
  // Outside the root's match the delegate's rules do not apply: /reports is not under /team.
  await expectVersion(webPort, 'v1', { path: '/reports' });
  const seen = apps[2]!.seen.at(-1)!;
  assert.equal(seen.headers['x-delegated-by'], 'api', 'the root rule\'s header operations apply to the delegate\'s rules');
});
