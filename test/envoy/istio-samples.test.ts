// Every Istio Bookinfo sample in ../shared/conformance/istio/, applied on the Bookinfo-like mesh, behaves
// through a real Envoy sidecar as Istio documents it. The consumer `client` (node-a) proxies all four hosts;
// HTTP apps registered on node-b are the instances of every version. (The strict shape of each sample's
// routes is checked offline in test/unit/conformance.test.ts.)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startEnvoyMesh, type EnvoyMesh } from '../helpers/envoy-mesh.js';
import { send, sendMany, startHttpApp, type HttpApp } from '../helpers/http-apps.js';
import { freePort } from '../helpers/etcd.js';

// dist/test/envoy/ → the repo root → its sibling shared/.
const SAMPLES = fileURLToPath(new URL('../../../../shared/conformance/istio/', import.meta.url));
const SERVICES = fileURLToPath(new URL('../../../fixtures/conformance/bookinfo-services.yaml', import.meta.url));
const VERSIONS: Record<string, string[]> = {
  productpage: ['v1'],
  details: ['v1', 'v2'],
  reviews: ['v1', 'v2', 'v3'],
  ratings: ['v1', 'v2', 'v2-mysql', 'v2-mysql-vm'],
};
const FIXED_PORTS: Record<string, number> = { productpage: 19080, details: 19081, reviews: 19082, ratings: 19083 };

let mesh: EnvoyMesh;
let apps: HttpApp[];
let services: string;
const port: Record<string, number> = {};

const sample = (name: string) => readFileSync(SAMPLES + name, 'utf8');
/** Istio's task order: destination-rule-all.yaml first, then the sample. */
const apply = async (...docs: string[]) => {
  mesh.apply([services, ...docs].join('\n---\n'));
  await mesh.synced('client-v1');
};
const app = (service: string, version: string) => apps.find((a) => a.service === service && a.version === version)!;

before(async () => {
  // The fixture's localPorts are fixed; other test files on this machine may hold them, so take free ones.
  services = readFileSync(SERVICES, 'utf8');
  for (const [host, fixed] of Object.entries(FIXED_PORTS)) {
    port[host] = await freePort();
    services = services.replace(`localPort: ${fixed}`, `localPort: ${port[host]}`);
  }
  apps = await Promise.all(Object.entries(VERSIONS).flatMap(([s, vs]) => vs.map((v) => startHttpApp(s, v))));
  mesh = await startEnvoyMesh({ node: 'node-a' });
  mesh.apply(services, apps.map((a) => a.instance('node-b')));
  await mesh.startSidecar('client-v1');
});

after(async () => {
  await mesh?.stop();
  for (const a of apps ?? []) await a.close();
});

test('the folder holds exactly the samples this test knows', () => {
  assert.deepEqual(readdirSync(SAMPLES).filter((f) => f.endsWith('.yaml')).sort(), [
    'destination-rule-all-mtls.yaml',
    'destination-rule-all.yaml',
    'fault-injection-details-v1.yaml',
    'virtual-service-all-v1.yaml',
    'virtual-service-ratings-test-abort.yaml',
    'virtual-service-ratings-test-delay.yaml',
    'virtual-service-reviews-50-v3.yaml',
    'virtual-service-reviews-90-10.yaml',
    'virtual-service-reviews-jason-v2-v3.yaml',
  ]);
});

test('with destination-rule-all.yaml alone (no VirtualService) each host spreads over all its versions', async () => {
  await apply(sample('destination-rule-all.yaml'));
  const t = await sendMany(port.reviews!, 600, { concurrency: 16 });
  assert.deepEqual(t.byStatus, { 200: 600 });
  for (const v of VERSIONS.reviews!) assert.ok((t.byVersion[v] ?? 0) >= 120, JSON.stringify(t.byVersion));
});

test('virtual-service-all-v1.yaml: every host answers from v1 only', async () => {
  await apply(sample('destination-rule-all.yaml'), sample('virtual-service-all-v1.yaml'));
  for (const host of Object.keys(VERSIONS)) {
    const t = await sendMany(port[host]!, 200, { concurrency: 8 });
    assert.deepEqual(t.byVersion, { v1: 200 }, host);
    assert.equal(t.replies[0]!.app, `${host}-v1`);
  }
});

test('virtual-service-reviews-90-10.yaml: 10% of 2,000 requests reach reviews v2 (± 3), the rest v1', async () => {
  await apply(sample('destination-rule-all.yaml'), sample('virtual-service-reviews-90-10.yaml'));
  const t = await sendMany(port.reviews!, 2000, { concurrency: 16 });
  assert.deepEqual(t.byStatus, { 200: 2000 });
  assert.equal((t.byVersion.v1 ?? 0) + (t.byVersion.v2 ?? 0), 2000, JSON.stringify(t.byVersion));
  assert.ok(Math.abs(((t.byVersion.v2 ?? 0) / 2000) * 100 - 10) <= 3, JSON.stringify(t.byVersion));
});

test('virtual-service-reviews-50-v3.yaml: half of 2,000 requests reach reviews v3 (± 4), the rest v1', async () => {
  await apply(sample('destination-rule-all.yaml'), sample('virtual-service-reviews-50-v3.yaml'));
  const t = await sendMany(port.reviews!, 2000, { concurrency: 16 });
  assert.equal((t.byVersion.v1 ?? 0) + (t.byVersion.v3 ?? 0), 2000, JSON.stringify(t.byVersion));
  assert.ok(Math.abs(((t.byVersion.v3 ?? 0) / 2000) * 100 - 50) <= 4, JSON.stringify(t.byVersion));
});

test('virtual-service-reviews-jason-v2-v3.yaml: end-user jason sees reviews v2, everyone else v3', async () => {
  await apply(sample('destination-rule-all.yaml'), sample('virtual-service-reviews-jason-v2-v3.yaml'));
  assert.deepEqual((await sendMany(port.reviews!, 200, { headers: { 'end-user': 'jason' } })).byVersion, { v2: 200 });
  assert.deepEqual((await sendMany(port.reviews!, 200, { headers: { 'end-user': 'maria' } })).byVersion, { v3: 200 });
  assert.deepEqual((await sendMany(port.reviews!, 200)).byVersion, { v3: 200 });
});

test('virtual-service-ratings-test-abort.yaml: jason gets 500 from Envoy on every request, others ratings v1', async () => {
  await apply(sample('destination-rule-all.yaml'), sample('virtual-service-ratings-test-abort.yaml'));
  const seenBefore = app('ratings', 'v1').seen.length;
  const jason = await sendMany(port.ratings!, 300, { headers: { 'end-user': 'jason' } });
  assert.deepEqual(jason.byStatus, { 500: 300 });
  assert.equal(app('ratings', 'v1').seen.length, seenBefore, 'aborted requests never reach ratings');
  const others = await sendMany(port.ratings!, 300);
  assert.deepEqual(others.byStatus, { 200: 300 });
  assert.deepEqual(others.byVersion, { v1: 300 });
});

test('virtual-service-ratings-test-delay.yaml: jason waits the 7 s delay (≥ 6.5 s) then gets ratings v1; others are not held', async () => {
  await apply(sample('destination-rule-all.yaml'), sample('virtual-service-ratings-test-delay.yaml'));
  const [jason, other] = await Promise.all([send(port.ratings!, { headers: { 'end-user': 'jason' }, timeoutMs: 20_000 }), send(port.ratings!)]);
  assert.equal(jason.status, 200);
  assert.equal(jason.version, 'v1');
  assert.ok(jason.ms >= 6500, `jason's request took ${jason.ms.toFixed(0)} ms`);
  assert.equal(other.status, 200);
  assert.ok(other.ms < 3000, `an unmatched request took ${other.ms.toFixed(0)} ms`);
});

test('fault-injection-details-v1.yaml (with its own DestinationRule): every details request is aborted with 555', async () => {
  await apply(sample('fault-injection-details-v1.yaml'));
  const t = await sendMany(port.details!, 300);
  assert.deepEqual(t.byStatus, { 555: 300 });
  assert.deepEqual((await sendMany(port.reviews!, 100)).byStatus, { 200: 100 }, 'other hosts are untouched');
});

test('destination-rule-all-mtls.yaml is refused by path (as in test/unit/conformance.test.ts) and the sidecar keeps its last rules', async () => {
  await apply(sample('destination-rule-all.yaml'), sample('virtual-service-reviews-jason-v2-v3.yaml'));
  assert.throws(() => mesh.apply([services, sample('destination-rule-all-mtls.yaml')].join('\n---\n')), /spec\.trafficPolicy\.tls\.mode: ISTIO_MUTUAL is not supported/);
  assert.deepEqual((await sendMany(port.reviews!, 100)).byVersion, { v3: 100 });
});
