// Issue 14 items 2 and 3, fixture in, Envoy resources out: fixtures/http-dsl/mesh.yaml rendered for node-a
// (sidecars of web v1, web v2 and ops) equals fixtures/http-dsl/expected/ (UPDATE_GOLDEN=1 rewrites it), passes
// the strict check, and carries what each caller should get. Proxyless rendering of the same features too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, fixture, tempDir } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';
import { validateEnvoy } from '../../agent/envoy-proto/envoy-validator.js';
import { loadDesired } from '../../agent/core/documents/desired.js';
import { buildProxylessResources } from '../../agent/core/xds/build-xds.js';

process.chdir(ROOT);
type J = Record<string, any>;

async function renderNodeA(): Promise<string> {
  const out = join(tempDir(), 'out');
  const r = await runCli(['render', '-f', 'fixtures/http-dsl/mesh.yaml', '--instances', 'fixtures/http-dsl/instances.yaml', '--node', 'node-a', '--out', out]);
  assert.equal(r.code, 0, r.err);
  return out;
}
const snapshot = (out: string, workload: string): J => JSON.parse(readFileSync(join(out, 'xds', `sidecar~node-a~${workload}.json`), 'utf8'));
const routesOf = (s: J): J[] => s.routes[0].virtual_hosts[0].routes;
const byPrefix = (s: J, p: string): J => routesOf(s).find((r) => r.match.prefix === p || r.match.path === p)!;

test('the http DSL fixture renders the expected files for node-a', async () => {
  const out = await renderNodeA();
  const expected = fixture('http-dsl', 'expected', 'node-a');
  if (process.env.UPDATE_GOLDEN === '1') {
    rmSync(expected, { recursive: true, force: true });
    cpSync(out, expected, { recursive: true });
  }
  for (const dir of ['xds', 'envoy']) {
    const got = readdirSync(join(out, dir)).sort();
    assert.deepEqual(got, readdirSync(join(expected, dir)).sort(), dir);
    for (const f of got) assert.equal(readFileSync(join(out, dir, f), 'utf8'), readFileSync(join(expected, dir, f), 'utf8'), `${dir}/${f}`);
  }
});

test('every resource of every sidecar passes the strict Envoy check', async () => {
  const out = await renderNodeA();
  const types: [string, string][] = [['listeners', 'envoy.config.listener.v3.Listener'], ['routes', 'envoy.config.route.v3.RouteConfiguration'], ['clusters', 'envoy.config.cluster.v3.Cluster'], ['endpoints', 'envoy.config.endpoint.v3.ClusterLoadAssignment']];
  for (const w of ['web-v1', 'web-v2', 'ops-v1']) {
    const s = snapshot(out, w);
    for (const [k, type] of types) for (const doc of s[k]) assert.deepEqual(validateEnvoy(type, doc), [], `${w} ${k} ${doc.name ?? doc.cluster_name}`);
  }
});

test('sourceLabels: only web v2 gets the rule for app web, version v2; sourceNamespace default applies to every caller', async () => {
  const out = await renderNodeA();
  const names = (w: string) => routesOf(snapshot(out, w)).map((r) => r.name).filter(Boolean);
  assert.deepEqual(names('web-v2').slice(0, 2), ['from-web-v2.v2-callers', 'from-default']);
  for (const w of ['web-v1', 'ops-v1']) {
    assert.ok(!names(w).includes('from-web-v2.v2-callers'), w);
    assert.equal(names(w)[0], 'from-default', w);
  }
  // The port match is the Service's own port: it holds for every request, so it adds no condition.
  assert.deepEqual(routesOf(snapshot(out, 'web-v2'))[0].match, { prefix: '/' });
});

test('redirects, direct responses, rewrite, CORS, retries and delegation become the Envoy fields Istio renders', async () => {
  const out = await renderNodeA();
  const s = snapshot(out, 'web-v1');
  assert.deepEqual(byPrefix(s, '/old').redirect, { host_redirect: 'api.example', path_redirect: '/new', response_code: 'FOUND' });
  assert.deepEqual(byPrefix(s, '/secure').redirect, { scheme_redirect: 'https', port_redirect: 9001 }, 'FROM_REQUEST_PORT is the listener web v1 sent to');
  assert.deepEqual(byPrefix(snapshot(out, 'ops-v1'), '/secure').redirect.port_redirect, 9002);
  assert.deepEqual(byPrefix(s, '/teapot').direct_response, { status: 418, body: { inline_bytes: 'dGVhcG90' } });
  assert.deepEqual(byPrefix(s, '/v1/').route.regex_rewrite, { pattern: { regex: '^/v1/(.*)$' }, substitution: '/api/\\1' });
  assert.deepEqual(byPrefix(s, '/v1/').route.weighted_clusters.clusters.map((c: J) => c.request_headers_to_add[0].header.value), ['v1', 'v2']);
  assert.deepEqual(byPrefix(s, '/single').request_headers_to_add.map((h: J) => h.header.key), ['x-route', 'x-dest'], 'one destination: its header operations join the route\'s');
  const cors = byPrefix(s, '/cors').typed_per_filter_config['envoy.filters.http.cors'];
  assert.deepEqual(cors, {
    '@type': 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy',
    allow_origin_string_match: [{ exact: 'https://app.example' }, { prefix: 'https://dev.' }, { safe_regex: { regex: 'https://.*\\.test' } }],
    allow_methods: 'GET,POST', allow_headers: 'x-token,content-type', expose_headers: 'x-version', max_age: '86400', allow_credentials: true,
    forward_not_matching_preflights: false,
  });
  const hcm = s.listeners[0].filter_chains[0].filters[0].typed_config;
  assert.deepEqual(hcm.http_filters.map((f: J) => f.name), ['envoy.filters.http.cors', 'envoy.filters.http.fault', 'envoy.filters.http.router']);
  const retry = byPrefix(s, '/retry').route.retry_policy;
  assert.equal(retry.retry_on, '5xx,gateway-error,reset,connect-failure,retriable-4xx,refused-stream,cancelled,deadline-exceeded,internal,resource-exhausted,unavailable,retriable-status-codes');
  assert.deepEqual(retry.retriable_status_codes, [503]);
  assert.equal(retry.retry_priority.typed_config.update_frequency, 4);
  assert.equal(retry.retry_host_predicate[0].name, 'envoy.retry_host_predicates.previous_hosts');
  const same = byPrefix(s, '/retry-same-host').route.retry_policy;
  assert.equal(same.retry_host_predicate, undefined, 'retryIgnorePreviousHosts: false');
  assert.deepEqual(same.retry_back_off, { base_interval: '0.1s' });
  // The delegate's two rules replace the delegating one, each under its match, with its timeout.
  const team = routesOf(s).filter((r) => r.name?.startsWith('team'));
  assert.deepEqual(team.map((r) => [r.name, r.match.prefix, r.match.headers, r.route.cluster, r.route.timeout]), [
    ['team-reports', '/team/reports', [{ name: 'x-team', string_match: { exact: 'blue' } }], 'api|v2', '3s'],
    ['team', '/team/', [{ name: 'x-team', string_match: { exact: 'blue' } }], 'api|v1', '3s'],
  ]);
});

test('proxyless: matches on callers and headers are rendered, what gRPC cannot do is left out', () => {
  const text = `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: web }
spec:
  port: 8000
  versions: { v1: { image: web:1, nodes: [node-a] }, v2: { image: web:2, port: 8001, nodes: [node-a] } }
  upstreams: [{ service: greeter, mode: xds }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: greeter }
spec:
  protocol: grpc
  port: 7100
  versions: { v1: { image: g:1, nodes: [node-b] }, v2: { image: g:2, port: 7101, nodes: [node-b] } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: greeter }
spec:
  hosts: [greeter]
  http:
    - name: v2-callers
      match: [{ sourceLabels: { version: v2 } }]
      route: [{ destination: { host: greeter, subset: v2 } }]
    - name: query
      match: [{ queryParams: { a: { exact: b } } }]
      route: [{ destination: { host: greeter, subset: v2 } }]
    - name: without
      match: [{ withoutHeaders: { x-a: { exact: "1" } }, headers: { x-b: { prefix: c } } }]
      retries: { attempts: 2, retryOn: unavailable, retryRemoteLocalities: true }
      route: [{ destination: { host: greeter, subset: v1 } }]
`;
  const { desired, issues } = loadDesired([{ source: 'g.yaml', text }], { xdsPort: 15010 });
  assert.deepEqual(issues, []);
  const names = (caller?: { service: string; version: string; namespace: string }) => {
    const res = buildProxylessResources(['greeter'], desired, [], [], caller);
    assert.deepEqual(validateEnvoy('envoy.config.route.v3.RouteConfiguration', res.routes[0]), []);
    assert.ok(!JSON.stringify(res.listeners).includes('cors'));
    return (res.routes[0] as J).virtual_hosts[0].routes as J[];
  };
  const v2 = names({ service: 'web', version: 'v2', namespace: 'default' });
  assert.deepEqual(v2.map((r) => r.name), ['v2-callers', 'without'], 'gRPC ignores query_parameters: the rule would match every call, and no call has a query');
  assert.deepEqual(v2[1].match.headers, [{ name: 'x-b', string_match: { prefix: 'c' } }, { name: 'x-a', present_match: true }, { name: 'x-a', string_match: { exact: '1' }, invert_match: true }]);
  assert.equal(v2[1].route.retry_policy.retry_priority, undefined, 'gRPC has no retry priorities');
  assert.deepEqual(names({ service: 'web', version: 'v1', namespace: 'default' }).map((r) => r.name), ['without']);
  assert.deepEqual(names(undefined).map((r) => r.name), ['without'], 'a client the agent did not start matches no sourceLabels');
});
