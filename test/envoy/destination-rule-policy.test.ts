// DestinationRule policies through a real Envoy sidecar (caller web on node local, region eu, zone eu-1):
// sticky sessions by cookie (Envoy sets it) and by header, TLS SIMPLE and MUTUAL to HTTPS apps with
// openssl-made certificates (and refused with the wrong CA or without a client certificate), the deprecated
// consecutiveErrors ejecting on gateway errors only, and locality failover / distribute over node regions.
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Instance } from '../../agent/core/model/model.js';
import { send, sendMany } from '../helpers/http-apps.js';
import { startHttpsApp, type HttpsApp } from '../helpers/https-apps.js';
import { makeTestCerts, type TestCerts } from '../helpers/test-certs.js';
import { tempDir } from '../helpers/paths.js';
import { destination, startTrafficMesh, type TrafficMesh } from '../helpers/traffic-mesh.js';
import { waitFor } from '../helpers/wait.js';

let t: TrafficMesh;
let certs: TestCerts;
let tlsApp: HttpsApp;
let mtlsApp: HttpsApp;

const rules = (policy: string) => `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api }
spec:
  host: api
  trafficPolicy: ${policy}
  subsets: [{ name: v1, labels: { version: v1 } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api }
spec:
  hosts: [api]
  http:
    - route: [${destination('v1')}]
      retries: { attempts: 0 }
`;

before(async () => {
  t = await startTrafficMesh({ v1: 3 }, { locality: { region: 'eu', zone: 'eu-1' } });
  certs = makeTestCerts(join(tempDir('meshlet-dr-certs-'), 'certs'), 'api.example.test');
  tlsApp = await startHttpsApp(certs, { id: 'api-tls' });
  mtlsApp = await startHttpsApp(certs, { id: 'api-mtls', requireClientCert: true });
});

beforeEach(() => {
  t.reset();
  for (const a of [tlsApp, mtlsApp]) {
    a.seen.length = 0;
    a.refused.length = 0;
  }
});

after(async () => {
  await t?.stop();
  await tlsApp?.close();
  await mtlsApp?.close();
});

const stat = async (name: string) => (await t.sidecar.stats(`^${name.replace(/[.|]/g, '\\$&')}$`))[name] ?? 0;
const CLUSTER = 'api|v1';

test('consistentHash httpCookie with ttl: the first response sets the cookie; requests carrying it stay on one instance', async () => {
  await t.apply(rules('{ loadBalancer: { consistentHash: { httpCookie: { name: sticky, path: /, ttl: 60s }, ringHash: { minimumRingSize: 1024 } } } }'), t.instances());
  const first = await send(t.port);
  assert.equal(first.status, 200);
  const setCookie = ([] as string[]).concat(first.headers['set-cookie'] ?? []);
  assert.equal(setCookie.length, 1, JSON.stringify(first.headers));
  assert.match(setCookie[0]!, /^sticky="?[^;"]+"?; Max-Age=60; Path=\/; HttpOnly$/);
  const cookie = setCookie[0]!.split(';')[0]!;
  const tally = await sendMany(t.port, 60, { concurrency: 4, headers: { cookie } });
  assert.deepEqual(tally.byStatus, { 200: 60 });
  assert.equal(Object.keys(tally.byApp).length, 1, `one instance for one cookie: ${JSON.stringify(tally.byApp)}`);
  assert.ok(tally.replies.every((r) => r.headers['set-cookie'] === undefined), 'no new cookie once the request has one');
  // Control: other cookie values spread over more than one instance (3 instances, 20 values).
  const apps = new Set<string>();
  for (let i = 0; i < 20; i++) apps.add((await send(t.port, { headers: { cookie: `sticky=user-${i}` } })).app ?? '');
  assert.ok(apps.size >= 2, `20 cookie values went to ${[...apps].join(', ')}`);
});

test('consistentHash httpHeaderName (maglev): each header value stays on one instance, values spread over instances', async () => {
  await t.apply(rules('{ loadBalancer: { consistentHash: { httpHeaderName: x-user, maglev: { tableSize: 65537 } } } }'), t.instances());
  const homes = new Map<string, Set<string>>();
  for (let u = 0; u < 12; u++) {
    const tally = await sendMany(t.port, 15, { concurrency: 3, headers: { 'x-user': `user-${u}` } });
    assert.deepEqual(tally.byStatus, { 200: 15 });
    homes.set(`user-${u}`, new Set(Object.keys(tally.byApp)));
  }
  for (const [user, apps] of homes) assert.equal(apps.size, 1, `${user} went to ${[...apps].join(', ')}`);
  const used = new Set([...homes.values()].flatMap((s) => [...s]));
  assert.ok(used.size >= 2, `12 users all on ${[...used].join(', ')}`);
  // Without the header Envoy has nothing to hash and picks at random: more than one instance.
  const plain = await sendMany(t.port, 60, { concurrency: 4 });
  assert.ok(Object.keys(plain.byApp).length >= 2, JSON.stringify(plain.byApp));
});

test('tls SIMPLE: the sidecar speaks TLS to an HTTPS upstream with the given CA and SNI; a wrong CA or SAN is refused', async () => {
  const simple = (extra: string) => rules(`{ tls: { mode: SIMPLE, caCertificates: ${certs.ca}, sni: api.example.test${extra} } }`);
  await t.apply(simple(', subjectAltNames: [api.example.test]'), [tlsApp.instance('elsewhere')]);
  const ok = await sendMany(t.port, 10, { concurrency: 2 });
  assert.deepEqual(ok.byStatus, { 200: 10 });
  assert.deepEqual(ok.byApp, { 'api-tls': 10 });
  assert.ok(tlsApp.seen.length === 10 && tlsApp.seen.every((s) => s.servername === 'api.example.test'), JSON.stringify(tlsApp.seen.slice(0, 2)));
  assert.ok((await stat(`cluster.${CLUSTER}.ssl.handshake`)) >= 1);

  const failsBefore = await stat(`cluster.${CLUSTER}.ssl.fail_verify_error`);
  await t.apply(rules(`{ tls: { mode: SIMPLE, caCertificates: ${certs.otherCa}, sni: api.example.test } }`), [tlsApp.instance('elsewhere')]);
  const wrongCa = await sendMany(t.port, 5, { concurrency: 1 });
  assert.deepEqual(wrongCa.byStatus, { 503: 5 });
  assert.ok((await stat(`cluster.${CLUSTER}.ssl.fail_verify_error`)) > failsBefore, 'Envoy counted the failed verification');

  const sanBefore = await stat(`cluster.${CLUSTER}.ssl.fail_verify_san`);
  await t.apply(simple(', subjectAltNames: [other.example.test]'), [tlsApp.instance('elsewhere')]);
  const wrongSan = await sendMany(t.port, 5, { concurrency: 1 });
  assert.deepEqual(wrongSan.byStatus, { 503: 5 });
  assert.ok((await stat(`cluster.${CLUSTER}.ssl.fail_verify_san`)) > sanBefore, 'Envoy counted the SAN mismatch');
  assert.equal(tlsApp.seen.length, 10, 'no request reached the app over an unverified connection');
});

test('tls MUTUAL: the sidecar presents the client certificate a server requires; SIMPLE without one is refused by the server', async () => {
  await t.apply(rules(`{ tls: { mode: MUTUAL, clientCertificate: ${certs.clientCert}, privateKey: ${certs.clientKey}, caCertificates: ${certs.ca} } }`), [mtlsApp.instance('elsewhere')]);
  const ok = await sendMany(t.port, 10, { concurrency: 2 });
  assert.deepEqual(ok.byStatus, { 200: 10 });
  assert.ok(mtlsApp.seen.every((s) => s.clientCn === 'client'), JSON.stringify(mtlsApp.seen.slice(0, 2)));

  await t.apply(rules(`{ tls: { mode: SIMPLE, caCertificates: ${certs.ca} } }`), [mtlsApp.instance('elsewhere')]);
  const noCert = await sendMany(t.port, 5, { concurrency: 1 });
  assert.deepEqual(noCert.byStatus, { 503: 5 });
  assert.equal(mtlsApp.seen.length, 10, 'nothing served without a client certificate');
  await waitFor('the server to log the refused handshakes', () => mtlsApp.refused.length > 0, 5000);
});

test('plain text stays plain: without tls (or with DISABLE) the sidecar cannot talk to the HTTPS app', async () => {
  await t.apply(rules('{ tls: { mode: DISABLE } }'), [tlsApp.instance('elsewhere')]);
  const r = await sendMany(t.port, 3, { concurrency: 1 });
  assert.ok(!r.byStatus[200], JSON.stringify(r.byStatus));
  assert.equal(tlsApp.seen.length, 0);
});

test('outlierDetection consecutiveErrors (deprecated): ejects an instance answering 503 (a gateway error), not one answering 500', async () => {
  await t.apply(rules('{ outlierDetection: { consecutiveErrors: 3, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100 } }'), t.instances());
  t.app('v1', 1).behave({ kind: 'status', status: 503 });
  t.app('v1', 2).behave({ kind: 'status', status: 500 });
  await sendMany(t.port, 120, { concurrency: 4 });
  await waitFor('one ejection', async () => (await stat(`cluster.${CLUSTER}.outlier_detection.ejections_active`)) === 1, 10_000);
  await waitFor('the ejection to reach the workers', async () => !(await sendMany(t.port, 20, { concurrency: 4 })).byStatus[503], 10_000, 100);
  const after = await sendMany(t.port, 300, { concurrency: 8 });
  assert.equal(after.byApp['api-v1-1'] ?? 0, 0, `the 503 instance is ejected: ${JSON.stringify(after.byApp)}`);
  assert.ok((after.byApp['api-v1-2'] ?? 0) >= 90, `the 500 instance still gets traffic: ${JSON.stringify(after.byApp)}`);
  assert.equal(await stat(`cluster.${CLUSTER}.outlier_detection.ejections_enforced_consecutive_5xx`), 0);
});

/** Three instances, each on a node of its own locality. */
function placed(): Instance[] {
  const at = (n: number, node: string, region: string, zone: string) => ({ ...t.app('v1', n).instance(node), region, zone });
  return [at(0, 'eu-node', 'eu', 'eu-1'), at(1, 'us-node', 'us', 'us-1'), at(2, 'ap-node', 'ap', 'ap-1')];
}

test('localityLbSetting failover eu → us: traffic stays in eu; when the eu instance is ejected it goes to us, never to ap', async () => {
  await t.apply(rules('{ outlierDetection: { consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100 }, loadBalancer: { simple: ROUND_ROBIN, localityLbSetting: { failover: [{ from: eu, to: us }] } } }'), placed());
  const home = await sendMany(t.port, 100, { concurrency: 4 });
  assert.deepEqual(home.byApp, { 'api-v1-0': 100 });
  t.app('v1', 0).behave({ kind: 'status', status: 500 });
  await sendMany(t.port, 20, { concurrency: 2 });
  await waitFor('the eu instance ejected', async () => (await stat(`cluster.${CLUSTER}.outlier_detection.ejections_active`)) === 1, 10_000);
  await waitFor('the ejection to reach the workers', async () => (await sendMany(t.port, 20, { concurrency: 4 })).byStatus[200] === 20, 10_000, 100);
  const away = await sendMany(t.port, 200, { concurrency: 8 });
  assert.deepEqual(away.byApp, { 'api-v1-1': 200 });
});

test('localityLbSetting distribute from eu/eu-1: 80% to eu, 20% to us, none to ap', async () => {
  await t.apply(rules('{ loadBalancer: { localityLbSetting: { distribute: [{ from: "eu/eu-1/*", to: { "eu/*": 80, "us/*": 20 } }] } } }'), placed());
  const tally = await sendMany(t.port, 1000, { concurrency: 16 });
  assert.deepEqual(tally.byStatus, { 200: 1000 });
  assert.equal(tally.byApp['api-v1-2'] ?? 0, 0, JSON.stringify(tally.byApp));
  const eu = tally.byApp['api-v1-0'] ?? 0;
  // Envoy's locality picks are weighted round robin, not random: well within ± 5%.
  assert.ok(Math.abs(eu - 800) <= 50, JSON.stringify(tally.byApp));
});

test('warmupDurationSecs (slow start): an instance that joins gets a small share at first; without warmup its full half', async () => {
  await t.apply(rules('{ loadBalancer: { simple: ROUND_ROBIN, warmupDurationSecs: 8s } }'), [t.app('v1', 0).instance('elsewhere')]);
  // Every host is in slow start for the window after it joined, the first one too (it joined with the cluster):
  // the first must be out of its window before the second joins, or both ramp alike.
  await new Promise((r) => setTimeout(r, 9000));
  t.mesh.setInstances([t.app('v1', 0).instance('elsewhere'), t.app('v1', 1).instance('elsewhere')]);
  await t.mesh.synced('web-v1');
  const early = await sendMany(t.port, 400, { concurrency: 8 });
  assert.deepEqual(early.byStatus, { 200: 400 });
  const joined = early.byApp['api-v1-1'] ?? 0;
  // Round robin would give it 200; in its first second of 8 its weight is 1/8 of the other's (about 44 of 400).
  assert.ok(joined > 0 && joined <= 100, `the joining instance answered ${joined} of 400`);
  // Control: without warmup the same join gets its full half at once.
  await t.apply(rules('{ loadBalancer: { simple: ROUND_ROBIN } }'), [t.app('v1', 0).instance('elsewhere')]);
  await sendMany(t.port, 20, { concurrency: 2 });
  t.mesh.setInstances([t.app('v1', 0).instance('elsewhere'), t.app('v1', 1).instance('elsewhere')]);
  await t.mesh.synced('web-v1');
  const plain = await sendMany(t.port, 400, { concurrency: 8 });
  assert.ok(Math.abs((plain.byApp['api-v1-1'] ?? 0) - 200) <= 30, JSON.stringify(plain.byApp));
});
