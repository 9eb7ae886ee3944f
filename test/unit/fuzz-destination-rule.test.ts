// Generated DestinationRule policies (every field meshlet renders, rule-wide, per port and per subset, for an
// http and a tcp Service) on a fixed mesh whose endpoints span three localities: each set is accepted, renders
// without issues, passes the strict check, renders the same bytes with its mapping keys reordered, and a
// sample passes `envoy --mode validate` as a static bootstrap (Envoy builds every cluster and endpoint).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { loadDesired } from '../../agent/core/documents/desired.js';
import { formatIssue } from '../../agent/core/model/issues.js';
import type { Instance } from '../../agent/core/model/model.js';
import { renderNode, type Templates } from '../../agent/core/render/render-node.js';
import { renderFiles } from '../../agent/core/render/render-files.js';
import { toYaml } from '../../agent/core/render/yaml-emit.js';
import { loadTemplates } from '../../agent/adapters/files/templates.js';
import { checkNodeEnvoy } from '../../agent/envoy-proto/check-envoy.js';
import type { Json } from '../../agent/core/xds/envoy-types.js';
import { shuffleKeys, staticBootstrap } from '../helpers/fuzz-checks.js';
import { validateBootstrap } from '../helpers/envoy.js';
import { trafficPolicyFor } from '../helpers/policy-arbitraries.js';

let templates: Templates;
before(async () => {
  templates = await loadTemplates();
});

const SERVICES = [
  { apiVersion: 'meshlet.dev/v1', kind: 'Service', metadata: { name: 'web' }, spec: { port: 8080, versions: { v1: { image: 'web:1', nodes: ['node-a'] } }, upstreams: [{ service: 'api', localPort: 19001 }, { service: 'db', localPort: 19002 }] } },
  { apiVersion: 'meshlet.dev/v1', kind: 'Service', metadata: { name: 'api' }, spec: { protocol: 'http2', port: 9001, versions: { v1: { image: 'api:1', nodes: ['*'] }, v2: { image: 'api:2', port: 9011, nodes: ['*'] } } } },
  { apiVersion: 'meshlet.dev/v1', kind: 'Service', metadata: { name: 'db' }, spec: { protocol: 'tcp', port: 5432, versions: { v1: { image: 'db:1', nodes: ['*'] } } } },
];
const ROUTE = { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'api' }, spec: { hosts: ['api'], http: [
  { match: [{ uri: { prefix: '/v2' } }], route: [{ destination: { host: 'api', subset: 'v2' } }] },
  { route: [{ destination: { host: 'api', subset: 'v1' }, weight: 70 }, { destination: { host: 'api', subset: 'v2' }, weight: 30 }] },
] } };
const INSTANCES: Instance[] = [
  ...['v1', 'v2'].flatMap((version, j) => [['node-a', 'eu', 'eu-1'], ['node-b', 'eu', 'eu-2'], ['node-c', 'us', 'us-1']].map(([node, region, zone], i) => ({ service: 'api', version, node: node!, address: `10.0.0.${i + 1}`, port: 9001 + 10 * j, region, zone }))),
  { service: 'db', version: 'v1', node: 'node-c', address: '10.0.0.3', port: 5432, region: 'us', zone: 'us-1' },
];

const rule = (host: string, port: number, tcp: boolean, versions: string[]) =>
  fc.tuple(fc.option(trafficPolicyFor(tcp, port), { nil: undefined }), fc.tuple(...versions.map(() => fc.option(trafficPolicyFor(tcp, port), { nil: undefined }))))
    .map(([tp, subs]) => ({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: host }, spec: { host, ...(tp ? { trafficPolicy: tp } : {}), subsets: versions.map((v, i) => ({ name: v, labels: { version: v }, ...(subs[i] ? { trafficPolicy: subs[i] } : {}) })) } }));
const sets = fc.tuple(rule('api', 9001, false, ['v1', 'v2']), rule('db', 5432, true, ['v1'])).map((rules) => [...SERVICES, ROUTE, ...rules]);

const text = (docs: unknown[]) => docs.map((d) => stringify(d)).join('---\n');

function render(docs: unknown[]) {
  const { desired, issues } = loadDesired([{ source: 'dr.yaml', text: text(docs) }], { xdsPort: 15010, nodes: ['node-a'] });
  assert.deepEqual(issues.map(formatIssue), [], 'a generated set is accepted');
  const r = renderNode(desired, INSTANCES, templates, {
    node: 'node-a', region: 'eu', zone: 'eu-1', advertiseAddress: '127.0.0.1', prefix: '/meshlet', sidecarImage: 'envoy',
    paths: { envoyDir: './envoy', xdsDir: './xds' }, xdsPort: 15010, adminPorts: { from: 20000, to: 20100 }, previousAdminPorts: {},
  });
  assert.deepEqual(r.issues, []);
  assert.deepEqual(checkNodeEnvoy(r).map(formatIssue), [], 'the strict check');
  return r;
}

const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 20261202;

test('generated policies are accepted, pass the strict check and render the same bytes with mapping keys reordered', () => {
  fc.assert(fc.property(sets, fc.integer({ min: 1, max: 1_000_000 }), (docs, seed) => {
    const a = renderFiles(render(docs), 'fuzz');
    const b = renderFiles(render(docs.map((d, i) => shuffleKeys(d, seed + i))), 'fuzz');
    assert.deepEqual([...b.keys()], [...a.keys()]);
    for (const [k, v] of a) assert.equal(b.get(k), v, k);
  }), { seed: SEED, numRuns: 150, endOnFailure: true });
});

test('a sample of generated policies: Envoy builds every cluster (envoy --mode validate on static bootstraps)', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'meshlet-fuzz-dr-'));
  let validated = 0;
  try {
    await fc.assert(fc.asyncProperty(sets, async (docs) => {
      const r = render(docs);
      const res = r.snapshots['sidecar~node-a~web-v1']!;
      const file = join(tmp, `${validated++}.yaml`);
      writeFileSync(file, toYaml(staticBootstrap(r.bootstraps['web-v1'] as Json, res)));
      const v = await validateBootstrap(file);
      assert.ok(v.ok, `${v.output.slice(0, 2000)}\n${JSON.stringify(res.clusters).slice(0, 3000)}`);
    }), { seed: SEED, numRuns: 12, endOnFailure: true });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  assert.equal(validated, 12);
});
