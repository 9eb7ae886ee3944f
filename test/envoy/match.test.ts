// Istio http route matches through a real Envoy sidecar: headers and uri as exact/prefix/regex, method,
// AND within one match, OR across matches, and the first matching rule wins.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { sendMany, type SendOptions } from '../helpers/http-apps.js';
import { destination, startTrafficMesh, type TrafficMesh } from '../helpers/traffic-mesh.js';

// One version per rule, so the version that answers names the rule that matched.
const RULES = ['hexact', 'hprefix', 'hregex', 'hcase', 'uexact', 'uprefix', 'uregex', 'both', 'either', 'method', 'fallback'];

const vs = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api }
spec:
  hosts: [api]
  http:
    - match: [{ headers: { end-user: { exact: jason } } }]
      route: [${destination('hexact')}]
    - match: [{ headers: { x-group: { prefix: beta } } }]
      route: [${destination('hprefix')}]
    - match: [{ headers: { x-id: { regex: "u[0-9]+" } } }]
      route: [${destination('hregex')}]
    - match: [{ headers: { x-user: { regex: "(?i)jason" } } }]
      route: [${destination('hcase')}]
    - match: [{ uri: { exact: /exact } }]
      route: [${destination('uexact')}]
    - match: [{ uri: { prefix: /pre/ } }]
      route: [${destination('uprefix')}]
    - match: [{ uri: { regex: "/re/[0-9]+" } }]
      route: [${destination('uregex')}]
    - match: [{ uri: { prefix: /both }, headers: { x-a: { exact: "1" } } }]
      route: [${destination('both')}]
    - match: [{ uri: { prefix: /one } }, { uri: { prefix: /two } }]
      route: [${destination('either')}]
    - match: [{ method: { exact: DELETE } }]
      route: [${destination('method')}]
    - route: [${destination('fallback')}]
`;

let t: TrafficMesh;

before(async () => {
  t = await startTrafficMesh(Object.fromEntries(RULES.map((r) => [r, 1])), { rules: vs });
});

after(async () => {
  await t?.stop();
});

/** 20 requests; all must be answered 200 by `version`. */
async function expectVersion(version: string, opts: SendOptions): Promise<void> {
  const tally = await sendMany(t.port, 20, { ...opts, concurrency: 4 });
  assert.deepEqual(tally.byStatus, { 200: 20 }, JSON.stringify(opts));
  assert.deepEqual(tally.byVersion, { [version]: 20 }, JSON.stringify(opts));
}

test('header exact: end-user: jason goes to its rule; jasonx and no header do not', async () => {
  await expectVersion('hexact', { headers: { 'end-user': 'jason' } });
  await expectVersion('fallback', { headers: { 'end-user': 'jasonx' } });
  await expectVersion('fallback', {});
});

test('header prefix: x-group beta-7 matches, alpha and xbeta do not', async () => {
  await expectVersion('hprefix', { headers: { 'x-group': 'beta-7' } });
  await expectVersion('fallback', { headers: { 'x-group': 'alpha' } });
  await expectVersion('fallback', { headers: { 'x-group': 'xbeta' } });
});

test('header regex matches the whole value: u123 matches, u12a and xu1 do not', async () => {
  await expectVersion('hregex', { headers: { 'x-id': 'u123' } });
  await expectVersion('fallback', { headers: { 'x-id': 'u12a' } });
  await expectVersion('fallback', { headers: { 'x-id': 'xu1' } });
});

test('header regex in RE2 syntax JS lacks: (?i)jason matches JASON and Jason (RE2 compiles it; JS would refuse it)', async () => {
  await expectVersion('hcase', { headers: { 'x-user': 'JASON' } });
  await expectVersion('hcase', { headers: { 'x-user': 'Jason' } });
  await expectVersion('fallback', { headers: { 'x-user': 'jasonx' } });
});

test('uri exact: /exact and /exact?q=1 match, /exact/more does not', async () => {
  await expectVersion('uexact', { path: '/exact' });
  await expectVersion('uexact', { path: '/exact?q=1' });
  await expectVersion('fallback', { path: '/exact/more' });
});

test('uri prefix: /pre/x matches, /prex and /pr do not', async () => {
  await expectVersion('uprefix', { path: '/pre/x' });
  await expectVersion('fallback', { path: '/prex' });
  await expectVersion('fallback', { path: '/pr' });
});

test('uri regex matches the whole path: /re/42 matches, /re/4a and /re/42/x do not', async () => {
  await expectVersion('uregex', { path: '/re/42' });
  await expectVersion('fallback', { path: '/re/4a' });
  await expectVersion('fallback', { path: '/re/42/x' });
});

test('conditions of one match are ANDed, matches of one rule are ORed', async () => {
  await expectVersion('both', { path: '/both', headers: { 'x-a': '1' } });
  await expectVersion('fallback', { path: '/both' });
  await expectVersion('fallback', { path: '/', headers: { 'x-a': '1' } });
  await expectVersion('either', { path: '/one' });
  await expectVersion('either', { path: '/two' });
});

test('method: DELETE matches, GET and POST do not', async () => {
  await expectVersion('method', { method: 'DELETE' });
  await expectVersion('fallback', { method: 'GET' });
  await expectVersion('fallback', { method: 'POST' });
});

test('the first matching rule wins', async () => {
  // Every rule below matches; the earliest one listed answers.
  await expectVersion('hexact', { method: 'DELETE', path: '/exact', headers: { 'end-user': 'jason', 'x-group': 'beta' } });
  await expectVersion('hprefix', { method: 'DELETE', path: '/exact', headers: { 'x-group': 'beta' } });
  await expectVersion('uexact', { method: 'DELETE', path: '/exact' });
  await expectVersion('uprefix', { method: 'DELETE', path: '/pre/1' });
});
