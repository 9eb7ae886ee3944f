// A traffic policy's sections as Envoy Cluster fields: load balancing, circuit breakers, outlier detection,
// connection options and HTTP protocol options (Istio's translation, field by field).
import type { ConnectionPool, LoadBalancer, OutlierDetection, PolicySections, Protocol } from '../model/model.js';
import { envoyDuration } from '../documents/duration.js';
import type { Json } from './envoy-types.js';
import { TYPE } from './envoy-types.js';

const MAX_UINT32 = 4294967295;
const UNLIMITED = { max_connections: MAX_UINT32, max_pending_requests: MAX_UINT32, max_requests: MAX_UINT32, max_retries: MAX_UINT32 };
/** RuntimeDouble wants a runtime key; nothing sets it, so the default value is what applies. */
const AGGRESSION_KEY = 'meshlet.slow_start.aggression';

export interface PolicyFlavour {
  /** gRPC's xDS client: round robin or ring hash, and no HTTP protocol options. */
  proxyless: boolean;
}

/** lb_policy and its config (ring hash, maglev, or round robin / least request with slow start). */
export function loadBalancing(lb: LoadBalancer | undefined, flavour: PolicyFlavour): Json {
  const hash = lb?.consistentHash;
  // gRPC's xDS client (gRFC A42) has RING_HASH, no Maglev: a ring keeps the same keys on the same hosts too.
  if (flavour.proxyless) {
    if (!hash) return { lb_policy: 'ROUND_ROBIN' };
    return { lb_policy: 'RING_HASH', ...(hash.table.kind === 'ringHash' && hash.table.minimumRingSize !== undefined ? { ring_hash_lb_config: { minimum_ring_size: hash.table.minimumRingSize } } : {}) };
  }
  if (hash?.table.kind === 'maglev') return { lb_policy: 'MAGLEV', ...(hash.table.tableSize !== undefined ? { maglev_lb_config: { table_size: hash.table.tableSize } } : {}) };
  if (hash) return { lb_policy: 'RING_HASH', ...(hash.table.minimumRingSize !== undefined ? { ring_hash_lb_config: { minimum_ring_size: hash.table.minimumRingSize } } : {}) };
  const policy = lb?.simple ?? 'ROUND_ROBIN';
  const out: Json = { lb_policy: policy };
  const w = lb?.warmup;
  if (w && policy !== 'RANDOM') {
    const slow: Json = {
      slow_start_window: envoyDuration(w.durationMs),
      ...(w.aggression !== undefined ? { aggression: { default_value: w.aggression, runtime_key: AGGRESSION_KEY } } : {}),
      ...(w.minimumPercent !== undefined ? { min_weight_percent: { value: w.minimumPercent } } : {}),
    };
    out[policy === 'LEAST_REQUEST' ? 'least_request_lb_config' : 'round_robin_lb_config'] = { slow_start_config: slow };
  }
  return out;
}

export function circuitBreakers(cp: ConnectionPool, flavour: PolicyFlavour): Json | undefined {
  // Istio's defaults for a sidecar: no limit unless the DestinationRule sets one. Envoy's own defaults
  // (1024 connections/pending/requests, 3 concurrent retries) would fail most retries under load (seen:
  // 452 of 1,000 requests answered 503 with upstream_rq_retry_overflow at 16 concurrent).
  const t: Json = flavour.proxyless ? {} : { ...UNLIMITED };
  if (cp.maxConnections !== undefined) t.max_connections = cp.maxConnections;
  if (cp.http1MaxPendingRequests !== undefined) t.max_pending_requests = cp.http1MaxPendingRequests;
  if (cp.http2MaxRequests !== undefined) t.max_requests = cp.http2MaxRequests;
  if (cp.maxRetries !== undefined) t.max_retries = cp.maxRetries;
  return Object.keys(t).length > 0 ? { thresholds: [t] } : undefined;
}

/** Istio's outlier detection: success-rate ejection off, a count of 0 disables its kind of ejection. */
export function outlierDetection(od: OutlierDetection): Json {
  const o: Json = { enforcing_success_rate: 0 };
  if (od.consecutive5xxErrors !== undefined) {
    o.consecutive_5xx = od.consecutive5xxErrors;
    o.enforcing_consecutive_5xx = od.consecutive5xxErrors > 0 ? 100 : 0;
  }
  if (od.consecutiveGatewayErrors !== undefined) {
    o.consecutive_gateway_failure = od.consecutiveGatewayErrors;
    o.enforcing_consecutive_gateway_failure = od.consecutiveGatewayErrors > 0 ? 100 : 0;
  }
  // The deprecated consecutiveErrors, as Istio translated it: gateway errors (502, 503, 504) only.
  if (od.consecutiveErrors !== undefined && od.consecutiveErrors > 0) {
    o.consecutive_gateway_failure = od.consecutiveErrors;
    o.enforcing_consecutive_gateway_failure = 100;
    o.enforcing_consecutive_5xx = 0;
  }
  if (od.splitExternalLocalOriginErrors) {
    o.split_external_local_origin_errors = true;
    if (od.consecutiveLocalOriginFailures !== undefined && od.consecutiveLocalOriginFailures > 0) {
      o.consecutive_local_origin_failure = od.consecutiveLocalOriginFailures;
      o.enforcing_consecutive_local_origin_failure = 100;
    }
    o.enforcing_local_origin_success_rate = 0;
  }
  if (od.intervalMs !== undefined) o.interval = envoyDuration(od.intervalMs);
  if (od.baseEjectionTimeMs !== undefined) o.base_ejection_time = envoyDuration(od.baseEjectionTimeMs);
  if (od.maxEjectionPercent !== undefined) o.max_ejection_percent = od.maxEjectionPercent;
  return o;
}

/** TCP keepalive on the upstream connections (Envoy wants whole seconds). */
export function connectionOptions(cp: ConnectionPool): Json | undefined {
  const k = cp.tcpKeepalive;
  if (!k) return undefined;
  return {
    tcp_keepalive: {
      ...(k.probes !== undefined ? { keepalive_probes: k.probes } : {}),
      ...(k.timeS !== undefined ? { keepalive_time: k.timeS } : {}),
      ...(k.intervalS !== undefined ? { keepalive_interval: k.intervalS } : {}),
    },
  };
}

/**
 * HttpProtocolOptions for an HTTP service: idle timeout (http, else tcp's), max requests per connection,
 * max connection duration, and the protocol: the service's, HTTP/2 on UPGRADE, or the caller's with
 * useClientProtocol. maxConcurrentStreams applies where the upstream speaks HTTP/2.
 */
export function httpProtocolOptions(protocol: Protocol, p: PolicySections): Json | undefined {
  if (protocol === 'tcp') return undefined;
  const cp = p.connectionPool ?? {};
  const common: Json = {};
  const idle = cp.idleTimeoutMs ?? cp.tcpIdleTimeoutMs;
  if (idle !== undefined) common.idle_timeout = envoyDuration(idle);
  if (cp.maxRequestsPerConnection !== undefined && cp.maxRequestsPerConnection > 0) common.max_requests_per_connection = cp.maxRequestsPerConnection;
  if (cp.maxConnectionDurationMs !== undefined) common.max_connection_duration = envoyDuration(cp.maxConnectionDurationMs);
  // DO_NOT_UPGRADE keeps an HTTP/1 service on HTTP/1; a service declared http2 or grpc speaks HTTP/2 anyway.
  const h2 = protocol === 'http2' || protocol === 'grpc' || cp.h2UpgradePolicy === 'UPGRADE';
  const h2Options = cp.maxConcurrentStreams !== undefined ? { max_concurrent_streams: cp.maxConcurrentStreams } : {};
  if (!h2 && !cp.useClientProtocol && Object.keys(common).length === 0) return undefined;
  const config = cp.useClientProtocol
    ? { use_downstream_protocol_config: { http_protocol_options: {}, http2_protocol_options: h2Options } }
    : { explicit_http_config: h2 ? { http2_protocol_options: h2Options } : { http_protocol_options: {} } };
  return { '@type': TYPE.httpOptions, ...(Object.keys(common).length > 0 ? { common_http_protocol_options: common } : {}), ...config };
}
