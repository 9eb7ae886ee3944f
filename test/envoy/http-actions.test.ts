// Istio route actions and the newer matches through a real Envoy sidecar (issue 14): a CORS preflight is
// answered for an allowed origin only, redirects answer 301/302 with the right Location, a direct response
// has its status and body, uriRegexRewrite is what the app sees, retry conditions by name and by status code
// hide an instance that fails that way, and queryParams / withoutHeaders / ignoreUriCase pick their rule.
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { send, sendMany, type SendOptions } from '../helpers/http-apps.js';
import { destination, startTrafficMesh, type TrafficMesh } from '../helpers/traffic-mesh.js';

let t: TrafficMesh;

const vs = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api }
spec:
  hosts: [api]
  http:
    - match: [{ uri: { prefix: /q }, queryParams: { debug: { exact: "1" } } }]
      route: [${destination('v2')}]
    - match: [{ uri: { prefix: /wo }, withoutHeaders: { x-skip: { exact: "yes" } } }]
      route: [${destination('v2')}]
    - match: [{ uri: { prefix: /present }, headers: { x-flag: {} } }, { uri: { prefix: /present }, queryParams: { flag: { regex: "*" } } }]
      route: [${destination('v2')}]
    - match: [{ uri: { prefix: /absent }, withoutHeaders: { x-flag: {} } }]
      route: [${destination('v2')}]
    - match: [{ uri: { exact: /Case }, ignoreUriCase: true }]
      route: [${destination('v2')}]
    - match: [{ uri: { prefix: /cors } }]
      corsPolicy:
        allowOrigins: [{ exact: "https://app.example" }, { prefix: "https://dev." }]
        allowMethods: [GET, POST]
        allowHeaders: [x-token]
        exposeHeaders: [x-version]
        maxAge: 1h
      route: [${destination('v1')}]
    - match: [{ uri: { prefix: /old } }]
      redirect: { uri: /new }
    - match: [{ uri: { prefix: /away } }]
      redirect: { uri: /moved, authority: elsewhere.example, redirectCode: 302 }
    - match: [{ uri: { prefix: /tls } }]
      redirect: { scheme: https, port: 8443 }
    - match: [{ uri: { exact: /down } }]
      directResponse: { status: 503, body: { string: "maintenance\\n" } }
    - match: [{ uri: { exact: /bytes } }]
      directResponse: { status: 200, body: { bytes: "aGVsbG8=" } }
    - match: [{ uri: { prefix: /v1/ } }]
      rewrite: { uriRegexRewrite: { match: "^/v1/([a-z]+)/([0-9]+)$", rewrite: "/api/\\\\2/\\\\1" } }
      route: [${destination('v2')}]
    - match: [{ uri: { prefix: /retry-5xx } }]
      retries: { attempts: 3, retryOn: 5xx }
      route: [${destination('v1')}]
    - match: [{ uri: { prefix: /retry-gateway } }]
      retries: { attempts: 3, retryOn: gateway-error }
      route: [${destination('v1')}]
    - match: [{ uri: { prefix: /retry-code } }]
      retries: { attempts: 3, retryOn: "connect-failure,409" }
      route: [${destination('v1')}]
    - match: [{ uri: { prefix: /retry-4xx } }]
      retries: { attempts: 3, retryOn: retriable-4xx }
      route: [${destination('v1')}]
    - match: [{ uri: { prefix: /host-route } }]
      headers: { request: { set: { host: route.example } } }
      route: [${destination('v2')}]
    - match: [{ uri: { prefix: /host-dest } }]
      route:
        - { destination: { host: api, subset: v2 }, weight: 100, headers: { request: { set: { Host: dest.example, x-dest: v2 } } } }
        - { destination: { host: api, subset: v1 }, weight: 0 }
    - route: [${destination('v1')}]
`;

before(async () => {
  t = await startTrafficMesh({ v1: 2, v2: 1 }, { rules: vs });
});

beforeEach(() => t.reset());

after(async () => {
  await t?.stop();
});

test('CORS preflight from an allowed origin is answered by Envoy with the policy; the app never sees it', async () => {
  const r = await send(t.port, { method: 'OPTIONS', path: '/cors/items', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } });
  assert.equal(r.status, 200);
  assert.equal(r.headers['access-control-allow-origin'], 'https://app.example');
  assert.equal(r.headers['access-control-allow-methods'], 'GET,POST');
  assert.equal(r.headers['access-control-allow-headers'], 'x-token');
  assert.equal(r.headers['access-control-max-age'], '3600');
  assert.equal(r.app, undefined, 'answered by Envoy');
  assert.equal(t.apps.v1!.reduce((n, a) => n + a.seen.length, 0), 0);
  const dev = await send(t.port, { method: 'OPTIONS', path: '/cors', headers: { origin: 'https://dev.team', 'access-control-request-method': 'GET' } });
  assert.equal(dev.headers['access-control-allow-origin'], 'https://dev.team', 'a prefix match allows it too');
});

test('CORS: another origin gets no Access-Control-Allow-Origin (its preflight goes on to the app, as Istio forwards it)', async () => {
  const r = await send(t.port, { method: 'OPTIONS', path: '/cors', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
  assert.equal(r.headers['access-control-allow-origin'], undefined);
  assert.equal(r.version, 'v1', 'the app answered');
  const get = await send(t.port, { path: '/cors', headers: { origin: 'https://evil.example' } });
  assert.equal(get.status, 200);
  assert.equal(get.headers['access-control-allow-origin'], undefined);
});

test('CORS: an actual request from an allowed origin gets the allow and expose headers on the app\'s answer', async () => {
  const r = await send(t.port, { path: '/cors', headers: { origin: 'https://app.example' } });
  assert.equal(r.status, 200);
  assert.equal(r.version, 'v1');
  assert.equal(r.headers['access-control-allow-origin'], 'https://app.example');
  assert.equal(r.headers['access-control-expose-headers'], 'x-version');
  const other = await send(t.port, { path: '/', headers: { origin: 'https://app.example' } });
  assert.equal(other.headers['access-control-allow-origin'], undefined, 'a route without corsPolicy adds nothing');
});

test('redirect: 301 by default with the path replaced, 302 with another authority, https on another port', async () => {
  const a = await send(t.port, { path: '/old/x?q=1', host: 'api' });
  assert.equal(a.status, 301);
  assert.equal(a.headers.location, 'http://api/new?q=1');
  const b = await send(t.port, { path: '/away', host: 'api' });
  assert.equal(b.status, 302);
  assert.equal(b.headers.location, 'http://elsewhere.example/moved');
  const c = await send(t.port, { path: '/tls/a', host: 'api' });
  assert.equal(c.status, 301);
  assert.equal(c.headers.location, 'https://api:8443/tls/a');
  assert.equal(t.apps.v1!.reduce((n, x) => n + x.seen.length, 0), 0, 'no redirect reached an app');
});

test('directResponse: the status and body come from Envoy, as a string or as bytes', async () => {
  const r = await send(t.port, { path: '/down' });
  assert.equal(r.status, 503);
  assert.equal(r.body, 'maintenance\n');
  assert.equal(r.app, undefined);
  const b = await send(t.port, { path: '/bytes' });
  assert.equal(b.status, 200);
  assert.equal(b.body, 'hello');
  assert.equal(t.apps.v1!.reduce((n, x) => n + x.seen.length, 0) + t.app('v2').seen.length, 0);
});

test('uriRegexRewrite: the app sees the path rewritten with the capture groups', async () => {
  const r = await send(t.port, { path: '/v1/orders/42' });
  assert.equal(r.status, 200);
  assert.equal(t.app('v2').seen.at(-1)!.path, '/api/42/orders');
});

test('headers setting Host rewrite the authority (as Istio renders it), on the route and on a destination', async () => {
  await send(t.port, { path: '/host-route', host: 'api' });
  assert.equal(t.app('v2').seen.at(-1)!.headers.host, 'route.example');
  await send(t.port, { path: '/host-dest', host: 'api' });
  assert.equal(t.app('v2').seen.at(-1)!.headers.host, 'dest.example');
  assert.equal(t.app('v2').seen.at(-1)!.headers['x-dest'], 'v2');
});

/** 200 requests with one of the two v1 instances answering `status`; the statuses seen. */
async function withBadInstance(status: number, path: string): Promise<Record<number, number>> {
  t.app('v1', 1).behave({ kind: 'status', status });
  const tally = await sendMany(t.port, 200, { path, concurrency: 8 });
  return tally.byStatus;
}

test('retryOn 5xx hides an instance answering 500; gateway-error does not (500 is not a gateway error)', async () => {
  assert.deepEqual(await withBadInstance(500, '/retry-5xx'), { 200: 200 });
  const shown = await withBadInstance(500, '/retry-gateway');
  assert.ok((shown[500] ?? 0) > 50, `about half answered 500: ${JSON.stringify(shown)}`);
});

test('retryOn gateway-error hides an instance answering 502', async () => {
  assert.deepEqual(await withBadInstance(502, '/retry-gateway'), { 200: 200 });
});

test('retryOn with a status code (409, Istio\'s retriable status code) hides an instance answering 409, and retriable-4xx does too', async () => {
  assert.deepEqual(await withBadInstance(409, '/retry-code'), { 200: 200 });
  assert.deepEqual(await withBadInstance(409, '/retry-4xx'), { 200: 200 });
  const shown = await withBadInstance(409, '/');
  assert.ok((shown[409] ?? 0) > 50, `the default policy does not retry 409: ${JSON.stringify(shown)}`);
});

/** 10 requests, all answered 200 by `version`. */
async function expectVersion(version: string, opts: SendOptions): Promise<void> {
  const tally = await sendMany(t.port, 10, { ...opts, concurrency: 2 });
  assert.deepEqual(tally.byStatus, { 200: 10 }, JSON.stringify(opts));
  assert.deepEqual(tally.byVersion, { [version]: 10 }, JSON.stringify(opts));
}

test('queryParams: debug=1 picks its rule, debug=2 and no query do not', async () => {
  await expectVersion('v2', { path: '/q?debug=1' });
  await expectVersion('v2', { path: '/q?a=b&debug=1' });
  await expectVersion('v1', { path: '/q?debug=2' });
  await expectVersion('v1', { path: '/q' });
});

// As Istio renders it (an inverted header matcher; istio/istio#50988 kept it so): the header must be present.
test('withoutHeaders: the rule applies when x-skip is sent with another value than yes', async () => {
  await expectVersion('v2', { path: '/wo', headers: { 'x-skip': 'no' } });
  await expectVersion('v1', { path: '/wo', headers: { 'x-skip': 'yes' } });
  await expectVersion('v1', { path: '/wo' });
});

test('presence: headers `{}` and queryParams `regex: "*"` match any value; withoutHeaders `{}` matches only without the header', async () => {
  await expectVersion('v2', { path: '/present', headers: { 'x-flag': 'anything' } });
  await expectVersion('v2', { path: '/present?flag=' });
  await expectVersion('v1', { path: '/present' });
  await expectVersion('v2', { path: '/absent' });
  await expectVersion('v1', { path: '/absent', headers: { 'x-flag': '' } });
});

test('ignoreUriCase: /case, /CASE and /Case match the exact rule; /cases does not', async () => {
  await expectVersion('v2', { path: '/case' });
  await expectVersion('v2', { path: '/CASE' });
  await expectVersion('v2', { path: '/Case' });
  await expectVersion('v1', { path: '/cases' });
});
