// The agent's resident memory at idle, through a flood of route changes and after it settles (issue: 90 → 121 MiB
// after 300 `meshlet route` changes, and it stayed there). A real agent process, the dev environment's etcd (own
// prefix) and Docker, web → api v1/v2/v3 with real Envoy sidecars, so every change is pushed to four real xDS clients,
// and each change is a split not seen before (so a cache that keeps every version shows).
// Needs `scripts/dev-env.sh up`. Settings: BENCH_ROUTE_CHANGES (1000), BENCH_WARM_SECONDS (60: the start's own
// garbage is returned within it), BENCH_IDLE_SECONDS (60),
// BENCH_SETTLE_SECONDS (60), BENCH_AFTER_SECONDS (60), BENCH_AGENT_NODE_FLAGS (extra node flags for diagnosis,
// e.g. `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=DIR`; the figures to compare are taken without them),
// BENCH_SNAPSHOT_SIGNAL (e.g. SIGUSR2: sent to the agent after the idle and the after-burst samples, for two heap
// snapshots to compare), BENCH_DIAGNOSE_DIR (V8's heap spaces and the process's resident memory by mapping, idle and
// after the burst, on stderr; into the folder: the agent's memory once a second, timeline.jsonl, its stdout, e.g. for
// --trace-gc, agent.out, and when each phase began, phases.jsonl).
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { keys } from '../../agent/core/model/keys.js';
import { routeCommand } from '../../agent/commands/canary.js';
import { freePort } from '../../test/helpers/etcd.js';
import { ROOT, tempDir } from '../../test/helpers/paths.js';
import { putDocs } from '../../test/helpers/local-mesh.js';
import { waitFor } from '../../test/helpers/wait.js';
import { SIDECAR, adminPort, composeDown, requests, trafficMesh } from '../../test/helpers/agent-traffic.js';
import { percentile, report } from './stats.js';

const CHANGES = Number(process.env.BENCH_ROUTE_CHANGES ?? 1000);
const WARM_SECONDS = Number(process.env.BENCH_WARM_SECONDS ?? 60);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
const SETTLE_SECONDS = Number(process.env.BENCH_SETTLE_SECONDS ?? 60);
const AFTER_SECONDS = Number(process.env.BENCH_AFTER_SECONDS ?? 60);
const NODE_FLAGS = (process.env.BENCH_AGENT_NODE_FLAGS ?? '').split(/\s+/).filter((f) => f !== '');
const SNAPSHOT_SIGNAL = process.env.BENCH_SNAPSHOT_SIGNAL as NodeJS.Signals | undefined;
const DIAGNOSE_DIR = process.env.BENCH_DIAGNOSE_DIR;
const DIAGNOSE = DIAGNOSE_DIR !== undefined;
if (DIAGNOSE_DIR) mkdirSync(DIAGNOSE_DIR, { recursive: true });
const phase = (name: string) => DIAGNOSE_DIR && appendFileSync(join(DIAGNOSE_DIR, 'phases.jsonl'), `${JSON.stringify({ t: Date.now(), phase: name })}\n`);
const ETCD = process.env.MESHLET_TEST_ETCD ?? 'http://127.0.0.1:23790';

const node = `mem-${Math.random().toString(36).slice(2, 8)}`;
const prefix = `/bench-${node}`;
// Above test/helpers' randomPortBase range (20000–27999), so a test running meanwhile never takes these ports.
const base = 41000 + Math.floor(Math.random() * 200) * 20;
const xdsPort = await freePort();
const stateDir = tempDir('meshlet-bench-memory-');
const memFile = join(stateDir, 'memory-usage.json');
const etcd = new Etcd3({ hosts: ETCD });
const k = keys(prefix);
/** The i-th of every v1/v2/v3 split with each at least 1: 4,851 of them, so each change is a new route version. */
const weights = (i: number): Weights => {
  let n = i % 4851;
  for (let v1 = 1; v1 <= 98; v1++) {
    if (n < 99 - v1) return { v1, v2: 1 + n, v3: 99 - v1 - n };
    n -= 99 - v1;
  }
  throw new Error('unreachable');
};
type Weights = { v1: number; v2: number; v3: number };
const weightsFlag = (w: Weights) => `v1=${w.v1},v2=${w.v2},v3=${w.v3}`;
// web's sidecar listens for api here (trafficMesh's own base+3 is v3's port when there are three versions).
const proxy = base + 8;

// The agent's process.memoryUsage() once a second into a file, from a preload: no change to the agent, no inspector.
const preload = `data:text/javascript,${encodeURIComponent(`import { appendFileSync, renameSync, writeFileSync } from 'node:fs';
const f = ${JSON.stringify(memFile)};
const timeline = ${JSON.stringify(DIAGNOSE_DIR ? join(DIAGNOSE_DIR, 'timeline.jsonl') : '')};
const v8 = ${DIAGNOSE} ? await import('node:v8') : undefined;
const spaces = () => Object.fromEntries((v8?.getHeapSpaceStatistics() ?? []).map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size, physical: s.physical_space_size }]));
setInterval(() => {
  try {
    const m = process.memoryUsage();
    writeFileSync(f + '.new', JSON.stringify({ ...m, spaces: spaces() }));
    renameSync(f + '.new', f); // whole, never half-written when read
    if (timeline) appendFileSync(timeline, JSON.stringify({ t: Date.now(), ...m }) + '\\n');
  } catch {}
}, 1000).unref();`)}`;

await putDocs(etcd, prefix, trafficMesh(base, node, { versions: ['v1', 'v2', 'v3'], weights: { v1: 34, v2: 33, v3: 33 } }).replace(`localPort: ${base + 3}`, `localPort: ${proxy}`));
const child: ChildProcess = spawn(process.execPath, [...NODE_FLAGS, '--import', preload, join(ROOT, 'dist/agent/bin.js'), 'agent', '--node', node, '--etcd', ETCD, '--prefix', prefix,
  '--state-dir', stateDir, '--advertise-address', '127.0.0.1', '--sidecar-image', SIDECAR, '--xds-port', String(xdsPort), '--admin-ports', `${base + 10}-${base + 19}`],
{ stdio: ['ignore', DIAGNOSE_DIR ? openSync(join(DIAGNOSE_DIR, 'agent.out'), 'a') : 'ignore', 'pipe'], cwd: stateDir });
let childErr = '';
child.stderr!.on('data', (b: Buffer) => (childErr = (childErr + b.toString()).slice(-8000)));
child.once('exit', (code, signal) => { if (code !== 0 && signal !== 'SIGTERM') console.error(`agent exited with ${code ?? signal}: ${childErr}`); });

try {
  await run();
} catch (err) {
  console.error(`the agent's last log lines:\n${childErr}`);
  throw err;
} finally {
  child.kill('SIGTERM');
  await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
  composeDown(node, stateDir);
  await etcd.delete().prefix(prefix).exec().catch(() => {});
  etcd.close();
  rmSync(stateDir, { recursive: true, force: true });
}

async function run(): Promise<void> {
  // Up: every api version answers through web's sidecar, and every sidecar has ACKed.
  await waitFor('every version answering through web\'s sidecar', async () => {
    const t = await requests(proxy, 60);
    return t.ok === 60 && ['v1', 'v2', 'v3'].every((v) => (t.byVersion[v] ?? 0) > 0);
  }, 300_000, 500);
  await settled('the mesh to settle', 0);
  phase('warm');
  await new Promise((r) => setTimeout(r, WARM_SECONDS * 1000));
  phase('idle');
  const idle = await sample(IDLE_SECONDS);
  diagnose('idle');
  await heapSnapshot();

  // The flood: back-to-back `meshlet route` runs (each a read of desired state and a compare-and-swap).
  const peak: number[] = [];
  const peakTimer = setInterval(() => peak.push(rss()), 250);
  phase('burst');
  const t0 = performance.now();
  for (let i = 0; i < CHANGES; i++) {
    await routeCommand({ etcd: ETCD, prefix, service: 'api', weights: weightsFlag(weights(i + 1)) }, () => {}, (line) => console.error(line));
  }
  const burstSeconds = (performance.now() - t0) / 1000;
  phase('burst written');
  const last = Number((await etcd.get('/none').exec()).header.revision);
  await settled('the agent and web\'s sidecar to take the last change', last, weights(CHANGES));
  clearInterval(peakTimer);
  phase('settled');
  await new Promise((r) => setTimeout(r, SETTLE_SECONDS * 1000));
  phase('after');
  const after = await sample(AFTER_SECONDS);
  phase('end');
  diagnose('after the burst');
  await heapSnapshot();

  const extra = { changes: CHANGES, sidecars: 4, burstSeconds: Math.round(burstSeconds) };
  report('memory_idle_rss', 'MiB', idle.rss, { seconds: IDLE_SECONDS });
  report('memory_burst_peak_rss', 'MiB', [Math.max(...peak, ...idle.rss)], extra);
  report('memory_after_burst_rss', 'MiB', after.rss, { ...extra, settleSeconds: SETTLE_SECONDS, seconds: AFTER_SECONDS });
  const med = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);
  report('memory_after_burst_minus_idle_rss', 'MiB', [med(after.rss) - med(idle.rss)], { ...extra, target: 'at most 5' });
  report('memory_idle_heap_used', 'MiB', idle.heap);
  report('memory_after_burst_heap_used', 'MiB', after.heap, extra);
  report('memory_after_burst_minus_idle_heap_used', 'MiB', [med(after.heap) - med(idle.heap)], extra);
  report('memory_after_burst_minus_idle_heap_total', 'MiB', [med(after.heapTotal) - med(idle.heapTotal)], extra);
  report('memory_after_burst_minus_idle_external', 'MiB', [med(after.external) - med(idle.external)], extra);
}

/**
 * Waits until the node status reports `revision` applied, every sidecar connected with nothing refused, the
 * status unchanged for 5 s, and (when given) web's sidecar routing with those weights.
 */
async function settled(what: string, revision: number, w?: Weights): Promise<void> {
  let same = { value: '', since: 0 };
  await waitFor(what, async () => {
    const value = (await etcd.get(k.nodeStatus(node)).string()) ?? '{}';
    const s = JSON.parse(value) as { appliedRevision?: number; sidecars?: { connected: boolean; nack?: unknown }[]; xdsErrors?: Record<string, unknown> };
    if ((s.appliedRevision ?? 0) < revision || s.sidecars?.length !== 4 || !s.sidecars.every((c) => c.connected && !c.nack)) return false;
    if (Object.keys(s.xdsErrors ?? {}).length > 0) throw new Error(`xDS snapshots refused: ${JSON.stringify(s.xdsErrors)}`);
    if (w && !(await routesWith(w))) return false;
    if (value !== same.value) same = { value, since: Date.now() };
    return Date.now() - same.since >= 5_000;
  }, 600_000, 500);
}

/** Whether web's sidecar's dynamic route configuration splits api with exactly these weights. */
async function routesWith(w: Weights): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${adminPort(stateDir, 'web-v1')}/config_dump?resource=dynamic_route_configs`, { signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  const split = (v: string, n: number) => new RegExp(`"name":\\s*"[^"]*api[^"]*${v}[^"]*",\\s*"weight":\\s*${n}\\b`).test(text);
  return split('v1', w.v1) && split('v2', w.v2) && split('v3', w.v3);
}

/** Diagnosis only: asks the agent for a heap snapshot (--heapsnapshot-signal) and gives it time to write it. */
async function heapSnapshot(): Promise<void> {
  if (!SNAPSHOT_SIGNAL) return;
  child.kill(SNAPSHOT_SIGNAL);
  await new Promise((r) => setTimeout(r, 20_000));
}

function rss(): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for the agent (pid ${child.pid}): ${childErr}`);
  return Number(m[1]) / 1024;
}

/** Diagnosis only: V8's spaces (MiB: size, used, physical) and the agent's resident memory per mapping (MiB). */
function diagnose(when: string): void {
  if (!DIAGNOSE) return;
  const mib = (b: number) => Math.round((b / 2 ** 20) * 10) / 10;
  const m = JSON.parse(readFileSync(memFile, 'utf8')) as { spaces: Record<string, { size: number; used: number; physical: number }> };
  const spaces = Object.fromEntries(Object.entries(m.spaces).map(([n, s]) => [n, [mib(s.size), mib(s.used), mib(s.physical)]]));
  const byMapping: Record<string, number> = {};
  let name = '';
  for (const line of readFileSync(`/proc/${child.pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) name = head[1] || '[anon]';
    const rssLine = /^Rss:\s+(\d+) kB/.exec(line);
    if (rssLine) byMapping[name] = (byMapping[name] ?? 0) + Number(rssLine[1]) / 1024;
  }
  const top = Object.entries(byMapping).sort((a, b) => b[1] - a[1]).slice(0, 8).map(([n, v]) => [n, Math.round(v * 10) / 10]);
  console.error(JSON.stringify({ diagnose: when, v8Spaces: spaces, rssByMapping: Object.fromEntries(top) }));
}

/** RSS, heap used and total, and external memory once a second for `seconds`. */
async function sample(seconds: number): Promise<{ rss: number[]; heap: number[]; heapTotal: number[]; external: number[] }> {
  const out = { rss: [] as number[], heap: [] as number[], heapTotal: [] as number[], external: [] as number[] };
  for (let s = 0; s < seconds; s++) {
    await new Promise((r) => setTimeout(r, 1000));
    out.rss.push(rss());
    const m = JSON.parse(readFileSync(memFile, 'utf8')) as { heapUsed: number; heapTotal: number; external: number };
    out.heap.push(m.heapUsed / 2 ** 20);
    out.heapTotal.push(m.heapTotal / 2 ** 20);
    out.external.push(m.external / 2 ** 20);
  }
  return out;
}
