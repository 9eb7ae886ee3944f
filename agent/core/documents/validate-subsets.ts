// Validates an Istio DestinationRule into subsets (by the `version` label) and traffic policies.
import type { IssueSink } from '../model/issues.js';
import { quote } from '../model/issues.js';
import type { DestinationRule, LbPolicy, Subset, TrafficPolicy } from '../model/model.js';
import { SUBSET_NAME, VERSION_NAME } from '../model/model.js';
import { readHost } from './host-names.js';
import type { Obj } from './reader.js';
import { at, describe, readDuration, readInt, readList, readMapping, readObject, readString } from './reader.js';
import { readExportTo } from './validate-route.js';
import type { Draft } from './draft.js';
import { UNREAD } from './draft.js';

const NOT_SUPPORTED = (what: string, why = '') => `${what} is not supported${why ? ` (${why})` : ''}`;

/** The DestinationRule as far as it could be read; the caller accepts it only if no issue was added. */
export function validateDestinationRule(sink: IssueSink, body: Obj, name: string | undefined): Draft<DestinationRule> | undefined {
  const spec = readObject(sink, body.spec, 'spec', ['host', 'trafficPolicy', 'subsets', 'exportTo'], {
    workloadSelector: NOT_SUPPORTED('workloadSelector'),
  });
  if (!spec) return undefined;
  const host = readHost(sink, spec.host, 'spec.host');
  const trafficPolicy = spec.trafficPolicy === undefined ? undefined : readTrafficPolicy(sink, spec.trafficPolicy, 'spec.trafficPolicy');
  if (spec.exportTo !== undefined) readExportTo(sink, spec.exportTo, 'spec.exportTo');
  const gaps: Draft['gaps'] = new Set(name === undefined ? ['name'] : []);
  const subsets: Subset[] = [];
  if (spec.subsets !== undefined) {
    const seen = new Set<string>();
    const list = readList(sink, spec.subsets, 'spec.subsets');
    if (!list) gaps.add('subsets');
    // A subset that cannot be read keeps its place (its name or version UNREAD), so that later indexes stay right.
    (list ?? []).forEach((item, i) => {
      const s = readSubset(sink, item, at('spec.subsets', i));
      if (s.name === UNREAD) gaps.add('subsets');
      else if (seen.has(s.name)) sink.add(at(at('spec.subsets', i), 'name'), `subset ${s.name} is defined twice`);
      seen.add(s.name);
      subsets.push(s);
    });
  }
  return { doc: { kind: 'DestinationRule', name: name ?? UNREAD, namespace: sink.namespace, host: host ?? UNREAD, hostRefs: sink.hosts, ...(trafficPolicy ? { trafficPolicy } : {}), subsets, ref: sink.doc }, gaps };
}

function readSubset(sink: IssueSink, value: unknown, path: string): Subset {
  const s = readObject(sink, value, path, ['name', 'labels', 'trafficPolicy']);
  if (!s) return { name: UNREAD, version: UNREAD };
  const name = readString(sink, s.name, at(path, 'name'), { pattern: SUBSET_NAME, expected: 'a subset name (lower-case letters, digits, ".", "_" and "-")' });
  const labels = readMapping(sink, s.labels, at(path, 'labels'));
  let version: string | undefined;
  if (labels) {
    for (const key of Object.keys(labels)) {
      if (key !== 'version') sink.add(at(at(path, 'labels'), key), NOT_SUPPORTED(`selecting by the label ${quote(key)}`, 'meshlet subsets select a version by labels: {version: …}'));
    }
    if (labels.version === undefined) sink.add(at(path, 'labels'), 'expected labels: {version: <a version of the service>}');
    else version = readString(sink, labels.version, at(at(path, 'labels'), 'version'), { pattern: VERSION_NAME, expected: 'a version key' });
  }
  const trafficPolicy = s.trafficPolicy === undefined ? undefined : readTrafficPolicy(sink, s.trafficPolicy, at(path, 'trafficPolicy'));
  return { name: name ?? UNREAD, version: version ?? UNREAD, ...(trafficPolicy ? { trafficPolicy } : {}) };
}

const LB: Record<string, LbPolicy> = { ROUND_ROBIN: 'ROUND_ROBIN', UNSPECIFIED: 'ROUND_ROBIN', LEAST_REQUEST: 'LEAST_REQUEST', LEAST_CONN: 'LEAST_REQUEST', RANDOM: 'RANDOM' };

export function readTrafficPolicy(sink: IssueSink, value: unknown, path: string): TrafficPolicy | undefined {
  const t = readObject(sink, value, path, ['loadBalancer', 'connectionPool', 'outlierDetection', 'tls'], {
    portLevelSettings: NOT_SUPPORTED('portLevelSettings', 'a meshlet Service has one port'),
    tunnel: NOT_SUPPORTED('tunnel'),
    proxyProtocol: NOT_SUPPORTED('proxyProtocol'),
  });
  if (!t) return undefined;
  const out: TrafficPolicy = {};
  if (t.tls !== undefined) readTls(sink, t.tls, at(path, 'tls'));
  if (t.loadBalancer !== undefined) {
    const p = at(path, 'loadBalancer');
    const lb = readObject(sink, t.loadBalancer, p, ['simple'], {
      consistentHash: NOT_SUPPORTED('consistentHash'),
      localityLbSetting: NOT_SUPPORTED('localityLbSetting'),
      warmupDurationSecs: NOT_SUPPORTED('warmupDurationSecs'),
      warmup: NOT_SUPPORTED('warmup'),
    });
    if (lb?.simple !== undefined) {
      if (lb.simple === 'PASSTHROUGH') sink.add(at(p, 'simple'), NOT_SUPPORTED('PASSTHROUGH', 'meshlet always balances over registered instances'));
      else {
        const simple = readString(sink, lb.simple, at(p, 'simple'), { oneOf: Object.keys(LB) });
        if (simple) out.loadBalancer = LB[simple];
      }
    }
  }
  if (t.connectionPool !== undefined) out.connectionPool = readConnectionPool(sink, t.connectionPool, at(path, 'connectionPool'));
  if (t.outlierDetection !== undefined) out.outlierDetection = readOutlier(sink, t.outlierDetection, at(path, 'outlierDetection'));
  return out;
}

function readTls(sink: IssueSink, value: unknown, path: string): void {
  const tls = readObject(sink, value, path, ['mode']);
  if (!tls) return;
  if (tls.mode === 'DISABLE') return;
  if (typeof tls.mode === 'string') sink.add(at(path, 'mode'), `${/^[A-Z_]{1,40}$/.test(tls.mode) ? tls.mode : describe(tls.mode)} is not supported (meshlet sidecars speak plain text; only DISABLE is accepted)`);
  else sink.add(at(path, 'mode'), `expected DISABLE (the only TLS mode meshlet supports), got ${describe(tls.mode)}`);
}

function readConnectionPool(sink: IssueSink, value: unknown, path: string): TrafficPolicy['connectionPool'] {
  const c = readObject(sink, value, path, ['tcp', 'http']);
  if (!c) return undefined;
  const out: NonNullable<TrafficPolicy['connectionPool']> = {};
  const U32 = 4294967295;
  if (c.tcp !== undefined) {
    const p = at(path, 'tcp');
    const tcp = readObject(sink, c.tcp, p, ['maxConnections', 'connectTimeout'], {
      tcpKeepalive: NOT_SUPPORTED('tcpKeepalive'),
      maxConnectionDuration: NOT_SUPPORTED('maxConnectionDuration'),
      idleTimeout: NOT_SUPPORTED('tcp.idleTimeout', 'use http.idleTimeout'),
    });
    if (tcp?.maxConnections !== undefined) out.maxConnections = readInt(sink, tcp.maxConnections, at(p, 'maxConnections'), 1, U32);
    if (tcp?.connectTimeout !== undefined) out.connectTimeoutMs = readDuration(sink, tcp.connectTimeout, at(p, 'connectTimeout'), 1);
  }
  if (c.http !== undefined) {
    const p = at(path, 'http');
    const http = readObject(sink, c.http, p, ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection', 'maxRetries', 'idleTimeout', 'h2UpgradePolicy'], {
      useClientProtocol: NOT_SUPPORTED('useClientProtocol'),
      maxConcurrentStreams: NOT_SUPPORTED('maxConcurrentStreams'),
    });
    if (!http) return out;
    if (http.http1MaxPendingRequests !== undefined) out.http1MaxPendingRequests = readInt(sink, http.http1MaxPendingRequests, at(p, 'http1MaxPendingRequests'), 1, U32);
    if (http.http2MaxRequests !== undefined) out.http2MaxRequests = readInt(sink, http.http2MaxRequests, at(p, 'http2MaxRequests'), 1, U32);
    if (http.maxRequestsPerConnection !== undefined) out.maxRequestsPerConnection = readInt(sink, http.maxRequestsPerConnection, at(p, 'maxRequestsPerConnection'), 1, U32);
    if (http.maxRetries !== undefined) out.maxRetries = readInt(sink, http.maxRetries, at(p, 'maxRetries'), 0, U32);
    if (http.idleTimeout !== undefined) out.idleTimeoutMs = readDuration(sink, http.idleTimeout, at(p, 'idleTimeout'), 1);
    if (http.h2UpgradePolicy !== undefined && http.h2UpgradePolicy !== 'DEFAULT' && http.h2UpgradePolicy !== 'DO_NOT_UPGRADE') {
      sink.add(at(p, 'h2UpgradePolicy'), `${describe(http.h2UpgradePolicy)} is not supported; the service's protocol decides (DEFAULT or DO_NOT_UPGRADE accepted)`);
    }
  }
  return out;
}

function readOutlier(sink: IssueSink, value: unknown, path: string): TrafficPolicy['outlierDetection'] {
  const o = readObject(sink, value, path, ['consecutive5xxErrors', 'consecutiveGatewayErrors', 'interval', 'baseEjectionTime', 'maxEjectionPercent', 'minHealthPercent'], {
    consecutiveErrors: 'is deprecated in Istio and not supported; use consecutive5xxErrors',
    splitExternalLocalOriginErrors: NOT_SUPPORTED('splitExternalLocalOriginErrors'),
    consecutiveLocalOriginFailures: NOT_SUPPORTED('consecutiveLocalOriginFailures'),
  });
  if (!o) return undefined;
  const out: NonNullable<TrafficPolicy['outlierDetection']> = {};
  if (o.consecutive5xxErrors !== undefined) out.consecutive5xxErrors = readInt(sink, o.consecutive5xxErrors, at(path, 'consecutive5xxErrors'), 0, 4294967295);
  if (o.consecutiveGatewayErrors !== undefined) out.consecutiveGatewayErrors = readInt(sink, o.consecutiveGatewayErrors, at(path, 'consecutiveGatewayErrors'), 0, 4294967295);
  if (o.interval !== undefined) out.intervalMs = readDuration(sink, o.interval, at(path, 'interval'), 1);
  if (o.baseEjectionTime !== undefined) out.baseEjectionTimeMs = readDuration(sink, o.baseEjectionTime, at(path, 'baseEjectionTime'), 1);
  if (o.maxEjectionPercent !== undefined) out.maxEjectionPercent = readInt(sink, o.maxEjectionPercent, at(path, 'maxEjectionPercent'), 0, 100, 'a percentage');
  if (o.minHealthPercent !== undefined) out.minHealthPercent = readInt(sink, o.minHealthPercent, at(path, 'minHealthPercent'), 0, 100, 'a percentage');
  return out;
}
