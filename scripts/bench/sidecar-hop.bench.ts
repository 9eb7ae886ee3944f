// One real Envoy sidecar (Envoy 1.40.0, configured by meshlet's renderer, snapshot cache and ADS server; no
// etcd, no Docker) in front of a fast Node app, both on the host: the latency one sidecar hop adds at a
// fixed 1,000 requests/s (open-loop generator in its own process), the most requests/s it carries (wrk),
// and its resident memory idle and under load. Needs MESHLET_TEST_ENVOY (scripts/dev-env.sh env) or `envoy`.
import { startEnvoyMesh } from '../../test/helpers/envoy-mesh.js';
import { send } from '../../test/helpers/http-apps.js';
import { waitFor } from '../../test/helpers/wait.js';
import { cpuSeconds, ensureWrk, envoyConcurrency, listenerPorts, memoryMiB, openLoop, percentiles, rssMiB, sampleEvery, startFastApp, startSidecar, wrk, type LoadResult } from './sidecar-lib.js';

const RATE = Number(process.env.BENCH_SIDECAR_RATE ?? 1000);
const SECONDS = Number(process.env.BENCH_SIDECAR_SECONDS ?? 30);
const WRK_SECONDS = Number(process.env.BENCH_SIDECAR_WRK_SECONDS ?? 10);
const round = (x: number) => Math.round(x * 1000) / 1000;

const app = await startFastApp('v1');
const mesh = await startEnvoyMesh();
const [localPort] = await listenerPorts(1, [mesh.xdsPort, app.port]);
mesh.apply(`
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: web }
spec:
  port: 1
  versions: { v1: { image: web:1, nodes: [local] } }
  upstreams: [{ service: api, localPort: ${localPort!} }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: api }
spec:
  port: ${app.port}
  versions: { v1: { image: api:1, nodes: [elsewhere] } }
`, [{ service: 'api', version: 'v1', node: 'elsewhere', address: '127.0.0.1', port: app.port }]);
// Default concurrency unless BENCH_ENVOY_CONCURRENCY: one worker thread per core (2 here), as in the sidecar container.
const concurrency = envoyConcurrency();
const envoy = await startSidecar(mesh, 'web-v1', concurrency.args, [localPort!, app.port]);
const pid = envoy.process.pid!;
await waitFor('an answer through the sidecar', async () => (await send(localPort, { timeoutMs: 1000 })).status === 200, 20_000, 50);

// Idle: connected to ADS, configured, no traffic.
await new Promise((r) => setTimeout(r, 2_000));
const idle = sampleEvery(500, () => rssMiB(pid));
await new Promise((r) => setTimeout(r, 5_000));
const idleRss = idle.stop();
const idleMem = memoryMiB(pid);

const generator = 'open loop (scripts/bench/open-loop.ts, Node child process, keep-alive, 16 connections)';
// The machine is shared: the 30 s of each path are run as alternating 5 s segments (D S S D D S …), so a
// noisy moment lands on both paths alike rather than on whichever ran second. Each segment warms up 1 s first.
const SEGMENT = Math.min(5, SECONDS);
const segments = Math.max(1, Math.round(SECONDS / SEGMENT));
const merged = (): LoadResult => ({ rate: RATE, seconds: 0, sent: 0, ok: 0, failed: 0, byStatus: {}, byVersion: {}, errors: {}, lateSends: 0, latency: [], latencyFromDue: [] });
const direct = merged();
const via = merged();
const busyRss: number[] = [];
let envoyCpu = 0;
const add = (into: LoadResult, r: LoadResult) => {
  into.seconds += r.seconds;
  into.sent += r.sent;
  into.ok += r.ok;
  into.failed += r.failed;
  into.lateSends += r.lateSends;
  for (const [k, v] of Object.entries(r.errors)) into.errors[k] = (into.errors[k] ?? 0) + v;
  into.latency.push(...r.latency);
  into.latencyFromDue.push(...r.latencyFromDue);
};
for (let i = 0; i < 2 * segments; i++) {
  const sidecar = [1, 2].includes(i % 4);
  let busy: { stop(): number[] } | undefined;
  let cpu0 = 0;
  const r = await openLoop({ port: sidecar ? localPort : app.port, rate: RATE, seconds: SEGMENT, warmupSeconds: 1, connections: 16 }, () => {
    if (!sidecar) return;
    cpu0 = cpuSeconds(pid);
    busy = sampleEvery(1_000, () => rssMiB(pid));
  }).done;
  if (sidecar) envoyCpu += cpuSeconds(pid) - cpu0;
  busyRss.push(...(busy?.stop() ?? []));
  add(sidecar ? via : direct, r);
}
const busyMem = memoryMiB(pid);

const line = (name: string, r: LoadResult, extra: Record<string, unknown>) => {
  const p = percentiles(r.latency);
  const d = percentiles(r.latencyFromDue);
  console.log(JSON.stringify({ name, unit: 'ms', ...p, rate: RATE, seconds: r.seconds, segments: `${segments} × ${SEGMENT} s, alternating`, sent: r.sent, failed: r.failed, lateSends: r.lateSends, fromDueP99: d.p99, generator, ...extra }));
  return p;
};
const pd = line(`HTTP request straight to the app at ${RATE} rps (baseline)`, direct, {});
const pv = line(`HTTP request through one Envoy sidecar at ${RATE} rps`, via, { envoyCpuPercentOfOneCore: round((envoyCpu / via.seconds) * 100), envoyConcurrency: concurrency.label });
console.log(JSON.stringify({
  name: `latency added by one sidecar hop at ${RATE} rps (through sidecar − direct, per percentile)`, unit: 'ms',
  p50: round(pv.p50 - pd.p50), p90: round(pv.p90 - pd.p90), p99: round(pv.p99 - pd.p99), n: pv.n, target: 'p90 ≤ 0.5', generator,
}));
const rss = (name: string, samples: number[], extra: Record<string, unknown>) => {
  const p = percentiles(samples);
  console.log(JSON.stringify({ name, unit: 'MiB', p50: p.p50, p99: p.p99, n: p.n, max: Math.max(...samples), ...extra }));
};
// RSS counts the mapped Envoy binary (file pages, shared by every Envoy on the host); anon is the sidecar's own.
rss('Envoy sidecar RSS, idle (configured, ADS connected)', idleRss, { envoyConcurrency: concurrency.label, lastSample: idleMem });
rss(`Envoy sidecar RSS at ${RATE} rps`, busyRss, { envoyConcurrency: concurrency.label, lastSample: busyMem, anchor: 'Istio: 40 MB per 1,000 rps' });

// Maximum throughput: wrk, closed loop, same app, direct and through the sidecar.
if (ensureWrk()) {
  const opts = { threads: 1, connections: 32, seconds: WRK_SECONDS };
  const wd = wrk(app.port, opts);
  const c0 = cpuSeconds(pid);
  const wv = wrk(localPort, opts);
  const c1 = cpuSeconds(pid);
  const max = (name: string, w: typeof wd, extra: Record<string, unknown> = {}) =>
    console.log(JSON.stringify({ name, unit: 'requests/s', value: w.requestsPerSecond, p50: w.latency.p50, p90: w.latency.p90, p99: w.latency.p99, latencyUnit: 'ms', requests: w.requests, errors: w.errors, generator: w.args, ...extra }));
  max('max requests/s straight to the app (wrk)', wd);
  max('max requests/s through one Envoy sidecar (wrk)', wv, { envoyCpuPercentOfOneCore: round(((c1 - c0) / WRK_SECONDS) * 100) });
} else {
  console.log(JSON.stringify({ name: 'max requests/s through one Envoy sidecar (wrk)', skipped: 'wrk is not installed and could not be (scripts/bench/ensure-wrk.sh)' }));
}

await envoy.stop();
await mesh.stop();
await app.stop();
