// Fixture in, expected files out: the Bookinfo mesh rendered for each of its three nodes.
// Set UPDATE_GOLDEN=1 to rewrite fixtures/bookinfo/expected/ after an intended change, and review the diff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parse } from 'yaml';
import { ROOT, fixture, tempDir } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';
import { validateEnvoy } from '../../agent/envoy-proto/envoy-validator.js';

const NODES = ['node-a', 'node-b', 'node-c'];
process.chdir(ROOT); // headers name the input files as given, relative to the repo root

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? listFiles(p) : [p];
  }).sort();
}

async function render(node: string, out: string) {
  const r = await runCli(['render', '-f', 'fixtures/bookinfo/services.yaml', '-f', 'fixtures/bookinfo/routes.yaml', '--instances', 'fixtures/bookinfo/instances.yaml', '--node', node, '--out', out]);
  assert.equal(r.code, 0, r.err);
  return r;
}

for (const node of NODES) {
  test(`bookinfo on ${node} renders the expected files`, async () => {
    const out = join(tempDir(), 'out');
    await render(node, out);
    const expectedDir = fixture('bookinfo', 'expected', node);
    if (process.env.UPDATE_GOLDEN === '1') {
      rmSync(expectedDir, { recursive: true, force: true });
      cpSync(out, expectedDir, { recursive: true });
    }
    const got = listFiles(out).map((p) => relative(out, p));
    const want = listFiles(expectedDir).map((p) => relative(expectedDir, p));
    assert.deepEqual(got, want, 'the set of files');
    for (const f of got) assert.equal(readFileSync(join(out, f), 'utf8'), readFileSync(join(expectedDir, f), 'utf8'), f);
  });
}

test('two renders of the same input give identical bytes', async () => {
  const a = join(tempDir(), 'a');
  const b = join(tempDir(), 'b');
  await render('node-c', a);
  await render('node-c', b);
  const files = listFiles(a).map((p) => relative(a, p));
  assert.ok(files.length >= 6);
  for (const f of files) assert.equal(readFileSync(join(a, f)).compare(readFileSync(join(b, f))), 0, f);
});

test('every Envoy document emitted for every node passes the strict check', async () => {
  let checked = 0;
  for (const node of NODES) {
    const out = join(tempDir(), 'out');
    await render(node, out);
    for (const f of listFiles(join(out, 'envoy'))) {
      assert.deepEqual(validateEnvoy('envoy.config.bootstrap.v3.Bootstrap', parse(readFileSync(f, 'utf8'))), [], f);
      checked++;
    }
    for (const f of listFiles(join(out, 'xds')).filter((p) => p.includes('~'))) {
      const dump = JSON.parse(readFileSync(f, 'utf8'));
      const types: Record<string, string> = {
        listeners: 'envoy.config.listener.v3.Listener',
        routes: 'envoy.config.route.v3.RouteConfiguration',
        clusters: 'envoy.config.cluster.v3.Cluster',
        endpoints: 'envoy.config.endpoint.v3.ClusterLoadAssignment',
      };
      for (const [key, type] of Object.entries(types)) {
        for (const doc of dump[key]) {
          assert.deepEqual(validateEnvoy(type, doc), [], `${f} ${key} ${doc.name ?? doc.cluster_name}`);
          checked++;
        }
      }
    }
  }
  assert.ok(checked > 40, `checked ${checked} documents`);
});

test('the sidecar of productpage on node-a gets the canary route, the header match, retries and a mirror', async () => {
  const out = join(tempDir(), 'out');
  await render('node-a', out);
  const dump = JSON.parse(readFileSync(join(out, 'xds', 'sidecar~node-a~productpage-v1.json'), 'utf8'));
  const reviews = dump.routes.find((r: { name: string }) => r.name === 'reviews');
  const [jason, dflt] = reviews.virtual_hosts[0].routes;
  assert.deepEqual(jason.match, { prefix: '/', headers: [{ name: 'end-user', string_match: { exact: 'jason' } }] });
  assert.equal(jason.route.cluster, 'reviews|v2');
  assert.deepEqual(dflt.route.weighted_clusters, { clusters: [{ name: 'reviews|v1', weight: 90 }, { name: 'reviews|v3', weight: 10 }] });
  assert.equal(dflt.route.timeout, '3s');
  assert.deepEqual(dflt.route.retry_policy, {
    retry_on: '5xx,connect-failure',
    num_retries: 3,
    per_try_timeout: '1s',
    // Istio's: a retry goes to a host not tried yet.
    retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } }],
    host_selection_retry_max_attempts: 5,
  });
  assert.deepEqual(dflt.route.request_mirror_policies, [{ cluster: 'reviews|v2', runtime_fraction: { default_value: { numerator: 55000, denominator: 'MILLION' } } }]);
  const clusters = dump.clusters.map((c: { name: string }) => c.name);
  assert.deepEqual(clusters, ['details', 'reviews|v1', 'reviews|v2', 'reviews|v3']);
  const v1 = dump.clusters.find((c: { name: string }) => c.name === 'reviews|v1');
  assert.equal(v1.lb_policy, 'LEAST_REQUEST');
  assert.equal(dump.clusters.find((c: { name: string }) => c.name === 'reviews|v2').lb_policy, 'ROUND_ROBIN', 'the subset policy overrides the rule-wide one');
  // Istio's default for what the DestinationRule leaves unset: no limit.
  assert.deepEqual(v1.circuit_breakers, { thresholds: [{ max_connections: 100, max_pending_requests: 50, max_requests: 4294967295, max_retries: 3 }] });
  assert.equal(v1.connect_timeout, '0.5s');
  const ep = dump.endpoints.find((e: { cluster_name: string }) => e.cluster_name === 'details');
  assert.deepEqual(ep.endpoints.map((l: { locality: { zone: string } }) => l.locality.zone), ['node-b', 'node-c']);
});
