// What the sidecar benchmarks share: the fast app and the open-loop generator as child processes, wrk for
// maximum throughput, and a process's memory and CPU time from /proc.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import type { Json } from '../../agent/core/xds/envoy-types.js';
import type { EnvoyMesh } from '../../test/helpers/envoy-mesh.js';
import { startEnvoy, type RunningEnvoy } from '../../test/helpers/envoy.js';
import { ROOT } from '../../test/helpers/paths.js';
import { percentile } from './stats.js';

const here = dirname(fileURLToPath(import.meta.url));
const round = (x: number) => Math.round(x * 1000) / 1000;

export interface FastApp {
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** scripts/bench/fast-app in its own process, listening on 127.0.0.1 (a free port unless given). */
export async function startFastApp(version: string, port = 0): Promise<FastApp> {
  const child = spawn(process.execPath, [join(here, 'fast-app.js'), version, String(port)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const first = await firstLine(child, 10_000);
  return { port: (JSON.parse(first) as { port: number }).port, pid: child.pid!, stop: () => endChild(child) };
}

export interface LoadResult {
  rate: number;
  seconds: number;
  sent: number;
  ok: number;
  failed: number;
  byStatus: Record<string, number>;
  byVersion: Record<string, number>;
  errors: Record<string, number>;
  lateSends: number;
  latency: number[];
  latencyFromDue: number[];
}

export interface OpenLoopOptions {
  port: number;
  rate: number;
  seconds: number;
  warmupSeconds?: number;
  connections?: number;
  timeoutMs?: number;
}

/**
 * Runs scripts/bench/open-loop in a child process. `measuring` is called when the measured part starts
 * (after the warm-up); the promise resolves with the generator's tally.
 */
export function openLoop(opts: OpenLoopOptions, measuring?: () => void): { pid: number; done: Promise<LoadResult> } {
  const child = spawn(process.execPath, [join(here, 'open-loop.js'), JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const limit = ((opts.warmupSeconds ?? 0) + opts.seconds) * 1000 + 30_000;
  const done = new Promise<LoadResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`open-loop generator still running after ${limit} ms`));
    }, limit);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      const msg = JSON.parse(line) as { event: string } & LoadResult;
      if (msg.event === 'measuring') measuring?.();
      if (msg.event === 'done') {
        clearTimeout(timer);
        resolve(msg);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`open-loop generator exited with ${code} before reporting`));
    });
  });
  return { pid: child.pid!, done };
}

/** p50/p90/p99 of a sample, rounded to µs. */
export function percentiles(samples: number[]): { p50: number; p90: number; p99: number; n: number } {
  const s = [...samples].sort((a, b) => a - b);
  return { p50: round(percentile(s, 50)), p90: round(percentile(s, 90)), p99: round(percentile(s, 99)), n: s.length };
}

/** Installs Debian's wrk when it is missing (idempotent); returns false when it cannot be had. */
export function ensureWrk(): boolean {
  try {
    execFileSync('bash', [join(ROOT, 'scripts/bench/ensure-wrk.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
    return true;
  } catch {
    return false;
  }
}

export interface WrkResult {
  requestsPerSecond: number;
  requests: number;
  errors: number;
  latency: { p50: number; p90: number; p99: number };
  args: string;
}

/** `wrk -t1 -c<c> -d<s>s --latency` against 127.0.0.1:<port>; latencies in ms. */
export function wrk(port: number, opts: { threads?: number; connections?: number; seconds?: number } = {}): WrkResult {
  const args = [`-t${opts.threads ?? 1}`, `-c${opts.connections ?? 32}`, `-d${opts.seconds ?? 10}s`, '--latency', `http://127.0.0.1:${port}/`];
  const out = execFileSync('wrk', args, { encoding: 'utf8', timeout: ((opts.seconds ?? 10) + 30) * 1000 });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const sockErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  const at = (p: number) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(out);
    if (!m) return NaN;
    return round(Number(m[1]) * ({ us: 0.001, ms: 1, s: 1000 } as Record<string, number>)[m[2]!]!);
  };
  return { requestsPerSecond: Math.round(rps), requests, errors: non2xx + sockErrors, latency: { p50: at(50), p90: at(90), p99: at(99) }, args: `wrk ${args.slice(0, 3).join(' ')}` };
}

/**
 * `n` distinct loopback ports nobody listens on, taken below the kernel's ephemeral range: with tens of Envoys
 * opening connections, a port freePort() found in that range can be some connection's local end by the time a
 * listener wants it (seen: "cannot bind '127.0.0.1:46707': Address already in use").
 */
export async function listenerPorts(n: number, avoid: number[] = []): Promise<number[]> {
  const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  const from = 10_000;
  const to = Math.max(from + 1_000, low) - 1;
  const out = new Set<number>();
  for (let tries = 0; out.size < n && tries < n * 50; tries++) {
    const p = from + Math.floor(Math.random() * (to - from));
    if (!out.has(p) && !avoid.includes(p) && (await canListen(p))) out.add(p);
  }
  if (out.size < n) throw new Error(`found only ${out.size} of ${n} free ports in ${from}-${to}`);
  return [...out];
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/** Resident memory of a process in MiB (VmRSS from /proc). */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return round(Number(m![1]) / 1024);
}

/** Where a process's memory is (MiB): anonymous (heap, its own) and file-backed (the mapped binary, shared
 *  between processes of one binary), and PSS (shared pages split between the processes that map them). */
export function memoryMiB(pid: number): { rss: number; anon: number; file: number; pss: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (text: string, field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return { rss: round(kb(status, 'VmRSS') / 1024), anon: round(kb(status, 'RssAnon') / 1024), file: round(kb(status, 'RssFile') / 1024), pss: round(kb(rollup, 'Pss') / 1024) };
}

/** Extra Envoy arguments from BENCH_ENVOY_CONCURRENCY (unset: Envoy's default, one worker per core). */
export function envoyConcurrency(): { args: string[]; label: string } {
  const c = process.env.BENCH_ENVOY_CONCURRENCY;
  return c ? { args: ['--concurrency', c], label: `--concurrency ${c}` } : { args: [], label: `default (${availableParallelism()} workers on ${availableParallelism()} cores)` };
}

/**
 * The mesh's startSidecar() with extra Envoy arguments: the bootstrap meshlet rendered for `workload`, its
 * admin port moved to a free one (clear of `avoidPorts`), then wait until the sidecar ACKed its snapshot.
 */
export async function startSidecar(mesh: EnvoyMesh, workload: string, extraArgs: string[], avoidPorts: number[] = []): Promise<RunningEnvoy> {
  const [adminPort] = await listenerPorts(1, [mesh.xdsPort, ...avoidPorts]);
  const bootstrap = { ...(mesh.render().bootstraps[workload] as Json), admin: { address: { socket_address: { address: '127.0.0.1', port_value: adminPort! } } } };
  const envoy = killedOnExit(await startEnvoy(bootstrap, { adminPort: adminPort!, extraArgs }));
  try {
    await mesh.synced(workload);
  } catch (err) {
    await envoy.stop();
    throw err;
  }
  return envoy;
}

/**
 * Envoy does not die with the Node process that spawned it: a benchmark that throws would leave its sidecars
 * running (seen: ten orphaned Envoys after a failed fan-out). SIGKILLs the process when this one exits.
 */
export function killedOnExit(envoy: RunningEnvoy): RunningEnvoy {
  if (running.size === 0 && !exitHook) exitHook = process.once('exit', () => running.forEach((e) => e.process.kill('SIGKILL')));
  running.add(envoy);
  envoy.process.once('exit', () => running.delete(envoy));
  return envoy;
}
const running = new Set<RunningEnvoy>();
let exitHook: unknown;

/** User + system CPU seconds a process has used so far (/proc/<pid>/stat, clock ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Samples `fn` every `everyMs` until stopped; returns the samples. */
export function sampleEvery(everyMs: number, fn: () => number): { stop(): number[] } {
  const samples: number[] = [];
  const timer = setInterval(() => {
    try {
      samples.push(fn());
    } catch {
      // The process may be gone at the very end; the samples taken so far stand.
    }
  }, everyMs);
  return { stop: () => (clearInterval(timer), samples) };
}

function firstLine(child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('child did not report within the deadline')), timeoutMs);
    createInterface({ input: child.stdout! }).once('line', (line) => {
      clearTimeout(timer);
      resolve(line);
    });
    child.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
  });
}

async function endChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.stdin?.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), 3_000);
  await exited;
  clearTimeout(timer);
}
