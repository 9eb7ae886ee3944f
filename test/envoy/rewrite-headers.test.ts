// Istio rewrite and header operations through a real Envoy sidecar: the app sees the rewritten path and Host,
// request headers set/added/removed, and the caller sees response headers set/added/removed.
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { send } from '../helpers/http-apps.js';
import { destination, startTrafficMesh, type TrafficMesh } from '../helpers/traffic-mesh.js';

let t: TrafficMesh;

const vs = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api }
spec:
  hosts: [api]
  http:
    - match: [{ uri: { prefix: /old/ } }]
      rewrite: { uri: /new/ }
      route: [${destination('v1')}]
    - match: [{ uri: { exact: /legacy } }]
      rewrite: { uri: /current, authority: api.internal }
      route: [${destination('v1')}]
    - match: [{ uri: { prefix: /host } }]
      rewrite: { authority: backend.example }
      route: [${destination('v1')}]
    - match: [{ uri: { prefix: /headers } }]
      headers:
        request:
          set: { x-set: by-mesh }
          add: { x-added: from-mesh }
          remove: [x-secret]
        response:
          set: { x-version: masked }
          add: { x-served-by: meshlet }
          remove: [x-app]
      route: [${destination('v1')}]
    - route: [${destination('v1')}]
`;

before(async () => {
  t = await startTrafficMesh({ v1: 1 }, { rules: vs });
});

beforeEach(() => t.reset());

after(async () => {
  await t?.stop();
});

const lastSeen = () => t.app('v1').seen.at(-1)!;

test('uri rewrite of a prefix match swaps the prefix and keeps the rest and the query', async () => {
  const r = await send(t.port, { path: '/old/items/7?q=1', host: 'api' });
  assert.equal(r.status, 200);
  assert.equal(lastSeen().path, '/new/items/7?q=1');
  assert.equal(lastSeen().headers.host, 'api', 'the Host is kept without an authority rewrite');
});

test('uri rewrite of an exact match replaces the path; authority rewrite sets the Host the app sees', async () => {
  const r = await send(t.port, { path: '/legacy', host: 'api' });
  assert.equal(r.status, 200);
  assert.equal(lastSeen().path, '/current');
  assert.equal(lastSeen().headers.host, 'api.internal');
});

test('authority rewrite alone keeps the path', async () => {
  await send(t.port, { path: '/host/a', host: 'api' });
  assert.equal(lastSeen().path, '/host/a');
  assert.equal(lastSeen().headers.host, 'backend.example');
});

test('routes without rewrite pass path and Host through unchanged', async () => {
  await send(t.port, { path: '/other/old/', host: 'api:9000' });
  assert.equal(lastSeen().path, '/other/old/');
  assert.equal(lastSeen().headers.host, 'api:9000');
});

test('request headers: set overwrites the caller value, add appends to it, remove drops it', async () => {
  const r = await send(t.port, { path: '/headers', headers: { 'x-set': 'by-caller', 'x-added': 'from-caller', 'x-secret': 'token', 'x-kept': 'yes' } });
  assert.equal(r.status, 200);
  const h = lastSeen().headers;
  assert.equal(h['x-set'], 'by-mesh');
  assert.equal(h['x-added'], 'from-caller, from-mesh');
  assert.equal(h['x-secret'], undefined);
  assert.equal(h['x-kept'], 'yes');
});

test('request headers: set and add also apply when the caller sent none', async () => {
  await send(t.port, { path: '/headers' });
  const h = lastSeen().headers;
  assert.equal(h['x-set'], 'by-mesh');
  assert.equal(h['x-added'], 'from-mesh');
});

test("response headers: set overwrites the app's, add adds, remove drops", async () => {
  const r = await send(t.port, { path: '/headers' });
  assert.equal(r.headers['x-version'], 'masked');
  assert.equal(r.headers['x-served-by'], 'meshlet');
  assert.equal(r.headers['x-app'], undefined);
  const plain = await send(t.port, { path: '/plain' });
  assert.equal(plain.headers['x-version'], 'v1', 'other routes leave the answer alone');
  assert.equal(plain.headers['x-app'], 'api-v1-0');
  assert.equal(plain.headers['x-served-by'], undefined);
});
