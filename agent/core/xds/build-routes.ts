// Translates a VirtualService (or its absence) into an Envoy RouteConfiguration for one upstream service.
import type { Destination, HeaderOps, HttpMatch, HttpRoute, StringMatch, VirtualService } from '../model/model.js';
import { GRPC_STATUS_NAMES } from '../documents/validate-route.js';
import { envoyDuration } from '../documents/duration.js';
import type { Json } from './envoy-types.js';
import { TYPE, fractionalPercent } from './envoy-types.js';

export const FAULT_FILTER = 'envoy.filters.http.fault';
/** Istio's retry policy when a route names none: two retries on connection-level failures and 503. */
const DEFAULT_RETRY = { retry_on: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes', num_retries: 2, retriable_status_codes: [503] };
/**
 * What Istio adds to every retry policy for Envoy: a retry picks a host not tried yet (up to 5 picks).
 * Without it a retry may land on the failed host again (seen: 1 retry in 10 under round robin, 1 in 2 with
 * RANDOM). gRPC's xDS client ignores host predicates (gRFC A44), so proxyless routes go without.
 */
const RETRY_OTHER_HOSTS = {
  retry_host_predicate: [{ name: 'envoy.retry_host_predicates.previous_hosts', typed_config: { '@type': TYPE.previousHosts } }],
  host_selection_retry_max_attempts: 5,
};

export interface RouteFlavour {
  /** For gRPC's xDS client rather than an Envoy sidecar. */
  proxyless: boolean;
}

/** The cluster a destination goes to: `<host>|<subset>`, or `<host>` for all its versions. */
export function clusterName(host: string, subset?: string): string {
  return subset === undefined ? host : `${host}|${subset}`;
}

/** Every cluster the routes of `service` can send traffic to (destinations and mirrors). */
export function referencedClusters(service: string, vs: VirtualService | undefined): string[] {
  if (!vs) return [service];
  const names = new Set<string>();
  for (const r of vs.http) {
    for (const d of r.route) names.add(clusterName(d.host, d.subset));
    for (const m of r.mirrors) names.add(clusterName(m.host, m.subset));
  }
  for (const r of [...vs.tcp, ...vs.tls]) for (const d of r.route) names.add(clusterName(d.host, d.subset));
  return [...names].sort();
}

/** A RouteConfiguration named after the service. */
export function buildRouteConfig(service: string, vs: VirtualService | undefined, flavour: RouteFlavour = { proxyless: false }): Json {
  const routes = vs ? vs.http.flatMap((r) => toEnvoyRoutes(r, flavour)) : [defaultRoute(service, flavour)];
  return { name: service, virtual_hosts: [{ name: service, domains: ['*'], routes }] };
}

function defaultRoute(service: string, flavour: RouteFlavour): Json {
  return { match: { prefix: '/' }, route: { cluster: clusterName(service), timeout: '0s', retry_policy: withHostPredicate(DEFAULT_RETRY, flavour) } };
}

function withHostPredicate(policy: Json, flavour: RouteFlavour): Json {
  return flavour.proxyless ? policy : { ...policy, ...RETRY_OTHER_HOSTS };
}

function toEnvoyRoutes(r: HttpRoute, flavour: RouteFlavour): Json[] {
  const action = routeAction(r, flavour);
  const extras = routeExtras(r);
  const matches = r.match.length > 0 ? r.match : [undefined];
  return matches.map((m) => ({ ...(r.name ? { name: r.name } : {}), match: routeMatch(m), route: action, ...extras }));
}

function routeMatch(m: HttpMatch | undefined): Json {
  if (!m) return { prefix: '/' };
  const out: Json = {};
  const uri = m.uri;
  if (!uri) out.prefix = '/';
  else if (uri.exact !== undefined) out.path = uri.exact;
  else if (uri.prefix !== undefined) out.prefix = uri.prefix;
  else out.safe_regex = { regex: uri.regex };
  if (m.ignoreUriCase) out.case_sensitive = false;
  const headers: Json[] = [];
  if (m.method) headers.push(headerMatcher(':method', m.method, false));
  if (m.authority) headers.push(headerMatcher(':authority', m.authority, false));
  for (const h of m.headers) headers.push(headerMatcher(h.name, h.match, false));
  for (const h of m.withoutHeaders) headers.push(headerMatcher(h.name, h.match, true));
  if (headers.length > 0) out.headers = headers;
  if (m.queryParams.length > 0) out.query_parameters = m.queryParams.map((q) => ({ name: q.name, string_match: stringMatcher(q.match) }));
  return out;
}

function headerMatcher(name: string, match: StringMatch, invert: boolean): Json {
  return { name, string_match: stringMatcher(match), ...(invert ? { invert_match: true } : {}) };
}

function stringMatcher(m: StringMatch): Json {
  if (m.exact !== undefined) return { exact: m.exact };
  if (m.prefix !== undefined) return { prefix: m.prefix };
  return { safe_regex: { regex: m.regex } };
}

function routeAction(r: HttpRoute, flavour: RouteFlavour): Json {
  const action: Json = { ...weighted(r.route), timeout: envoyDuration(r.timeoutMs ?? 0) };
  const retry = retryPolicy(r);
  if (retry) action.retry_policy = withHostPredicate(retry, flavour);
  if (r.mirrors.length > 0) {
    action.request_mirror_policies = r.mirrors.map((m) => ({
      cluster: clusterName(m.host, m.subset),
      ...(m.percent < 100 ? { runtime_fraction: { default_value: fractionalPercent(m.percent) } } : {}),
    }));
  }
  if (r.rewrite?.uri !== undefined) action.prefix_rewrite = r.rewrite.uri;
  if (r.rewrite?.authority !== undefined) action.host_rewrite_literal = r.rewrite.authority;
  return action;
}

/**
 * One cluster, or weighted clusters. A destination at weight 0 stays listed (with its cluster), so a canary
 * flip such as 100/0 → 0/100 only changes the route, not the set of clusters and endpoints; an all-zero set
 * is refused by validation (Envoy and gRPC refuse it too).
 */
export function weighted(dests: Destination[]): Json {
  if (dests.length === 1) return { cluster: clusterName(dests[0]!.host, dests[0]!.subset) };
  return { weighted_clusters: { clusters: dests.map((d) => ({ name: clusterName(d.host, d.subset), weight: d.weight })) } };
}

function retryPolicy(r: HttpRoute): Json | undefined {
  if (!r.retries) return DEFAULT_RETRY;
  if (r.retries.attempts === 0) return undefined;
  const tokens = (r.retries.retryOn ?? DEFAULT_RETRY.retry_on).split(',');
  const codes = tokens.filter((t) => /^\d+$/.test(t)).map(Number);
  const on = tokens.filter((t) => !/^\d+$/.test(t));
  if (codes.length > 0 && !on.includes('retriable-status-codes')) on.push('retriable-status-codes');
  return {
    retry_on: on.join(','),
    num_retries: r.retries.attempts,
    ...(r.retries.perTryTimeoutMs !== undefined ? { per_try_timeout: envoyDuration(r.retries.perTryTimeoutMs) } : {}),
    ...(codes.length > 0 ? { retriable_status_codes: codes } : r.retries.retryOn === undefined ? { retriable_status_codes: [503] } : {}),
  };
}

function routeExtras(r: HttpRoute): Json {
  const out: Json = {};
  if (r.fault && (r.fault.delay || r.fault.abort)) out.typed_per_filter_config = { [FAULT_FILTER]: faultConfig(r.fault) };
  if (r.headers) Object.assign(out, headerOps(r.headers));
  return out;
}

function faultConfig(f: NonNullable<HttpRoute['fault']>): Json {
  const cfg: Json = { '@type': TYPE.fault };
  if (f.delay) cfg.delay = { fixed_delay: envoyDuration(f.delay.fixedDelayMs), percentage: fractionalPercent(f.delay.percent) };
  if (f.abort) {
    cfg.abort = {
      ...(f.abort.httpStatus !== undefined ? { http_status: f.abort.httpStatus } : { grpc_status: GRPC_STATUS_NAMES.indexOf(f.abort.grpcStatus as (typeof GRPC_STATUS_NAMES)[number]) }),
      percentage: fractionalPercent(f.abort.percent),
    };
  }
  return cfg;
}

function headerOps(h: HeaderOps): Json {
  const out: Json = {};
  const adds = (side: HeaderOps['request']) => [
    ...Object.entries(side.set).map(([key, value]) => ({ header: { key, value }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' })),
    ...Object.entries(side.add).map(([key, value]) => ({ header: { key, value }, append_action: 'APPEND_IF_EXISTS_OR_ADD' })),
  ];
  const req = adds(h.request);
  const res = adds(h.response);
  if (req.length > 0) out.request_headers_to_add = req;
  if (h.request.remove.length > 0) out.request_headers_to_remove = h.request.remove;
  if (res.length > 0) out.response_headers_to_add = res;
  if (h.response.remove.length > 0) out.response_headers_to_remove = h.response.remove;
  return out;
}
