// One real Envoy sidecar (Envoy 1.40.0, configured by meshlet's renderer, snapshot cache and ADS server; no
// etcd, no Docker) in front of a fast Node app, both on the host: the latency one sidecar hop adds at a
// fixed 1,000 requests/s (open-loop generator in its own process), the most requests/s it carries (wrk),
// and its resident memory idle and under load. Needs MESHLET_TEST_ENVOY (scripts/dev-env.sh env) or `envoy`.
import { startEnvoyMesh } from '../../test/helpers/envoy-mesh.js';
import { freePort } from '../../test/helpers/etcd.js';
import { send } from '../../test/helpers/http-apps.js';
import { waitFor } from '../../test/helpers/wait.js';
import { cpuSeconds, ensureWrk, openLoop, percentiles, rssMiB, sampleEvery, startFastApp, wrk, type LoadResult } from './sidecar-lib.js';

const RATE = Number(process.env.BENCH_SIDECAR_RATE ?? 1000);
const SECONDS = Number(process.env.BENCH_SIDECAR_SECONDS ?? 30);
const WRK_SECONDS = Number(process.env.BENCH_SIDECAR_WRK_SECONDS ?? 10);
const round = (x: number) => Math.round(x * 1000) / 1000;

const app = await startFastApp('v1');
const localPort = await freePort();
const mesh = await startEnvoyMesh();
mesh.apply(`
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: web }
spec:
  port: 1
  versions: { v1: { image: web:1, nodes: [local] } }
  upstreams: [{ service: api, localPort: ${localPort} }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: api }
spec:
  port: ${app.port}
  versions: { v1: { image: api:1, nodes: [elsewhere] } }
`, [{ service: 'api', version: 'v1', node: 'elsewhere', address: '127.0.0.1', port: app.port }]);
// Default concurrency: Envoy starts one worker thread per core (2 here), as the sidecar container does.
const envoy = await mesh.startSidecar('web-v1');
const pid = envoy.process.pid!;
await waitFor('an answer through the sidecar', async () => (await send(localPort, { timeoutMs: 1000 })).status === 200, 20_000, 50);

// Idle: connected to ADS, configured, no traffic.
await new Promise((r) => setTimeout(r, 2_000));
const idle = sampleEvery(500, () => rssMiB(pid));
await new Promise((r) => setTimeout(r, 5_000));
const idleRss = idle.stop();

const generator = 'open loop (scripts/bench/open-loop.ts, Node child process, keep-alive, 16 connections)';
const load = (port: number) => openLoop({ port, rate: RATE, seconds: SECONDS, warmupSeconds: 3, connections: 16 }).done;
const direct = await load(app.port);
let busy: { stop(): number[] } | undefined;
const cpu0 = cpuSeconds(pid);
const viaRun = openLoop({ port: localPort, rate: RATE, seconds: SECONDS, warmupSeconds: 3, connections: 16 }, () => (busy = sampleEvery(1_000, () => rssMiB(pid))));
const via = await viaRun.done;
const cpu1 = cpuSeconds(pid);
const busyRss = busy?.stop() ?? [];

const line = (name: string, r: LoadResult, extra: Record<string, unknown>) => {
  const p = percentiles(r.latency);
  const d = percentiles(r.latencyFromDue);
  console.log(JSON.stringify({ name, unit: 'ms', ...p, rate: RATE, seconds: SECONDS, sent: r.sent, failed: r.failed, lateSends: r.lateSends, fromDueP99: d.p99, generator, ...extra }));
  return p;
};
const pd = line('HTTP request straight to the app at 1,000 rps (baseline)', direct, {});
const pv = line('HTTP request through one Envoy sidecar at 1,000 rps', via, { envoyCpuPercentOfOneCore: round(((cpu1 - cpu0) / (SECONDS + 3)) * 100) });
console.log(JSON.stringify({
  name: 'latency added by one sidecar hop at 1,000 rps (through sidecar − direct, per percentile)', unit: 'ms',
  p50: round(pv.p50 - pd.p50), p90: round(pv.p90 - pd.p90), p99: round(pv.p99 - pd.p99), n: pv.n, target: 'p90 ≤ 0.5', generator,
}));
const rss = (name: string, samples: number[], extra: Record<string, unknown>) => {
  const p = percentiles(samples);
  console.log(JSON.stringify({ name, unit: 'MiB', p50: p.p50, p99: p.p99, n: p.n, max: Math.max(...samples), ...extra }));
};
rss('Envoy sidecar RSS, idle (configured, ADS connected)', idleRss, { envoyConcurrency: 'default (2 workers on 2 cores)' });
rss('Envoy sidecar RSS at 1,000 rps', busyRss, { envoyConcurrency: 'default (2 workers on 2 cores)', anchor: 'Istio: 40 MB per 1,000 rps' });

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

await mesh.stop();
await app.stop();
