// Translates a VirtualService (or its absence) into an Envoy RouteConfiguration for one upstream service.
import type { Destination, HeaderOps, HttpMatch, HttpRoute, StringMatch, VirtualService } from '../model/model.js';
import { GRPC_STATUS_NAMES } from '../documents/validate-route.js';
import { corsConfig, directResponse, redirectAction, stringMatcher } from './build-route-actions.js';
import type { Caller } from './source-labels.js';
import { matchesCaller } from './source-labels.js';
import { envoyDuration } from '../documents/duration.js';
import type { Json } from './envoy-types.js';
import { TYPE, fractionalPercent } from './envoy-types.js';

export const FAULT_FILTER = 'envoy.filters.http.fault';
export const CORS_FILTER = 'envoy.filters.http.cors';
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
  /** The workload the client belongs to (sourceLabels, sourceNamespace); unknown for a proxyless app the agent did not start. */
  caller?: Caller;
  /** The port the caller sent the request to: a sidecar's listener (a redirect's `derivePort: FROM_REQUEST_PORT`). */
  listenerPort?: number;
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

/** True when a route carries a CORS policy: the listener then needs Envoy's CORS filter (sidecars only). */
export function usesCors(vs: VirtualService | undefined): boolean {
  return !!vs && vs.http.some((r) => r.corsPolicy !== undefined);
}

function defaultRoute(service: string, flavour: RouteFlavour): Json {
  return { match: { prefix: '/' }, route: { cluster: clusterName(service), timeout: '0s', retry_policy: withHostPredicate(DEFAULT_RETRY, flavour) } };
}

function withHostPredicate(policy: Json, flavour: RouteFlavour): Json {
  return flavour.proxyless ? policy : { ...policy, ...RETRY_OTHER_HOSTS };
}

function toEnvoyRoutes(r: HttpRoute, flavour: RouteFlavour): Json[] {
  // gRPC's xDS client NACKs the whole RouteConfiguration for an action other than route: such rules are
  // refused by validation for the declared proxyless callers, and left out for any other proxyless client.
  if (flavour.proxyless && (r.redirect || r.directResponse)) return [];
  const matches = r.match.length > 0 ? r.match.filter((m) => applies(m, flavour)) : [undefined];
  if (matches.length === 0) return [];
  const action = r.redirect ? { redirect: redirectAction(r.redirect, flavour.listenerPort) } : r.directResponse ? { direct_response: directResponse(r.directResponse) } : { route: routeAction(r, flavour) };
  const extras = routeExtras(r, flavour);
  return matches.map((m) => {
    const name = [r.name, m?.name].filter((n) => n).join('.');
    return { ...(name ? { name } : {}), match: routeMatch(m, flavour), ...action, ...extras, ...(m?.statPrefix ? { stat_prefix: m.statPrefix } : {}) };
  });
}

/** A match applies to this client when its caller conditions hold; a gRPC call has no query, so queryParams never match one. */
function applies(m: HttpMatch, flavour: RouteFlavour): boolean {
  if (flavour.proxyless && m.queryParams.length > 0) return false; // gRPC's xDS client ignores query_parameters: left in, it would match every call
  return matchesCaller(m, flavour.caller);
}

function routeMatch(m: HttpMatch | undefined, flavour: RouteFlavour): Json {
  if (!m) return { prefix: '/' };
  const out: Json = {};
  const uri = m.uri;
  if (!uri) out.prefix = '/';
  else if (uri.exact !== undefined) out.path = uri.exact;
  else if (uri.prefix !== undefined) out.prefix = uri.prefix;
  else out.safe_regex = { regex: uri.regex };
  // Envoy ignores case_sensitive for safe_regex, as Istio documents for ignoreUriCase.
  if (m.ignoreUriCase) out.case_sensitive = false;
  const headers: Json[] = [];
  if (m.method) headers.push(headerMatcher(':method', m.method, false));
  if (m.authority) headers.push(headerMatcher(':authority', m.authority, false));
  if (m.scheme) headers.push(headerMatcher(':scheme', m.scheme, false));
  for (const h of m.headers) headers.push(headerMatcher(h.name, h.match, false));
  for (const h of m.withoutHeaders) {
    // Envoy's inverted matcher fails on a missing header (Istio's withoutHeaders needs the header present);
    // gRPC's xDS client passes it: the presence check makes a proxyless client agree with the sidecar.
    if (flavour.proxyless && !h.match.present) headers.push({ name: h.name, present_match: true });
    headers.push(headerMatcher(h.name, h.match, true));
  }
  if (headers.length > 0) out.headers = headers;
  if (m.queryParams.length > 0) out.query_parameters = m.queryParams.map((q) => (q.match.present ? { name: q.name, present_match: true } : { name: q.name, string_match: stringMatcher(q.match) }));
  return out;
}

/** Inverted presence (withoutHeaders `{}`): Envoy and gRPC both match a request without the header. */
function headerMatcher(name: string, match: StringMatch, invert: boolean): Json {
  const spec = match.present ? { present_match: true } : { string_match: stringMatcher(match) };
  return { name, ...spec, ...(invert ? { invert_match: true } : {}) };
}

function routeAction(r: HttpRoute, flavour: RouteFlavour): Json {
  const action: Json = { ...weighted(r.route, !flavour.proxyless), timeout: envoyDuration(r.timeoutMs ?? 0) };
  const retry = retryPolicy(r);
  if (retry) action.retry_policy = r.retries?.retryIgnorePreviousHosts === false ? retry : withHostPredicate(retry, flavour);
  // Istio's retryRemoteLocalities: each retry prefers a priority (locality) not tried yet.
  if (retry && r.retries?.retryRemoteLocalities && !flavour.proxyless) {
    action.retry_policy = {
      ...(action.retry_policy as Json),
      retry_priority: { name: 'envoy.retry_priorities.previous_priorities', typed_config: { '@type': TYPE.previousPriorities, update_frequency: r.retries.attempts + 1 } },
    };
  }
  if (r.mirrors.length > 0) {
    action.request_mirror_policies = r.mirrors.map((m) => ({
      cluster: clusterName(m.host, m.subset),
      ...(m.percent < 100 ? { runtime_fraction: { default_value: fractionalPercent(m.percent) } } : {}),
    }));
  }
  if (r.rewrite?.uri !== undefined) action.prefix_rewrite = r.rewrite.uri;
  if (r.rewrite?.uriRegexRewrite) action.regex_rewrite = { pattern: { regex: r.rewrite.uriRegexRewrite.match }, substitution: r.rewrite.uriRegexRewrite.rewrite };
  // Istio's order: rewrite.authority, else a Host set by the route's headers, else by its one destination's.
  const authority = r.rewrite?.authority ?? r.headers?.authority ?? (r.route.length === 1 ? r.route[0]!.headers?.authority : undefined);
  if (authority !== undefined) action.host_rewrite_literal = authority;
  return action;
}

/**
 * One cluster, or weighted clusters. A destination at weight 0 stays listed (with its cluster), so a canary
 * flip such as 100/0 → 0/100 only changes the route, not the set of clusters and endpoints; an all-zero set
 * is refused by validation (Envoy and gRPC refuse it too).
 */
export function weighted(dests: Destination[], withHeaders = false): Json {
  if (dests.length === 1) return { cluster: clusterName(dests[0]!.host, dests[0]!.subset) };
  return {
    weighted_clusters: {
      clusters: dests.map((d) => ({
        name: clusterName(d.host, d.subset), weight: d.weight,
        ...(withHeaders && d.headers ? headerOps(d.headers) : {}),
        ...(withHeaders && d.headers?.authority !== undefined ? { host_rewrite_literal: d.headers.authority } : {}),
      })),
    },
  };
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
    ...(r.retries.backoffMs !== undefined ? { retry_back_off: { base_interval: envoyDuration(r.retries.backoffMs) } } : {}),
    ...(codes.length > 0 ? { retriable_status_codes: codes } : r.retries.retryOn === undefined ? { retriable_status_codes: [503] } : {}),
  };
}

function routeExtras(r: HttpRoute, flavour: RouteFlavour): Json {
  const out: Json = {};
  const perFilter: Json = {};
  if (r.fault && (r.fault.delay || r.fault.abort)) perFilter[FAULT_FILTER] = faultConfig(r.fault);
  // Envoy 1.40 has no route-level `cors` any more: the policy is the CORS filter's per-route config.
  if (r.corsPolicy && !flavour.proxyless) perFilter[CORS_FILTER] = corsConfig(r.corsPolicy);
  if (Object.keys(perFilter).length > 0) out.typed_per_filter_config = perFilter;
  // One destination: its header operations are the route's (Istio does the same); several: each cluster's own.
  const single = r.route.length === 1 ? r.route[0]!.headers : undefined;
  const ops = single ? mergeHeaderOps(r.headers, single) : r.headers;
  if (ops) Object.assign(out, headerOps(ops));
  return out;
}

function mergeHeaderOps(a: HeaderOps | undefined, b: HeaderOps): HeaderOps {
  if (!a) return b;
  const side = (x: HeaderOps['request'], y: HeaderOps['request']) => ({
    set: { ...x.set, ...y.set }, add: { ...x.add, ...y.add }, remove: [...new Set([...x.remove, ...y.remove])].sort(),
  });
  return { request: side(a.request, b.request), response: side(a.response, b.response) };
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
