// Real traffic through the real agent: a web → api mesh whose busybox apps say which version answered, the
// agent in-process or as a process, the compose project's containers, a sidecar's admin, continuous load.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent as HttpAgent } from 'node:http';
import { join } from 'node:path';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import { projectName } from '../../agent/core/model/ids.js';
import { createDocker } from '../../agent/adapters/docker/docker.js';
import { send } from './http-apps.js';
import { ROOT } from './paths.js';

export const SIDECAR = process.env.MESHLET_TEST_SIDECAR_IMAGE ?? 'meshlet-test/envoy:1.40.0';
const BUSYBOX = process.env.MESHLET_TEST_BUSYBOX_IMAGE ?? 'meshlet-test/busybox:1';

/** An httpd whose pages say `<version> <service>-<version>@<node>`; the agent's http check probes /health.html. */
function versionApp(port: number | undefined, node: string): string {
  const script = 'mkdir -p /tmp/www && echo "$MESHLET_VERSION $MESHLET_SERVICE-$MESHLET_VERSION@$MESHLET_NODE" > /tmp/www/index.html && echo ok > /tmp/www/health.html && exec httpd -f -p 127.0.0.1:$PORT -h /tmp/www';
  return `
      image: ${BUSYBOX}
      command: ["sh", "-c", ${JSON.stringify(script)}]
      nodes: [${node}]${port ? `\n      port: ${port}` : ''}
      health: { http: /health.html, interval: 1s, timeout: 500ms, retries: 2 }`;
}

export interface TrafficMeshOptions {
  /** `v1: 90, v2: 10` style weights of api's VirtualService; none = no VirtualService. */
  weights?: Record<string, number>;
  /** api versions placed on this node (default v1, v2); each listens on base+1, base+2, … */
  versions?: string[];
  /** api versions that exist but run on another node (registered by the test). */
  elsewhere?: string[];
}

/** web (base) → api through web's sidecar on 127.0.0.1:base+3; api v1 on base+1, v2 on base+2. */
export function trafficMesh(base: number, node: string, opts: TrafficMeshOptions = {}): string {
  const versions = opts.versions ?? ['v1', 'v2'];
  const api = versions.map((v, i) => `    ${v}:${versionApp(i === 0 ? undefined : base + 1 + i, node)}`);
  for (const v of opts.elsewhere ?? []) api.push(`    ${v}: { image: ${BUSYBOX}, port: ${base + 9}, nodes: [elsewhere] }`);
  const route = opts.weights
    ? `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api }
spec:
  hosts: [api]
  http:
    - route:
${Object.entries(opts.weights).map(([v, w]) => `        - { destination: { host: api, subset: ${v} }, weight: ${w} }`).join('\n')}
`
    : '';
  return `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: web }
spec:
  port: ${base}
  versions:
    v1:${versionApp(undefined, node)}
  upstreams: [{ service: api, mode: proxy, localPort: ${base + 3} }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: api }
spec:
  port: ${base + 1}
  versions:
${api.join('\n')}
${route}`;
}

export interface AgentSetup {
  node: string;
  etcdUrl: string;
  prefix: string;
  stateDir: string;
  xdsPort: number;
  base: number;
  /** The agent's --templates folder (default: the repo's templates/). */
  templatesDir?: string;
  /** --lease-ttl in seconds (default 10). */
  leaseTtl?: number;
}

/** The agent in this process, with the real Envoy image as sidecar and admin ports base+10…base+19. */
export function startLocalAgent(s: AgentSetup): Promise<RunningAgent> {
  return startAgent({
    node: s.node, etcd: { endpoints: [s.etcdUrl], prefix: s.prefix, retries: 0 }, stateDir: s.stateDir, advertiseAddress: '127.0.0.1', xdsPort: s.xdsPort,
    compose: 'auto', sidecarImage: SIDECAR, leaseTtl: s.leaseTtl ?? 10, adminPorts: { from: s.base + 10, to: s.base + 19 }, resyncInterval: 5,
    ...(s.templatesDir ? { templatesDir: s.templatesDir } : {}),
  }, systemClock, silentLogger, new AbortController().signal);
}

/** `meshlet agent` as a separate process (debug log on stderr). */
export function spawnAgentProcess(s: AgentSetup): { child: ChildProcess; stderr: () => string } {
  const child = spawn(process.execPath, [join(ROOT, 'dist/agent/bin.js'), 'agent', '--node', s.node, '--etcd', s.etcdUrl, '--prefix', s.prefix, '--state-dir', s.stateDir,
    '--advertise-address', '127.0.0.1', '--sidecar-image', SIDECAR, '--xds-port', String(s.xdsPort), '--lease-ttl', String(s.leaseTtl ?? 10), '--admin-ports', `${s.base + 10}-${s.base + 19}`,
    '--log-level', 'debug'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
    if (err.length > 4_000_000) err = err.slice(-2_000_000);
  });
  return { child, stderr: () => err };
}

/** compose service name → container id, for every container of the node's project. */
export async function containerIds(node: string): Promise<Record<string, string>> {
  const list = await createDocker().listContainers({ all: true, filters: { label: [`com.docker.compose.project=${projectName(node)}`] } });
  return Object.fromEntries(list.map((c) => [c.Labels['com.docker.compose.service']!, c.Id] as const).sort(([a], [b]) => (a < b ? -1 : 1)));
}

export function composeDown(node: string, stateDir: string): void {
  try {
    execFileSync('docker-compose', ['-p', projectName(node), '-f', join(stateDir, 'compose/docker-compose.yml'), 'down', '-t', '1'], { stdio: 'pipe' });
  } catch {
    /* nothing was brought up */
  }
}

/** The admin port the agent gave a sidecar (`web-v1`), from its state.json. */
export function adminPort(stateDir: string, workload: string): number {
  const port = (JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as { adminPorts: Record<string, number> }).adminPorts[workload];
  if (!port) throw new Error(`no admin port for ${workload} in ${stateDir}/state.json`);
  return port;
}

async function adminGet(port: number, path: string): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
  return res.text();
}

/** A sidecar's endpoints per cluster (`address:port` sorted), from its admin `/clusters`. */
export async function sidecarEndpoints(port: number): Promise<Record<string, string[]>> {
  const body = JSON.parse(await adminGet(port, '/clusters?format=json')) as { cluster_statuses?: { name: string; host_statuses?: { address: { socket_address: { address: string; port_value: number } } }[] }[] };
  return Object.fromEntries((body.cluster_statuses ?? []).map((c) => [c.name, (c.host_statuses ?? []).map((h) => `${h.address.socket_address.address}:${h.address.socket_address.port_value}`).sort()]));
}

/** A sidecar's counters and gauges whose names match `filter` (a regex). */
export async function sidecarStats(port: number, filter: string): Promise<Record<string, number>> {
  const body = JSON.parse(await adminGet(port, `/stats?format=json&filter=${encodeURIComponent(filter)}`)) as { stats: { name: string; value?: number }[] };
  return Object.fromEntries(body.stats.filter((s) => typeof s.value === 'number').map((s) => [s.name, s.value!]));
}

export interface LoadTally {
  total: number;
  ok: number;
  /** Answer body's first word (the version) of each 200 → count. */
  byVersion: Record<string, number>;
  /** Second word (`api-v1@node` or a host app's id) → count. */
  byApp: Record<string, number>;
  /** Every non-200 answer: status (0 = no answer), what came back, and when (performance.now()). */
  failures: { status: number; body: string; at: number }[];
}

export function emptyTally(): LoadTally {
  return { total: 0, ok: 0, byVersion: {}, byApp: {}, failures: [] };
}

function count(t: LoadTally, status: number, body: string): void {
  t.total++;
  if (status !== 200) {
    t.failures.push({ status, body: body.slice(0, 200), at: Math.round(performance.now()) });
    return;
  }
  t.ok++;
  const [version, app] = body.trim().split(/\s+/);
  if (version) t.byVersion[version] = (t.byVersion[version] ?? 0) + 1;
  if (app) t.byApp[app] = (t.byApp[app] ?? 0) + 1;
}

/** `n` requests to 127.0.0.1:`port`, `concurrency` at a time. */
export async function requests(port: number, n: number, concurrency = 8): Promise<LoadTally> {
  const t = emptyTally();
  let started = 0;
  const worker = async () => {
    while (started < n) {
      started++;
      const r = await send(port, { timeoutMs: 10_000 });
      count(t, r.status, r.body);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return t;
}

export interface Load {
  tally: LoadTally;
  /** Stops sending, waits for the requests in flight, returns the tally. */
  stop(): Promise<LoadTally>;
}

/**
 * Continuous requests until stopped: `workers` loops, each one request at a time then `pauseMs`.
 * `fresh` opens a new connection per request (else keep-alive connections are reused, as apps do).
 */
export function startLoad(port: number, opts: { workers?: number; pauseMs?: number; fresh?: boolean } = {}): Load {
  const tally = emptyTally();
  let running = true;
  const agent = new HttpAgent({ keepAlive: !opts.fresh, maxSockets: opts.workers ?? 4 });
  const worker = async () => {
    while (running) {
      const r = await send(port, { agent, timeoutMs: 10_000, ...(opts.fresh ? { headers: { connection: 'close' } } : {}) });
      count(tally, r.status, r.body);
      if (opts.pauseMs) await new Promise((res) => setTimeout(res, opts.pauseMs));
    }
  };
  const done = Promise.all(Array.from({ length: opts.workers ?? 4 }, worker));
  const load: Load = {
    tally,
    stop: async () => {
      running = false;
      await done;
      agent.destroy();
      live.delete(load);
      return tally;
    },
  };
  live.add(load);
  return load;
}

const live = new Set<Load>();

/** Stops every load still running (a test that failed half-way): call it in `after`, else the file never ends. */
export async function stopLoads(): Promise<void> {
  await Promise.all([...live].map((l) => l.stop()));
}

/** Share of 200 answers that came from `version` (0 when none). */
export function share(t: LoadTally, version: string): number {
  return t.ok === 0 ? 0 : (t.byVersion[version] ?? 0) / t.ok;
}

export interface RegisteredInstance {
  service: string;
  version: string;
  node: string;
  address: string;
  port: number;
}

/**
 * What web's sidecar should hold for `service`, per cluster it has for it: `service` (every version) or
 * `service|<version>` (that version), each the registered `address:port` list, sorted.
 */
export function expectedEndpoints(service: string, registered: RegisteredInstance[], clusters: string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const c of clusters) {
    const [host, subset] = c.split('|');
    if (host !== service) continue;
    out[c] = registered.filter((i) => i.service === service && (subset === undefined || i.version === subset)).map((i) => `${i.address}:${i.port}`).sort();
  }
  return out;
}

/** The sidecar's endpoints of `service`'s clusters only. */
export function endpointsOf(service: string, all: Record<string, string[]>): Record<string, string[]> {
  return Object.fromEntries(Object.entries(all).filter(([c]) => c.split('|')[0] === service));
}
