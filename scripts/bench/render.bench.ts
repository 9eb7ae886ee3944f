// Render + validate one node carrying ~40 workloads out of a 1,000-service, 50-node state; and CLI cold start.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDesired } from '../../agent/core/documents/desired.js';
import { renderNode } from '../../agent/core/render/render-node.js';
import { renderFiles } from '../../agent/core/render/render-files.js';
import { checkNodeEnvoy } from '../../agent/envoy-proto/check-envoy.js';
import { workloadsOn } from '../../agent/core/render/placement.js';
import { DEFAULT_ADMIN_PORTS } from '../../agent/core/render/admin-ports.js';
import { loadTemplates } from '../../agent/adapters/files/templates.js';
import { packageRoot } from '../../agent/version.js';
import { bigMesh } from './big-mesh.js';
import { report, time } from './stats.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 200);
const COLD_RUNS = Number(process.env.BENCH_COLD_RUNS ?? 20);

const mesh = bigMesh();
const templates = await loadTemplates();
const node = 'node-07';
const opts = {
  node, advertiseAddress: '127.0.0.1', prefix: '/meshlet', sidecarImage: 'envoyproxy/envoy:v1.32.3',
  paths: { envoyDir: '../envoy', xdsDir: '../xds' }, xdsPort: 15010, adminPorts: DEFAULT_ADMIN_PORTS, previousAdminPorts: {},
};

// The whole state: parse + validate every document + set checks (what `meshlet apply` and the agent do per change).
const parseTimes: number[] = [];
let desired = loadDesired([{ source: 'big.yaml', text: mesh.yaml }], { xdsPort: 15010 }).desired;
for (let i = 0; i < 10; i++) {
  const [ms, r] = await time(() => loadDesired([{ source: 'big.yaml', text: mesh.yaml }], { xdsPort: 15010 }));
  if (r.issues.length > 0) throw new Error(`generated state is invalid: ${r.issues[0]!.message}`);
  desired = r.desired;
  parseTimes.push(ms);
}
const workloads = workloadsOn(desired, node).length;
report('validate_desired_1000_services', 'ms', parseTimes, { services: desired.services.length, bytes: mesh.yaml.length });

// Warm up, then measure the node render (values + serialised files), without and with the strict Envoy check.
for (let i = 0; i < 20; i++) checkNodeEnvoy(renderNode(desired, mesh.instances, templates, opts));
const plain: number[] = [];
const strict: number[] = [];
const checkOnly: number[] = [];
for (let i = 0; i < RUNS; i++) {
  const [a] = await time(() => renderFiles(renderNode(desired, mesh.instances, templates, opts), 'bench'));
  plain.push(a);
  const [b] = await time(() => {
    const r = renderNode(desired, mesh.instances, templates, opts);
    const issues = checkNodeEnvoy(r);
    if (issues.length > 0) throw new Error(issues[0]!.message);
    return renderFiles(r, 'bench');
  });
  strict.push(b);
  const r = renderNode(desired, mesh.instances, templates, opts);
  const [c] = await time(() => checkNodeEnvoy(r));
  checkOnly.push(c);
}
report('render_node_40_workloads', 'ms', plain, { workloads, strict: false });
report('render_node_40_workloads_strict', 'ms', strict, { workloads, strict: true });
report('strict_envoy_check_node_40_workloads', 'ms', checkOnly, { workloads });

// CLI cold start: a new node process rendering the fixture, end to end (strict check on).
const root = packageRoot();
const cold: number[] = [];
for (let i = 0; i < COLD_RUNS; i++) {
  const out = join(mkdtempSync(join(tmpdir(), 'meshlet-bench-')), 'out');
  const [ms] = await time(() => execFileSync(process.execPath, [join(root, 'dist/agent/bin.js'), 'render', '-f', join(root, 'fixtures/bookinfo/services.yaml'), '-f', join(root, 'fixtures/bookinfo/routes.yaml'), '--instances', join(root, 'fixtures/bookinfo/instances.yaml'), '--node', 'node-a', '--out', out], { stdio: 'pipe' }));
  cold.push(ms);
  rmSync(join(out, '..'), { recursive: true, force: true });
}
report('cli_render_cold_start', 'ms', cold);
