// Validates one meshlet Service document field by field and returns the model.
import type { IssueSink } from '../model/issues.js';
import type { HealthCheck, HealthTiming, Service, Upstream, Version, Protocol, UpstreamMode } from '../model/model.js';
import { ENV_NAME, PROTOCOLS, SERVICE_NAME, UPSTREAM_MODES, VERSION_NAME } from '../model/model.js';
import type { Obj } from './reader.js';
import { at, describe, readDuration, readMapping, readInt, readNumber, readObject, readString, readStringList, readList } from './reader.js';
import type { Draft } from './draft.js';
import { UNREAD } from './draft.js';

const DNS_LABEL = { pattern: SERVICE_NAME, expected: 'a DNS label (lower-case letters, digits and "-", starting with a letter, at most 63 characters)', maxLength: 63 };
const VERSION_KEY = { pattern: VERSION_NAME, expected: 'a version key (lower-case letters, digits, "." and "-", at most 32 characters)' };
const NODE = { pattern: /^(\*|[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?)$/, expected: 'a node name (lower-case letters, digits, "." and "-") or "*"' };
const IMAGE = { pattern: /^[A-Za-z0-9][A-Za-z0-9._\-/:@]*$/, expected: 'an image reference such as registry.local/app:1.0', maxLength: 255 };
const MEMORY = /^\d+(\.\d+)?[bkmg]?$/;
const VOLUME = /^(\/[^:\s]*):(\/[^:\s]*)(:(ro|rw))?$/;
const HOST_PORT = /^([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\]):(\d{1,5})$/;

/** Variables the agent injects; an app's own env may not set them. */
export const RESERVED_ENV = ['MESHLET_SERVICE', 'MESHLET_VERSION', 'MESHLET_NODE', 'MESHLET_ADDRESS', 'PORT', 'GRPC_XDS_BOOTSTRAP'];

export const HEALTH_DEFAULTS: HealthTiming = { intervalMs: 5000, timeoutMs: 2000, retries: 3, startPeriodMs: 0 };

export function defaultUpstreamEnv(service: string): string {
  return `${service.toUpperCase().replace(/-/g, '_')}_ADDR`;
}

/** The Service as far as it could be read; the caller accepts it only if no issue was added. */
export function validateService(sink: IssueSink, body: Obj, name: string | undefined): Draft<Service> | undefined {
  const spec = readObject(sink, body.spec, 'spec', ['protocol', 'port', 'versions', 'upstreams', 'sidecar']);
  if (!spec) return undefined;
  const protocol = (spec.protocol === undefined ? 'http' : readString(sink, spec.protocol, 'spec.protocol', { oneOf: PROTOCOLS })) as Protocol | undefined;
  const port = readInt(sink, spec.port, 'spec.port', 1, 65535, 'a port (an integer)');
  const versions = readVersions(sink, spec.versions, port);
  const upstreams = spec.upstreams === undefined ? { list: [], ok: true } : readUpstreams(sink, spec.upstreams);
  let sidecar: Service['sidecar'] = {};
  if (spec.sidecar !== undefined) {
    const s = readObject(sink, spec.sidecar, 'spec.sidecar', ['image']);
    const image = s?.image === undefined ? undefined : readString(sink, s.image, 'spec.sidecar.image', IMAGE);
    sidecar = image ? { image } : {};
  }
  if (versions.ok && upstreams.ok) checkEnvCollisions(sink, versions.list, upstreams.list);
  const gaps: Draft['gaps'] = new Set();
  if (name === undefined) gaps.add('name');
  if (!protocol) gaps.add('protocol');
  if (port === undefined) gaps.add('port');
  if (!versions.named) gaps.add('versions');
  return {
    doc: { kind: 'Service', name: name ?? UNREAD, namespace: sink.namespace, protocol: protocol ?? 'http', port: port ?? 0, versions: versions.list, upstreams: upstreams.list, sidecar, ref: sink.doc },
    gaps,
  };
}

/** `ok`: every version read without a problem; `named`: every version's name is known (a refused one may still lack parts). */
function readVersions(sink: IssueSink, value: unknown, servicePort: number | undefined): { list: Version[]; ok: boolean; named: boolean } {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || Object.keys(value).length === 0) {
    sink.add('spec.versions', `expected a mapping of one or more versions (e.g. v1: {image: …}), got ${describe(value)}`);
    return { list: [], ok: false, named: false };
  }
  const list: Version[] = [];
  let ok = true;
  let named = true;
  for (const key of Object.keys(value).sort()) {
    const path = at('spec.versions', key);
    if (readString(sink, key, path, VERSION_KEY) === undefined) { ok = named = false; continue; }
    const v = readVersion(sink, (value as Obj)[key], path, key, servicePort);
    list.push(v.version);
    ok &&= v.ok;
  }
  return { list, ok, named };
}

/** A version with a problem keeps its name, and its port and nodes when both were read: what the set checks use. */
function readVersion(sink: IssueSink, value: unknown, path: string, name: string, servicePort: number | undefined): { version: Version; ok: boolean } {
  const before = sink.out.length;
  const v = readObject(sink, value, path, ['image', 'command', 'env', 'port', 'nodes', 'health', 'resources', 'volumes']);
  if (!v) return { version: { name, image: UNREAD, env: {}, port: 0, nodes: [], volumes: [] }, ok: false };
  const image = readString(sink, v.image, at(path, 'image'), IMAGE);
  const command = v.command === undefined ? undefined : readStringList(sink, v.command, at(path, 'command'), {}, 1);
  const env = v.env === undefined ? {} : readEnv(sink, v.env, at(path, 'env'));
  const port = v.port === undefined ? servicePort : readInt(sink, v.port, at(path, 'port'), 1, 65535, 'a port (an integer)');
  const nodes = readStringList(sink, v.nodes, at(path, 'nodes'), NODE, 1);
  if (nodes && new Set(nodes).size !== nodes.length) sink.add(at(path, 'nodes'), 'expected each node once, got a duplicate');
  const health = v.health === undefined ? undefined : readHealth(sink, v.health, at(path, 'health'));
  const resources = v.resources === undefined ? undefined : readResources(sink, v.resources, at(path, 'resources'));
  const volumes = v.volumes === undefined ? [] : readVolumes(sink, v.volumes, at(path, 'volumes'));
  const ok = sink.out.length === before && image !== undefined && port !== undefined && !!nodes && !!env && !!volumes;
  const version: Version = {
    name,
    image: image ?? UNREAD,
    ...(command ? { command } : {}),
    env: env ?? {},
    port: port ?? 0,
    // Without both its port and its nodes a version claims no port anywhere: a clash is never guessed.
    nodes: port !== undefined && nodes ? [...nodes].sort() : [],
    ...(health ? { health } : {}),
    ...(resources ? { resources } : {}),
    volumes: volumes ?? [],
  };
  return { version, ok };
}

function readEnv(sink: IssueSink, value: unknown, path: string): Record<string, string> | undefined {
  const obj = readMapping(sink, value, path);
  if (!obj) return undefined;
  const env: Record<string, string> = {};
  for (const key of Object.keys(obj).sort()) {
    const p = at(path, key);
    if (!ENV_NAME.test(key)) { sink.add(p, `expected a variable name (letters, digits and "_", not starting with a digit), got ${describe(key)}`); continue; }
    if (RESERVED_ENV.includes(key) || key.startsWith('MESHLET_')) { sink.add(p, `is set by the agent and cannot be overridden`); continue; }
    const val = obj[key];
    if (typeof val !== 'string') { sink.add(p, `expected a string value (quote numbers and booleans), got ${describe(val)}`); continue; }
    env[key] = val;
  }
  return env;
}

function readHealth(sink: IssueSink, value: unknown, path: string): HealthCheck | undefined {
  const h = readObject(sink, value, path, ['http', 'tcp', 'grpc', 'exec', 'interval', 'timeout', 'retries', 'startPeriod']);
  if (!h) return undefined;
  const kinds = ['http', 'tcp', 'grpc', 'exec'].filter((k) => h[k] !== undefined);
  if (kinds.length !== 1) {
    sink.add(path, `expected exactly one of http | tcp | grpc | exec, got ${kinds.length === 0 ? 'none' : kinds.join(' and ')}`);
    return undefined;
  }
  const timing: HealthTiming = {
    intervalMs: h.interval === undefined ? HEALTH_DEFAULTS.intervalMs : readDuration(sink, h.interval, at(path, 'interval'), 100, 3_600_000) ?? 0,
    timeoutMs: h.timeout === undefined ? HEALTH_DEFAULTS.timeoutMs : readDuration(sink, h.timeout, at(path, 'timeout'), 10, 3_600_000) ?? 0,
    retries: h.retries === undefined ? HEALTH_DEFAULTS.retries : readInt(sink, h.retries, at(path, 'retries'), 1, 100) ?? 0,
    startPeriodMs: h.startPeriod === undefined ? HEALTH_DEFAULTS.startPeriodMs : readDuration(sink, h.startPeriod, at(path, 'startPeriod'), 0, 3_600_000) ?? 0,
  };
  switch (kinds[0]) {
    case 'http': {
      const p = readString(sink, h.http, at(path, 'http'), { pattern: /^\/[\x21-\x7e]*$/, expected: 'a URL path starting with "/"' });
      return p === undefined ? undefined : { kind: 'http', path: p, timing };
    }
    case 'tcp':
      if (h.tcp !== true) { sink.add(at(path, 'tcp'), `expected true, got ${describe(h.tcp)}`); return undefined; }
      return { kind: 'tcp', timing };
    case 'grpc': {
      if (h.grpc === true) return { kind: 'grpc', service: '', timing };
      const s = readString(sink, h.grpc, at(path, 'grpc'), { expected: 'true or the grpc.health.v1 service name' });
      return s === undefined ? undefined : { kind: 'grpc', service: s, timing };
    }
    default: {
      if (typeof h.exec === 'string' && h.exec.trim() !== '') return { kind: 'exec', command: h.exec, timing };
      const cmd = readStringList(sink, h.exec, at(path, 'exec'), {}, 1);
      return cmd ? { kind: 'exec', command: cmd, timing } : undefined;
    }
  }
}

function readResources(sink: IssueSink, value: unknown, path: string): Version['resources'] {
  const r = readObject(sink, value, path, ['cpus', 'memory']);
  if (!r) return undefined;
  const out: NonNullable<Version['resources']> = {};
  if (r.cpus !== undefined) {
    const cpus = readNumber(sink, r.cpus, at(path, 'cpus'), 0.01, 1024);
    if (cpus !== undefined) out.cpus = cpus;
  }
  if (r.memory !== undefined) {
    const mem = typeof r.memory === 'number' && Number.isInteger(r.memory) && r.memory > 0 ? String(r.memory) : r.memory;
    const m = readString(sink, mem, at(path, 'memory'), { pattern: MEMORY, expected: 'a size such as 256m, 1g or a number of bytes' });
    if (m !== undefined) out.memory = m;
  }
  return out;
}

function readVolumes(sink: IssueSink, value: unknown, path: string): string[] | undefined {
  const list = readStringList(sink, value, path, { pattern: VOLUME, expected: 'HOST_PATH:CONTAINER_PATH[:ro|rw] with absolute paths' });
  if (!list) return undefined;
  list.forEach((vol, i) => {
    if (vol.split(':').some((part) => part.split('/').includes('..'))) sink.add(at(path, i), `expected paths without ".." segments, got ${describe(vol)}`);
  });
  return list;
}

/**
 * In the order written, so that set-level messages name the right index (the sidecar sorts its listeners).
 * An upstream with a problem is kept when its service and mode were read: its target is still checked.
 */
function readUpstreams(sink: IssueSink, value: unknown): { list: Upstream[]; ok: boolean } {
  const list = readList(sink, value, 'spec.upstreams');
  if (!list) return { list: [], ok: false };
  const out: Upstream[] = [];
  let complete = 0;
  const seen = new Set<string>();
  list.forEach((item, i) => {
    const path = at('spec.upstreams', i);
    // An upstream that cannot be read keeps its place (UNREAD, claiming no port), so that later indexes stay right.
    const unread: Upstream = { service: UNREAD, mode: 'proxy', env: UNREAD };
    const u = readObject(sink, item, path, ['service', 'mode', 'localPort', 'address', 'env']);
    if (!u) return void out.push(unread);
    const service = readString(sink, u.service, at(path, 'service'), DNS_LABEL);
    const mode = (u.mode === undefined ? 'proxy' : readString(sink, u.mode, at(path, 'mode'), { oneOf: UPSTREAM_MODES })) as UpstreamMode | undefined;
    const env = u.env === undefined ? (service ? defaultUpstreamEnv(service) : undefined) : readString(sink, u.env, at(path, 'env'), { pattern: ENV_NAME, expected: 'a variable name (letters, digits and "_")' });
    let localPort: number | undefined;
    let address: string | undefined;
    if (mode === 'proxy') {
      localPort = readInt(sink, u.localPort, at(path, 'localPort'), 1, 65535, 'a port (an integer) for the sidecar to listen on');
    } else if (u.localPort !== undefined) sink.add(at(path, 'localPort'), `is only used with mode proxy (mode is ${mode})`);
    if (mode === 'direct') {
      address = readString(sink, u.address, at(path, 'address'), { pattern: HOST_PORT, expected: 'HOST:PORT' });
      const port = address === undefined ? undefined : Number(HOST_PORT.exec(address)![2]);
      if (port !== undefined && (port < 1 || port > 65535)) { sink.add(at(path, 'address'), `expected a port from 1 to 65535, got ${port}`); address = undefined; }
    } else if (u.address !== undefined) sink.add(at(path, 'address'), `is only used with mode direct (mode is ${mode})`);
    if (env !== undefined && (RESERVED_ENV.includes(env) || env.startsWith('MESHLET_'))) sink.add(at(path, 'env'), `${env} is set by the agent; choose another name`);
    if (service && seen.has(service)) sink.add(at(path, 'service'), `${service} is listed twice`);
    if (service) seen.add(service);
    if (!service || !mode) return void out.push(unread);
    if (env && (mode !== 'proxy' || localPort !== undefined) && (mode !== 'direct' || address)) complete++;
    out.push({ service, mode, env: env ?? UNREAD, ...(localPort !== undefined ? { localPort } : {}), ...(address ? { address } : {}) });
  });
  return { list: out, ok: complete === list.length };
}

function checkEnvCollisions(sink: IssueSink, versions: Version[], upstreams: Upstream[]): void {
  const byEnv = new Map<string, string>();
  for (const u of upstreams) {
    const other = byEnv.get(u.env);
    if (other) sink.add('spec.upstreams', `upstreams ${other} and ${u.service} both inject ${u.env}`);
    byEnv.set(u.env, u.service);
  }
  for (const v of versions) {
    for (const key of Object.keys(v.env)) {
      if (byEnv.has(key)) sink.add(at(at('spec.versions', v.name), 'env') + `.${key}`, `is injected for upstream ${byEnv.get(key)}; choose another name`);
    }
  }
}
