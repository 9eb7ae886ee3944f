// Renders the host's docker-compose project: one app container and one Envoy sidecar per placed version.
import type { Upstream } from '../model/model.js';
import type { Workload } from './placement.js';
import { deepMerge } from './merge.js';
import { composeDuration } from '../documents/duration.js';
import { UPSTREAM_TLS_ROOT } from '../xds/upstream-tls.js';
import { ENVOY_CONFIG_IN_CONTAINER, SIDECAR_SUFFIX, XDS_BOOTSTRAP_IN_CONTAINER } from '../model/ids.js';

export interface ComposeOptions {
  node: string;
  /** The host's advertised IP, injected as MESHLET_ADDRESS. */
  advertiseAddress: string;
  /** etcd key prefix; naming-mode upstreams dial `etcd:///<prefix>/naming/<service>`. */
  prefix: string;
  /** Sidecar image when the Service does not name one. */
  sidecarImage: string;
  /** Folders as seen from the compose file (relative to it, or absolute). */
  paths: { envoyDir: string; xdsDir: string };
}

/**
 * Hash of the files each compose service mounts, by compose service name. Compose's own
 * config-hash ignores file contents, so this label is what makes a changed bootstrap recreate its container.
 */
export type MountHashes = Readonly<Record<string, string>>;

export interface ComposeTemplates {
  app: Record<string, unknown>;
  sidecar: Record<string, unknown>;
}

export interface ComposeFile {
  version: string;
  services: Record<string, Record<string, unknown>>;
}

/**
 * Host files each compose service mounts read-only, by compose service name (a sidecar's upstream TLS
 * certificates and keys); each is mounted at UPSTREAM_TLS_ROOT + its host path.
 */
export type HostFileMounts = Readonly<Record<string, readonly string[]>>;

/** Returns the compose document for the node; pure and deterministic. */
export function renderCompose(workloads: Workload[], templates: ComposeTemplates, opts: ComposeOptions, mountHashes: MountHashes = {}, hostFiles: HostFileMounts = {}): ComposeFile {
  const services: ComposeFile['services'] = {};
  for (const w of workloads) {
    services[w.name] = deepMerge(templates.app, escapeDollars(withMountHash(appService(w, opts), mountHashes[w.name])));
    services[w.name + SIDECAR_SUFFIX] = deepMerge(templates.sidecar, escapeDollars(withMountHash(sidecarService(w, opts, hostFiles[w.name + SIDECAR_SUFFIX] ?? []), mountHashes[w.name + SIDECAR_SUFFIX])));
  }
  return { version: '2.4', services };
}

/**
 * Compose substitutes `$VAR` from the environment it runs in; meshlet's values are literal, so `$` becomes `$$`
 * (a command like `sh -c 'httpd -p $PORT'` then sees the container's PORT). Template values are left as written.
 */
export function escapeDollars<T>(value: T): T {
  if (typeof value === 'string') return value.replace(/\$/g, '$$$$') as T;
  if (Array.isArray(value)) return value.map(escapeDollars) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, escapeDollars(v)])) as T;
  }
  return value;
}

function withMountHash(svc: Record<string, unknown>, hash: string | undefined): Record<string, unknown> {
  if (!hash) return svc;
  return { ...svc, labels: { ...(svc.labels as Record<string, string>), 'meshlet.mounts-hash': hash } };
}

function labels(w: Workload, opts: ComposeOptions, role: 'app' | 'sidecar'): Record<string, string> {
  return { 'meshlet.node': opts.node, 'meshlet.role': role, 'meshlet.service': w.service.name, 'meshlet.version': w.version.name };
}

function appService(w: Workload, opts: ComposeOptions): Record<string, unknown> {
  const v = w.version;
  const env: Record<string, string> = { ...v.env, ...injectedEnv(w, opts) };
  const volumes = [...v.volumes];
  if (w.service.upstreams.some((u) => u.mode === 'xds')) volumes.push(`${opts.paths.xdsDir}/${w.name}.json:${XDS_BOOTSTRAP_IN_CONTAINER}:ro`);
  const svc: Record<string, unknown> = {
    image: v.image,
    ...(v.command ? { command: v.command } : {}),
    network_mode: 'host',
    environment: sortKeys(env),
    labels: labels(w, opts, 'app'),
  };
  if (v.health?.kind === 'exec') {
    const t = v.health.timing;
    svc.healthcheck = {
      test: typeof v.health.command === 'string' ? ['CMD-SHELL', v.health.command] : ['CMD', ...v.health.command],
      interval: composeDuration(t.intervalMs),
      timeout: composeDuration(t.timeoutMs),
      retries: t.retries,
      start_period: composeDuration(t.startPeriodMs),
    };
  }
  if (v.resources?.cpus !== undefined) svc.cpus = v.resources.cpus;
  if (v.resources?.memory !== undefined) svc.mem_limit = v.resources.memory;
  if (volumes.length > 0) svc.volumes = volumes;
  return svc;
}

/** The variables the agent injects: identity, PORT, and one per upstream by its mode. */
export function injectedEnv(w: Workload, opts: ComposeOptions): Record<string, string> {
  const env: Record<string, string> = {
    MESHLET_SERVICE: w.service.name,
    MESHLET_VERSION: w.version.name,
    MESHLET_NODE: opts.node,
    MESHLET_ADDRESS: opts.advertiseAddress,
    PORT: String(w.version.port),
  };
  for (const u of w.service.upstreams) env[u.env] = upstreamValue(u, opts);
  if (w.service.upstreams.some((u) => u.mode === 'xds')) env.GRPC_XDS_BOOTSTRAP = XDS_BOOTSTRAP_IN_CONTAINER;
  return env;
}

function upstreamValue(u: Upstream, opts: ComposeOptions): string {
  switch (u.mode) {
    case 'proxy': return `127.0.0.1:${u.localPort}`;
    case 'direct': return u.address!;
    // gRPC's etcd resolver takes the key prefix from the URL path after "etcd:///", so the
    // prefix's own leading "/" stays: "/meshlet" gives etcd:////meshlet/naming/<service>.
    case 'naming': return `etcd:///${opts.prefix}/naming/${u.service}`;
    case 'xds': return `xds:///${u.service}`;
  }
}

function sidecarService(w: Workload, opts: ComposeOptions, hostFiles: readonly string[]): Record<string, unknown> {
  return {
    image: w.service.sidecar.image ?? opts.sidecarImage,
    // Hot restart is off: each sidecar is its own container, and it avoids shared-memory clashes between sidecars on one host.
    command: ['envoy', '-c', ENVOY_CONFIG_IN_CONTAINER, '--disable-hot-restart'],
    network_mode: 'host',
    labels: labels(w, opts, 'sidecar'),
    volumes: [`${opts.paths.envoyDir}/${w.name}.yaml:${ENVOY_CONFIG_IN_CONTAINER}:ro`, ...hostFiles.map((f) => `${f}:${UPSTREAM_TLS_ROOT}${f}:ro`)],
  };
}

function sortKeys(obj: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.keys(obj).sort().map((k) => [k, obj[k]!]));
}
