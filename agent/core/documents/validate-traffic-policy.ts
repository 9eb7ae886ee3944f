// Validates an Istio traffic policy (rule-wide, per subset, per port): load balancer, connection pool,
// outlier detection and upstream TLS, each section whole as Istio overrides it.
import type { IssueSink } from '../model/issues.js';
import type { ConnectionPool, OutlierDetection, PolicySections, TrafficPolicy } from '../model/model.js';
import { at, readDuration, readInt, readList, readObject, readString } from './reader.js';
import { readBool } from './read-bool.js';
import { readLoadBalancer } from './validate-load-balancer.js';
import { readUpstreamTls } from './validate-upstream-tls.js';

const NOT_SUPPORTED = (what: string, why = '') => `${what} is not supported${why ? ` (${why})` : ''}`;
const U32 = 4294967295;
/** Istio's int32 fields. */
const I32 = 2147483647;
const SECTIONS = ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls'] as const;
const UNSUPPORTED = { tunnel: NOT_SUPPORTED('tunnel'), proxyProtocol: NOT_SUPPORTED('proxyProtocol') };

export function readTrafficPolicy(sink: IssueSink, value: unknown, path: string): TrafficPolicy | undefined {
  const t = readObject(sink, value, path, [...SECTIONS, 'portLevelSettings'], UNSUPPORTED);
  if (!t) return undefined;
  const out: TrafficPolicy = readSections(sink, t, path);
  if (t.portLevelSettings !== undefined) {
    const seen = new Set<number>();
    out.portLevelSettings = [];
    (readList(sink, t.portLevelSettings, at(path, 'portLevelSettings')) ?? []).forEach((item, i) => {
      const p = at(at(path, 'portLevelSettings'), i);
      const s = readObject(sink, item, p, ['port', ...SECTIONS], UNSUPPORTED);
      if (!s) return;
      const port = readObject(sink, s.port ?? null, at(p, 'port'), ['number']);
      const number = port ? readInt(sink, port.number, `${at(p, 'port')}.number`, 1, 65535, 'a port') : undefined;
      if (number !== undefined && seen.has(number)) sink.add(`${at(p, 'port')}.number`, `port ${number} has settings twice`);
      const sections = readSections(sink, s, p);
      if (number !== undefined) {
        seen.add(number);
        out.portLevelSettings!.push({ port: number, policy: sections, index: i });
      }
    });
  }
  return out;
}

function readSections(sink: IssueSink, t: Record<string, unknown>, path: string): PolicySections {
  const out: PolicySections = {};
  if (t.loadBalancer !== undefined) out.loadBalancer = readLoadBalancer(sink, t.loadBalancer, at(path, 'loadBalancer'));
  if (t.connectionPool !== undefined) out.connectionPool = readConnectionPool(sink, t.connectionPool, at(path, 'connectionPool'));
  if (t.outlierDetection !== undefined) out.outlierDetection = readOutlier(sink, t.outlierDetection, at(path, 'outlierDetection'));
  if (t.tls !== undefined) out.tls = readUpstreamTls(sink, t.tls, at(path, 'tls'));
  for (const k of SECTIONS) if (out[k] === undefined) delete out[k];
  return out;
}

function readConnectionPool(sink: IssueSink, value: unknown, path: string): ConnectionPool | undefined {
  const c = readObject(sink, value, path, ['tcp', 'http']);
  if (!c) return undefined;
  const out: ConnectionPool = {};
  const set = <K extends keyof ConnectionPool>(k: K, v: ConnectionPool[K] | undefined) => {
    if (v !== undefined) out[k] = v;
  };
  if (c.tcp !== undefined) {
    const p = at(path, 'tcp');
    const tcp = readObject(sink, c.tcp, p, ['maxConnections', 'connectTimeout', 'tcpKeepalive', 'maxConnectionDuration', 'idleTimeout']);
    if (tcp?.maxConnections !== undefined) set('maxConnections', readInt(sink, tcp.maxConnections, at(p, 'maxConnections'), 1, U32));
    if (tcp?.connectTimeout !== undefined) set('connectTimeoutMs', readDuration(sink, tcp.connectTimeout, at(p, 'connectTimeout'), 1));
    if (tcp?.maxConnectionDuration !== undefined) set('maxConnectionDurationMs', readDuration(sink, tcp.maxConnectionDuration, at(p, 'maxConnectionDuration'), 1));
    if (tcp?.idleTimeout !== undefined) set('tcpIdleTimeoutMs', readDuration(sink, tcp.idleTimeout, at(p, 'idleTimeout'), 0));
    if (tcp?.tcpKeepalive !== undefined) set('tcpKeepalive', readKeepalive(sink, tcp.tcpKeepalive, at(p, 'tcpKeepalive')));
  }
  if (c.http !== undefined) {
    const p = at(path, 'http');
    const http = readObject(sink, c.http, p, ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection', 'maxRetries', 'idleTimeout', 'h2UpgradePolicy', 'useClientProtocol', 'maxConcurrentStreams']);
    if (!http) return out;
    if (http.http1MaxPendingRequests !== undefined) set('http1MaxPendingRequests', readInt(sink, http.http1MaxPendingRequests, at(p, 'http1MaxPendingRequests'), 1, U32));
    if (http.http2MaxRequests !== undefined) set('http2MaxRequests', readInt(sink, http.http2MaxRequests, at(p, 'http2MaxRequests'), 1, U32));
    if (http.maxRequestsPerConnection !== undefined) set('maxRequestsPerConnection', readInt(sink, http.maxRequestsPerConnection, at(p, 'maxRequestsPerConnection'), 0, U32));
    if (http.maxRetries !== undefined) set('maxRetries', readInt(sink, http.maxRetries, at(p, 'maxRetries'), 0, U32));
    if (http.idleTimeout !== undefined) set('idleTimeoutMs', readDuration(sink, http.idleTimeout, at(p, 'idleTimeout'), 1));
    if (http.h2UpgradePolicy !== undefined) set('h2UpgradePolicy', readString(sink, http.h2UpgradePolicy, at(p, 'h2UpgradePolicy'), { oneOf: ['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE'] }) as ConnectionPool['h2UpgradePolicy']);
    if (http.useClientProtocol !== undefined) set('useClientProtocol', readBool(sink, http.useClientProtocol, at(p, 'useClientProtocol')));
    if (http.maxConcurrentStreams !== undefined) set('maxConcurrentStreams', readInt(sink, http.maxConcurrentStreams, at(p, 'maxConcurrentStreams'), 1, I32));
    if (http.useClientProtocol === true && http.h2UpgradePolicy === 'UPGRADE') sink.add(at(p, 'h2UpgradePolicy'), 'UPGRADE cannot be combined with useClientProtocol: true (the caller\'s protocol decides)');
  }
  return out;
}

/** Envoy takes keepalive time and interval in whole seconds (Istio truncates the duration the same way). */
function readKeepalive(sink: IssueSink, value: unknown, path: string): ConnectionPool['tcpKeepalive'] {
  const k = readObject(sink, value, path, ['probes', 'time', 'interval']);
  if (!k) return undefined;
  const out: NonNullable<ConnectionPool['tcpKeepalive']> = {};
  if (k.probes !== undefined) {
    const probes = readInt(sink, k.probes, at(path, 'probes'), 1, U32);
    if (probes !== undefined) out.probes = probes;
  }
  for (const f of ['time', 'interval'] as const) {
    if (k[f] === undefined) continue;
    const ms = readDuration(sink, k[f], at(path, f), 1000, U32 * 1000);
    if (ms !== undefined) out[f === 'time' ? 'timeS' : 'intervalS'] = Math.floor(ms / 1000);
  }
  return out;
}

function readOutlier(sink: IssueSink, value: unknown, path: string): OutlierDetection | undefined {
  const o = readObject(sink, value, path, [
    'consecutive5xxErrors', 'consecutiveGatewayErrors', 'consecutiveErrors', 'consecutiveLocalOriginFailures', 'splitExternalLocalOriginErrors',
    'interval', 'baseEjectionTime', 'maxEjectionPercent', 'minHealthPercent',
  ]);
  if (!o) return undefined;
  const out: OutlierDetection = {};
  const count = (k: 'consecutive5xxErrors' | 'consecutiveGatewayErrors' | 'consecutiveErrors' | 'consecutiveLocalOriginFailures') => {
    if (o[k] === undefined) return;
    const n = readInt(sink, o[k], at(path, k), 0, U32);
    if (n !== undefined) out[k] = n;
  };
  count('consecutive5xxErrors');
  count('consecutiveGatewayErrors');
  count('consecutiveErrors');
  count('consecutiveLocalOriginFailures');
  // Istio's old field counted gateway errors only; with the new ones beside it the meaning would be unclear.
  if (o.consecutiveErrors !== undefined && (o.consecutive5xxErrors !== undefined || o.consecutiveGatewayErrors !== undefined)) {
    sink.add(at(path, 'consecutiveErrors'), 'is deprecated and cannot be combined with consecutive5xxErrors or consecutiveGatewayErrors; use consecutiveGatewayErrors');
  }
  if (o.splitExternalLocalOriginErrors !== undefined) {
    const on = readBool(sink, o.splitExternalLocalOriginErrors, at(path, 'splitExternalLocalOriginErrors'));
    if (on !== undefined) out.splitExternalLocalOriginErrors = on;
  }
  if (o.consecutiveLocalOriginFailures !== undefined && o.splitExternalLocalOriginErrors !== true) {
    sink.add(at(path, 'consecutiveLocalOriginFailures'), 'needs splitExternalLocalOriginErrors: true (Envoy counts local-origin failures apart only then)');
  }
  if (o.interval !== undefined) set(out, 'intervalMs', readDuration(sink, o.interval, at(path, 'interval'), 1));
  if (o.baseEjectionTime !== undefined) set(out, 'baseEjectionTimeMs', readDuration(sink, o.baseEjectionTime, at(path, 'baseEjectionTime'), 1));
  if (o.maxEjectionPercent !== undefined) set(out, 'maxEjectionPercent', readInt(sink, o.maxEjectionPercent, at(path, 'maxEjectionPercent'), 0, 100, 'a percentage'));
  if (o.minHealthPercent !== undefined) set(out, 'minHealthPercent', readInt(sink, o.minHealthPercent, at(path, 'minHealthPercent'), 0, 100, 'a percentage'));
  return out;
}

function set<T, K extends keyof T>(obj: T, k: K, v: T[K] | undefined): void {
  if (v !== undefined) obj[k] = v;
}
