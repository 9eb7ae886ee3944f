// Render + strict check of one node whose caller sidecar carries 200 tcp/tls routes (issue 14, item 4):
// 40 tcp upstreams in 4 namespaces, hosts written as FQDNs, each with 3 SNI routes (one by sourceLabels)
// and 2 tcp routes (by sourceLabels, by port) with weighted destinations.
import { loadDesired } from '../../agent/core/documents/desired.js';
import { renderNode } from '../../agent/core/render/render-node.js';
import { checkNodeEnvoy } from '../../agent/envoy-proto/check-envoy.js';
import { DEFAULT_ADMIN_PORTS } from '../../agent/core/render/admin-ports.js';
import { loadTemplates } from '../../agent/adapters/files/templates.js';
import type { Instance } from '../../agent/core/model/model.js';
import { report, time } from './stats.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 200);
const UPSTREAMS = 40;

const docs: string[] = [];
const instances: Instance[] = [];
const upstreams: string[] = [];
for (let i = 0; i < UPSTREAMS; i++) {
  const name = `db-${i}`;
  const ns = `ns-${i % 4}`;
  const port = 20000 + i * 2;
  upstreams.push(`    - { service: ${name}, localPort: ${30000 + i} }`);
  docs.push(`apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: ${name}, namespace: ${ns} }
spec:
  protocol: tcp
  port: ${port}
  versions:
    v1: { image: db:1, nodes: [node-b] }
    v2: { image: db:2, port: ${port + 1}, nodes: [node-b] }
`, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name}, namespace: ${ns} }
spec:
  hosts: [${name}.${ns}.svc.cluster.local]
  tls:
    - match: [{ sniHosts: [a.${name}.test] }]
      route: [{ destination: { host: ${name}, subset: v1 } }]
    - match: [{ sniHosts: [b.${name}.test, "*.b.${name}.test"] }]
      route:
        - { destination: { host: ${name}.${ns}, subset: v1 }, weight: 50 }
        - { destination: { host: ${name}.${ns}.svc, subset: v2 }, weight: 50 }
    - match: [{ sniHosts: [c.${name}.test], sourceLabels: { app: caller, version: v1 } }]
      route: [{ destination: { host: ${name}, subset: v2 } }]
  tcp:
    - match: [{ sourceLabels: { app: caller, version: v2 } }]
      route: [{ destination: { host: ${name}, subset: v2 } }]
    - match: [{ port: ${port} }]
      route:
        - { destination: { host: ${name}, subset: v1 }, weight: 90 }
        - { destination: { host: ${name}, subset: v2 }, weight: 10 }
`);
  for (const v of ['v1', 'v2']) instances.push({ service: name, version: v, node: 'node-b', address: '127.0.0.2', port: port + (v === 'v2' ? 1 : 0) });
}
docs.push(`apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: caller, namespace: apps }
spec:
  port: 9000
  versions: { v1: { image: c:1, nodes: [node-a] } }
  upstreams:
${upstreams.join('\n')}
`);

const loaded = loadDesired([{ source: 'l4.yaml', text: docs.join('---\n') }], { xdsPort: 15010 });
if (loaded.issues.length > 0) throw new Error(`generated state is invalid: ${loaded.issues[0]!.path}: ${loaded.issues[0]!.message}`);
const desired = loaded.desired;
const routes = desired.routes.reduce((n, r) => n + r.tls.length + r.tcp.length, 0);
const templates = await loadTemplates();
const opts = {
  node: 'node-a', advertiseAddress: '127.0.0.1', prefix: '/meshlet', sidecarImage: 'envoyproxy/envoy:v1.32.3',
  paths: { envoyDir: '../envoy', xdsDir: '../xds' }, xdsPort: 15010, adminPorts: DEFAULT_ADMIN_PORTS, previousAdminPorts: {},
};
const renderChecked = () => {
  const r = renderNode(desired, instances, templates, opts);
  const issues = checkNodeEnvoy(r);
  if (issues.length > 0) throw new Error(issues[0]!.message);
  return r;
};
for (let i = 0; i < 20; i++) renderChecked();
const samples: number[] = [];
for (let i = 0; i < RUNS; i++) samples.push((await time(renderChecked))[0]);
report('render_node_200_l4_routes_strict', 'ms', samples, { routes, upstreams: UPSTREAMS });
