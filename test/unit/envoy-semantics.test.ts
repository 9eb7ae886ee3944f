// Emitter fixes found by sending real requests through Envoy 1.40 (test/envoy/): each case names what Envoy did.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadDesired } from '../../agent/core/documents/desired.js';
import { buildProxylessResources, buildSidecarResources } from '../../agent/core/xds/build-xds.js';
import { workloadsOn } from '../../agent/core/render/placement.js';
import { validateEnvoy } from '../../agent/envoy-proto/envoy-validator.js';
import type { Desired } from '../../agent/core/model/model.js';

type Json = Record<string, any>;

const PREVIOUS_HOSTS = {
  retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate' } }],
  host_selection_retry_max_attempts: 5,
};
const UNLIMITED = 4294967295;

function mesh(rules: string, protocol = 'http'): Desired {
  const yaml = `
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: web }
spec:
  port: 1000
  versions: { v1: { image: web:1, nodes: [n1] } }
  upstreams: [{ service: api, localPort: 19000 }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: api }
spec:
  protocol: ${protocol}
  port: 2000
  versions: { v1: { image: api:1, nodes: [n2] }, v2: { image: api:2, port: 2001, nodes: [n2] } }
${rules}`;
  const { desired, issues } = loadDesired([{ source: 'semantics.yaml', text: yaml }], { xdsPort: 15010, nodes: ['n1'] });
  assert.deepEqual(issues, []);
  return desired;
}

function sidecar(desired: Desired): Json {
  const w = workloadsOn(desired, 'n1').find((x) => x.name === 'web-v1')!;
  const res = buildSidecarResources(w, desired, [], []) as Json;
  for (const r of res.routes) assert.deepEqual(validateEnvoy('envoy.config.route.v3.RouteConfiguration', r), []);
  for (const c of res.clusters) assert.deepEqual(validateEnvoy('envoy.config.cluster.v3.Cluster', c), []);
  for (const l of res.listeners) assert.deepEqual(validateEnvoy('envoy.config.listener.v3.Listener', l), []);
  return res;
}

const vs = (route: string) => `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api }
spec:
  hosts: [api]
  http:
    - route: [{ destination: { host: api, subset: v1 } }]
${route}
`;

test('sidecar retries pick a host not tried yet, as Istio has them (without, 1 request in 8 failed over a 503 instance under RANDOM)', () => {
  const dflt = sidecar(mesh('')).routes[0].virtual_hosts[0].routes[0].route.retry_policy;
  assert.deepEqual(dflt, { retry_on: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes', num_retries: 2, retriable_status_codes: [503], ...PREVIOUS_HOSTS });
  const explicit = sidecar(mesh(vs('      retries: { attempts: 3, retryOn: 5xx, perTryTimeout: 200ms }'))).routes[0].virtual_hosts[0].routes[0].route.retry_policy;
  assert.deepEqual(explicit, { retry_on: '5xx', num_retries: 3, per_try_timeout: '0.2s', ...PREVIOUS_HOSTS });
  const none = sidecar(mesh(vs('      retries: { attempts: 0 }'))).routes[0].virtual_hosts[0].routes[0].route;
  assert.equal(none.retry_policy, undefined);
});

test('proxyless gRPC routes keep retries without host predicates (gRFC A44 ignores them)', () => {
  const res = buildProxylessResources(['api'], mesh(''), [], []) as Json;
  assert.equal(res.routes[0].virtual_hosts[0].routes[0].route.retry_policy.retry_host_predicate, undefined);
  assert.equal(res.clusters[0].circuit_breakers, undefined);
});

test("sidecar clusters lift Envoy's circuit-breaker defaults as Istio does (3 concurrent retries overflowed: 452 of 1,000 failed)", () => {
  const open = sidecar(mesh('')).clusters.find((c: Json) => c.name === 'api');
  assert.deepEqual(open.circuit_breakers, { thresholds: [{ max_connections: UNLIMITED, max_pending_requests: UNLIMITED, max_requests: UNLIMITED, max_retries: UNLIMITED }] });
  const limited = sidecar(
    mesh(`---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api }
spec:
  host: api
  trafficPolicy: { connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 2 } } }
`),
  ).clusters.find((c: Json) => c.name === 'api');
  assert.deepEqual(limited.circuit_breakers, { thresholds: [{ max_connections: 1, max_pending_requests: 2, max_requests: UNLIMITED, max_retries: UNLIMITED }] });
});

test('outlier detection turns off the panic threshold unless minHealthPercent says otherwise, as Istio does (Envoy 50% sent traffic to 2 ejected of 3)', () => {
  const dr = (od: string) => `---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api }
spec:
  host: api
  trafficPolicy: { outlierDetection: { ${od} } }
`;
  const cluster = (od: string) => sidecar(mesh(dr(od))).clusters.find((c: Json) => c.name === 'api');
  assert.deepEqual(cluster('consecutive5xxErrors: 3').common_lb_config, { healthy_panic_threshold: { value: 0 } });
  assert.deepEqual(cluster('consecutive5xxErrors: 3, minHealthPercent: 40').common_lb_config, { healthy_panic_threshold: { value: 40 } });
  assert.equal(sidecar(mesh('')).clusters[0].common_lb_config, undefined, 'no outlier detection: Envoy defaults');
});

test('a tcp route at 100/0 leaves the 0-weight cluster out of the TCP proxy (its weights must be >= 1), keeping the cluster', () => {
  const desired = mesh(`---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api }
spec:
  hosts: [api]
  tcp:
    - route:
        - { destination: { host: api, subset: v1 }, weight: 100 }
        - { destination: { host: api, subset: v2 }, weight: 0 }
`, 'tcp');
  const res = sidecar(desired);
  const proxy = res.listeners[0].filter_chains[0].filters[0].typed_config;
  assert.equal(proxy.cluster, 'api|v1');
  assert.equal(proxy.weighted_clusters, undefined);
  assert.deepEqual(res.clusters.map((c: Json) => c.name), ['api|v1', 'api|v2']);
});
