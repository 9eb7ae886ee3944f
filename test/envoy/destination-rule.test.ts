// DestinationRule traffic policies through a real Envoy sidecar: load balancer (shown in config_dump and in
// the spread), connection pool limits answered 503 on overflow, outlier detection ejecting failing instances.
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { sendMany } from '../helpers/http-apps.js';
import type { ConfigDump } from '../helpers/envoy.js';
import { destination, startTrafficMesh, type TrafficMesh } from '../helpers/traffic-mesh.js';
import { waitFor } from '../helpers/wait.js';

let t: TrafficMesh;

const rules = (policy: string, route = '') => `
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
${route}
`;

before(async () => {
  t = await startTrafficMesh({ v1: 3 });
});

beforeEach(() => t.reset());

after(async () => {
  await t?.stop();
});

const two = () => t.instances([t.app('v1', 0), t.app('v1', 1)]);
const CLUSTER = 'api|v1';

function dumpedCluster(dump: ConfigDump, name: string): Record<string, any> {
  const section = dump.configs.find((c) => c['@type'].endsWith('ClustersConfigDump')) as unknown as { dynamic_active_clusters: { cluster: Record<string, any> }[] };
  const c = section.dynamic_active_clusters.find((x) => x.cluster.name === name);
  assert.ok(c, `cluster ${name} in config_dump`);
  return c.cluster;
}

// The admin filter is a regex and cluster names hold '|'.
const stat = async (name: string) => (await t.sidecar.stats(`^${name.replace(/[.|]/g, '\\$&')}$`))[name] ?? 0;

test('ROUND_ROBIN spreads 1,000 requests evenly over 2 instances (50% ± 3) and config_dump shows it', async () => {
  await t.apply(rules('{ loadBalancer: { simple: ROUND_ROBIN } }'), two());
  const tally = await sendMany(t.port, 1000, { concurrency: 16 });
  assert.deepEqual(tally.byStatus, { 200: 1000 });
  const share = ((tally.byApp['api-v1-0'] ?? 0) / 1000) * 100;
  assert.ok(Math.abs(share - 50) <= 3, JSON.stringify(tally.byApp));
  // ROUND_ROBIN is the enum's zero value: the dump leaves it out.
  assert.equal(dumpedCluster(await t.sidecar.configDump(), CLUSTER).lb_policy ?? 'ROUND_ROBIN', 'ROUND_ROBIN');
});

for (const simple of ['RANDOM', 'LEAST_REQUEST'] as const) {
  test(`${simple} is accepted, shown in config_dump, and serves from both instances`, async () => {
    await t.apply(rules(`{ loadBalancer: { simple: ${simple} } }`), two());
    assert.equal(dumpedCluster(await t.sidecar.configDump(), CLUSTER).lb_policy, simple);
    const tally = await sendMany(t.port, 1000, { concurrency: 16 });
    assert.deepEqual(tally.byStatus, { 200: 1000 });
    for (const id of ['api-v1-0', 'api-v1-1']) assert.ok((tally.byApp[id] ?? 0) >= 300, JSON.stringify(tally.byApp));
  });
}

test('LEAST_REQUEST sends most requests to the instance with fewer in flight (a slow one gets less)', async () => {
  await t.apply(rules('{ loadBalancer: { simple: LEAST_REQUEST } }'), two());
  t.app('v1', 1).behave({ kind: 'delay', ms: 100 });
  const tally = await sendMany(t.port, 400, { concurrency: 16 });
  assert.deepEqual(tally.byStatus, { 200: 400 });
  const fast = tally.byApp['api-v1-0'] ?? 0;
  // 60%: four standard deviations above round robin's 200 ± 10, with room for a starved client on a busy machine.
  assert.ok(fast >= 240, `the fast instance answered ${fast} of 400 (round robin would give 200)`);
});

const pool = '{ connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } } }';

test('connection pool: maxConnections 1 and http1MaxPendingRequests 1 answer overflow with 503 under concurrency', async () => {
  await t.apply(rules(pool), [t.app('v1', 0).instance('elsewhere')]);
  t.app('v1', 0).behave({ kind: 'delay', ms: 300 });
  const overflowBefore = await stat(`cluster.${CLUSTER}.upstream_rq_pending_overflow`);
  const tally = await sendMany(t.port, 20, { concurrency: 20 });
  const ok = tally.byStatus[200] ?? 0;
  const overflow = tally.replies.filter((r) => r.status === 503 && r.headers['x-envoy-overloaded'] === 'true').length;
  assert.equal(ok + overflow, 20, JSON.stringify(tally.byStatus));
  // One connection and one pending request: a couple are served; more only if the burst spreads out.
  assert.ok(ok >= 1 && ok <= 10, `${ok} of 20 served (one connection, one pending)`);
  assert.ok((await stat(`cluster.${CLUSTER}.upstream_rq_pending_overflow`)) - overflowBefore === overflow);
  assert.ok(t.app('v1', 0).seen.length === ok, 'overflowed requests never reach the app');
});

test('without a connection pool the same burst is served in full', async () => {
  await t.apply(rules('{ loadBalancer: { simple: ROUND_ROBIN } }'), [t.app('v1', 0).instance('elsewhere')]);
  t.app('v1', 0).behave({ kind: 'delay', ms: 300 });
  const tally = await sendMany(t.port, 20, { concurrency: 20 });
  assert.deepEqual(tally.byStatus, { 200: 20 });
});

const outlier = (base: string) => `{ outlierDetection: { consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: ${base}, maxEjectionPercent: 100 } }`;

test('outlier detection ejects the two of three instances answering 500; traffic then goes to the healthy one', async () => {
  await t.apply(rules(outlier('30s')), t.instances());
  t.app('v1', 1).behave({ kind: 'status', status: 500 });
  t.app('v1', 2).behave({ kind: 'status', status: 500 });
  // Until both are ejected some requests see the 500s (no retries on this route).
  const warmup = await sendMany(t.port, 100, { concurrency: 4 });
  assert.ok((warmup.byStatus[500] ?? 0) >= 6, JSON.stringify(warmup.byStatus));
  await waitFor('two ejections', async () => (await stat(`cluster.${CLUSTER}.outlier_detection.ejections_active`)) === 2, 10_000);
  // Workers pick up the ejection shortly after the main thread counts it: wait for one clean batch.
  await waitFor('the ejections to reach the workers', async () => (await sendMany(t.port, 20, { concurrency: 4 })).byStatus[200] === 20, 10_000, 100);
  const after = await sendMany(t.port, 500, { concurrency: 16 });
  // Envoy's default panic threshold (50%) would spread traffic over all three again.
  assert.equal(await stat(`cluster.${CLUSTER}.lb_healthy_panic`), 0, 'Envoy balanced in panic mode');
  assert.deepEqual(after.byStatus, { 200: 500 });
  assert.deepEqual(after.byApp, { 'api-v1-0': 500 });
});

test('outlier detection: an ejected instance that healed gets traffic again after baseEjectionTime', async () => {
  await t.apply(rules(outlier('1s')), two());
  t.app('v1', 1).behave({ kind: 'status', status: 500 });
  await sendMany(t.port, 50, { concurrency: 2 });
  await waitFor('one ejection', async () => (await stat(`cluster.${CLUSTER}.outlier_detection.ejections_active`)) === 1, 10_000);
  t.app('v1', 1).behave({ kind: 'ok' });
  await waitFor('the ejection to end', async () => (await stat(`cluster.${CLUSTER}.outlier_detection.ejections_active`)) === 0, 15_000);
  const tally = await sendMany(t.port, 400, { concurrency: 8 });
  assert.deepEqual(tally.byStatus, { 200: 400 });
  assert.ok((tally.byApp['api-v1-1'] ?? 0) >= 120, JSON.stringify(tally.byApp));
});
