// Render + strict Envoy check of one node whose three sidecars (web v1, web v2, ops) each carry a route
// table of 200 http rules using every match and route action of issue 14 (items 2 and 3), to a Service in
// another namespace written as FQDN and short hosts (item 1), under a DestinationRule with a consistent
// hash, locality failover, connection pool, outlier detection, per-subset policy and TLS DISABLE (item 5).
// The tcp/tls routes have their own figure (l4-routes.bench.ts).
import { loadDesired } from '../../agent/core/documents/desired.js';
import { renderNode } from '../../agent/core/render/render-node.js';
import { checkNodeEnvoy } from '../../agent/envoy-proto/check-envoy.js';
import { DEFAULT_ADMIN_PORTS } from '../../agent/core/render/admin-ports.js';
import { loadTemplates } from '../../agent/adapters/files/templates.js';
import type { Instance } from '../../agent/core/model/model.js';
import { report, time } from './stats.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 200);
const RULES = 200;

const dest = (v: string) => `{ destination: { host: api.backend.svc.cluster.local, subset: ${v} } }`;
// One rule per kind, cycled: rule i uses kind i % KINDS.length under its own /r<i> prefix.
const KINDS: ((p: string) => string)[] = [
  (p) => `- match: [{ uri: { prefix: ${p} }, sourceLabels: { app: web, version: v2 }, port: 7000 }]\n  route: [${dest('v2')}]`,
  (p) => `- match: [{ uri: { prefix: ${p} }, sourceNamespace: default, scheme: { exact: http }, authority: { prefix: api } }]\n  route: [${dest('v1')}]`,
  (p) => `- match: [{ uri: { exact: ${p}/Case }, ignoreUriCase: true, queryParams: { q: { regex: "[0-9]+" } }, withoutHeaders: { x-skip: { exact: "yes" } } }]\n  route: [${dest('v2')}]`,
  (p) => `- match: [{ uri: { prefix: ${p} } }]\n  redirect: { uri: /new, authority: a.example, redirectCode: 302 }`,
  (p) => `- match: [{ uri: { prefix: ${p} } }]\n  redirect: { scheme: https, derivePort: FROM_REQUEST_PORT }`,
  (p) => `- match: [{ uri: { prefix: ${p} } }]\n  directResponse: { status: 503, body: { string: "down" } }`,
  (p) => `- match: [{ uri: { prefix: ${p} } }]\n  rewrite: { uriRegexRewrite: { match: "^${p}/(.*)$", rewrite: "/x/\\\\1" }, authority: api.internal }\n  route: [${dest('v1')}]`,
  (p) => `- match: [{ uri: { prefix: ${p} } }]\n  headers: { request: { set: { x-a: "1" }, add: { x-b: "2" }, remove: [x-c] }, response: { set: { x-d: "3" } } }\n  route:\n    - { destination: { host: api, subset: v1 }, weight: 60, headers: { request: { set: { x-dest: v1 } } } }\n    - { destination: { host: api, subset: v2 }, weight: 40, headers: { response: { remove: [x-app] } } }`,
  (p) => `- match: [{ uri: { prefix: ${p} } }]\n  corsPolicy: { allowOrigins: [{ exact: "https://a.example" }, { regex: ".*\\\\.test" }], allowMethods: [GET, POST], allowHeaders: [x-token], exposeHeaders: [x-v], maxAge: 1h, allowCredentials: true }\n  route: [${dest('v1')}]`,
  (p) => `- match: [{ uri: { prefix: ${p} } }]\n  retries: { attempts: 3, perTryTimeout: 1s, retryOn: "5xx,gateway-error,reset,connect-failure,retriable-4xx,refused-stream,cancelled,unavailable,503", retryRemoteLocalities: true }\n  timeout: 5s\n  route: [${dest('v1')}]`,
  (p) => `- match: [{ uri: { prefix: ${p} } }]\n  mirrors: [{ destination: { host: api, subset: v2 }, percentage: { value: 25 } }]\n  fault: { delay: { fixedDelay: 1ms, percentage: { value: 0.1 } } }\n  route: [${dest('v1')}]`,
  (p) => `- match: [{ uri: { prefix: ${p} } }]\n  delegate: { name: api-team }`,
];

const rules = Array.from({ length: RULES - 1 }, (_, i) => KINDS[i % KINDS.length]!(`/r${i}`)).concat([`- route: [${dest('v1')}]`]);
const indent = (s: string, n: number) => s.replace(/^/gm, ' '.repeat(n));
const yaml = `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: web }
spec:
  port: 8000
  versions: { v1: { image: web:1, nodes: [node-a] }, v2: { image: web:2, port: 8001, nodes: [node-a] } }
  upstreams: [{ service: api, localPort: 9001 }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: ops }
spec:
  port: 8100
  versions: { v1: { image: ops:1, nodes: [node-a] } }
  upstreams: [{ service: api, localPort: 9002 }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: api, namespace: backend }
spec:
  port: 7000
  versions: { v1: { image: api:1, nodes: [node-b] }, v2: { image: api:2, port: 7001, nodes: [node-b] } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api, namespace: backend }
spec:
  hosts: [api]
  exportTo: ["*"]
  gateways: [mesh]
  http:
${indent(rules.join('\n'), 4)}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api-team, namespace: backend }
spec:
  http:
    - match: [{ uri: { regex: ".*/reports" } }]
      route: [${dest('v2')}]
    - route: [${dest('v1')}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api, namespace: backend }
spec:
  host: api
  trafficPolicy:
    loadBalancer: { consistentHash: { httpHeaderName: x-user, ringHash: { minimumRingSize: 1024 } }, localityLbSetting: { enabled: true, failover: [{ from: eu, to: us }] } }
    connectionPool:
      tcp: { maxConnections: 100, connectTimeout: 1s, tcpKeepalive: { time: 60s, interval: 10s, probes: 3 }, idleTimeout: 1h }
      http: { http1MaxPendingRequests: 10, http2MaxRequests: 100, maxRequestsPerConnection: 10, maxRetries: 3, idleTimeout: 30s, h2UpgradePolicy: DO_NOT_UPGRADE }
    outlierDetection: { consecutive5xxErrors: 5, consecutiveGatewayErrors: 3, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50, minHealthPercent: 20 }
    tls: { mode: DISABLE }
  subsets:
    - { name: v1, labels: { version: v1 } }
    - name: v2
      labels: { version: v2 }
      trafficPolicy: { loadBalancer: { simple: LEAST_REQUEST, warmupDurationSecs: 30s } }
`;

const loaded = loadDesired([{ source: 'bench.yaml', text: yaml }], { xdsPort: 15010 });
// The delegate's regex rule cannot narrow a prefix: it is refused, so the delegate holds one rule.
const fatal = loaded.issues.filter((i) => !i.path.endsWith('.delegate'));
if (fatal.length > 0) throw new Error(`bench state is invalid: ${fatal[0]!.path}: ${fatal[0]!.message}`);
const fixedYaml = yaml.replace(`    - match: [{ uri: { regex: ".*/reports" } }]\n      route: [${dest('v2')}]\n`, '');
const { desired, issues } = loadDesired([{ source: 'bench.yaml', text: fixedYaml }], { xdsPort: 15010 });
if (issues.length > 0) throw new Error(`bench state is invalid: ${issues[0]!.path}: ${issues[0]!.message}`);
const instances: Instance[] = [
  { service: 'api', version: 'v1', node: 'node-b', address: '10.0.0.2', port: 7000 },
  { service: 'api', version: 'v2', node: 'node-b', address: '10.0.0.2', port: 7001 },
];
const templates = await loadTemplates();
const opts = {
  node: 'node-a', advertiseAddress: '127.0.0.1', prefix: '/meshlet', sidecarImage: 'envoyproxy/envoy:v1.32.3',
  paths: { envoyDir: '../envoy', xdsDir: '../xds' }, xdsPort: 15010, adminPorts: DEFAULT_ADMIN_PORTS, previousAdminPorts: {},
};

const renderAndCheck = () => {
  const r = renderNode(desired, instances, templates, opts);
  const problems = checkNodeEnvoy(r);
  if (problems.length > 0) throw new Error(problems[0]!.message);
  return r;
};
const sample = renderAndCheck();
const routes = Object.values(sample.snapshots).map((s) => (s.routes[0] as { virtual_hosts: { routes: unknown[] }[] }).virtual_hosts[0]!.routes.length);
for (let i = 0; i < 20; i++) renderAndCheck();
const times: number[] = [];
for (let i = 0; i < RUNS; i++) times.push((await time(renderAndCheck))[0]);
report('render_node_http_dsl_200_rules_strict', 'ms', times, { sidecars: routes.length, envoy_routes_per_sidecar: routes });
const renderOnly: number[] = [];
const checkOnly: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const [a, r] = await time(() => renderNode(desired, instances, templates, opts));
  renderOnly.push(a);
  checkOnly.push((await time(() => checkNodeEnvoy(r)))[0]);
}
report('render_node_http_dsl_200_rules', 'ms', renderOnly, { strict: false });
report('strict_envoy_check_node_http_dsl_200_rules', 'ms', checkOnly);
