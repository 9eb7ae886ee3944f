// Envoy clusters (EDS, one per subset or per whole service) and their endpoint assignments.
import { isIP } from 'node:net';
import type { Desired, Instance, Protocol, Service, TrafficPolicy } from '../model/model.js';
import { policyOf, subsetsOf } from './subsets.js';
import { envoyDuration } from '../documents/duration.js';
import type { Json } from './envoy-types.js';
import { ADS_SOURCE, TYPE, socketAddress } from './envoy-types.js';

export interface ClusterTarget {
  name: string;
  service: Service;
  /** The version the cluster selects; undefined = every version. */
  version?: string;
  policy?: TrafficPolicy;
}

/** Resolves `<host>` or `<host>|<subset>` against the desired state. */
export function resolveCluster(name: string, desired: Desired): ClusterTarget | undefined {
  const [host, subset] = name.split('|') as [string, string | undefined];
  const service = desired.services.find((s) => s.name === host);
  if (!service) return undefined;
  if (subset === undefined) return { name, service, policy: policyOf(service, desired) };
  const sub = subsetsOf(service, desired).find((s) => s.name === subset);
  return sub ? { name, service, version: sub.version, policy: sub.trafficPolicy } : undefined;
}

export interface ClusterFlavour {
  /** gRPC's xDS client supports only round robin and no HTTP protocol options. */
  proxyless: boolean;
}

const MAX_UINT32 = 4294967295;
const UNLIMITED = { max_connections: MAX_UINT32, max_pending_requests: MAX_UINT32, max_requests: MAX_UINT32, max_retries: MAX_UINT32 };

export function buildCluster(t: ClusterTarget, flavour: ClusterFlavour): Json {
  const p = t.policy ?? {};
  const cp = p.connectionPool ?? {};
  const c: Json = {
    name: t.name,
    type: 'EDS',
    eds_cluster_config: { eds_config: ADS_SOURCE, service_name: t.name },
    connect_timeout: envoyDuration(cp.connectTimeoutMs ?? 1000),
    lb_policy: flavour.proxyless ? 'ROUND_ROBIN' : (p.loadBalancer ?? 'ROUND_ROBIN'),
  };
  // Istio's defaults for a sidecar: no limit unless the DestinationRule sets one. Envoy's own defaults
  // (1024 connections/pending/requests, 3 concurrent retries) would fail most retries under load (seen:
  // 452 of 1,000 requests answered 503 with upstream_rq_retry_overflow at 16 concurrent).
  const thresholds: Json = flavour.proxyless ? {} : { ...UNLIMITED };
  if (cp.maxConnections !== undefined) thresholds.max_connections = cp.maxConnections;
  if (cp.http1MaxPendingRequests !== undefined) thresholds.max_pending_requests = cp.http1MaxPendingRequests;
  if (cp.http2MaxRequests !== undefined) thresholds.max_requests = cp.http2MaxRequests;
  if (cp.maxRetries !== undefined) thresholds.max_retries = cp.maxRetries;
  if (Object.keys(thresholds).length > 0) c.circuit_breakers = { thresholds: [thresholds] };
  const od = p.outlierDetection;
  if (od) {
    const o: Json = {};
    if (od.consecutive5xxErrors !== undefined) {
      o.consecutive_5xx = od.consecutive5xxErrors;
      if (od.consecutive5xxErrors === 0) o.enforcing_consecutive_5xx = 0;
    }
    if (od.consecutiveGatewayErrors !== undefined) {
      o.consecutive_gateway_failure = od.consecutiveGatewayErrors;
      o.enforcing_consecutive_gateway_failure = 100;
    }
    if (od.intervalMs !== undefined) o.interval = envoyDuration(od.intervalMs);
    if (od.baseEjectionTimeMs !== undefined) o.base_ejection_time = envoyDuration(od.baseEjectionTimeMs);
    if (od.maxEjectionPercent !== undefined) o.max_ejection_percent = od.maxEjectionPercent;
    c.outlier_detection = o;
    // Istio's minHealthPercent defaults to 0: ejected hosts stay out however few are left. Envoy's own
    // panic threshold (50%) would send traffic to every host, ejected or not, once half are ejected.
    if (!flavour.proxyless) c.common_lb_config = { healthy_panic_threshold: { value: od.minHealthPercent ?? 0 } };
  }
  if (!flavour.proxyless) {
    const options = httpProtocolOptions(t.service.protocol, p);
    if (options) c.typed_extension_protocol_options = { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': options };
  }
  return c;
}

function httpProtocolOptions(protocol: Protocol, p: TrafficPolicy): Json | undefined {
  if (protocol === 'tcp') return undefined;
  const cp = p.connectionPool ?? {};
  const common: Json = {};
  if (cp.idleTimeoutMs !== undefined) common.idle_timeout = envoyDuration(cp.idleTimeoutMs);
  if (cp.maxRequestsPerConnection !== undefined) common.max_requests_per_connection = cp.maxRequestsPerConnection;
  const h2 = protocol === 'http2' || protocol === 'grpc';
  if (!h2 && Object.keys(common).length === 0) return undefined;
  return {
    '@type': TYPE.httpOptions,
    ...(Object.keys(common).length > 0 ? { common_http_protocol_options: common } : {}),
    explicit_http_config: h2 ? { http2_protocol_options: {} } : { http_protocol_options: {} },
  };
}

// A node's render builds endpoints for many clusters from one list of every node's instances: group it once.
const byServiceCache = new WeakMap<Instance[], Map<string, Instance[]>>();

function instancesOf(instances: Instance[], service: string): Instance[] {
  let index = byServiceCache.get(instances);
  if (!index) {
    index = new Map();
    for (const i of instances) {
      const list = index.get(i.service);
      if (list) list.push(i);
      else index.set(i.service, [i]);
    }
    byServiceCache.set(instances, index);
  }
  return index.get(service) ?? [];
}

export interface EndpointWarning {
  instance: Instance;
  message: string;
}

/** The healthy instances a cluster selects, one locality per node (gRPC skips a locality without a weight). */
export function buildEndpoints(t: ClusterTarget, instances: Instance[], warnings: EndpointWarning[]): Json {
  const byNode = new Map<string, Instance[]>();
  for (const i of instancesOf(instances, t.service.name)) {
    if (t.version !== undefined && i.version !== t.version) continue;
    if (isIP(i.address) === 0) {
      warnings.push({ instance: i, message: `address ${JSON.stringify(i.address)} is not an IP address; endpoint left out` });
      continue;
    }
    const list = byNode.get(i.node) ?? [];
    list.push(i);
    byNode.set(i.node, list);
  }
  const endpoints = [...byNode.keys()].sort().map((node) => ({
    locality: { region: 'meshlet', zone: node },
    load_balancing_weight: 1,
    lb_endpoints: byNode
      .get(node)!
      .sort((a, b) => (a.address === b.address ? a.port - b.port : a.address < b.address ? -1 : 1))
      .map((i) => ({ endpoint: { address: socketAddress(i.address, i.port) }, health_status: 'HEALTHY' })),
  }));
  return { cluster_name: t.name, endpoints };
}
