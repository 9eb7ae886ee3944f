// A sidecar's outbound listener for a tcp-protocol upstream: Istio's tcp routes (port, sourceLabels,
// sourceNamespace) and tls passthrough routes (SNI), as they apply to the caller the sidecar serves.
import type { Desired, Destination, L4Match, Service, VirtualService } from '../model/model.js';
import { clusterName, weighted } from './build-routes.js';
import type { Json } from './envoy-types.js';
import { TYPE } from './envoy-types.js';
import { tcpHashPolicy } from './hash-policy.js';
import type { Caller } from './source-labels.js';
import { matchesSource } from './source-labels.js';

/** The caller, with its namespace for `sourceNamespace`. */
export interface L4Caller extends Caller {
  namespace: string;
}

/**
 * The filter chains of the listener, and its listener filters. Routes are tried in the order written, as
 * Istio does: for plain TCP the first tcp route whose match applies; with no such route, the Service itself.
 */
export function l4Listener(target: Service, vs: VirtualService | undefined, caller: L4Caller, desired: Desired): Json {
  const applies = (m: L4Match) => (m.port === undefined || m.port === target.port)
    && matchesSource(m.sourceLabels, caller)
    && (m.sourceNamespace === undefined || m.sourceNamespace === caller.namespace);
  const tcp = vs?.tcp.find((r) => r.match.length === 0 || r.match.some(applies));
  const fallback = { filters: [tcpProxy(target.name, tcp?.route, desired)] };
  const tlsChains = tlsFilterChains(target, vs, applies, desired);
  if (tlsChains.length === 0) return { filter_chains: [fallback] };
  return {
    // tls_inspector reads the ClientHello's SNI for filter_chain_match.server_names. A client that sends
    // nothing first (a server-first protocol) would be held until the listener filter timeout (15 s by
    // default) and then closed; continuing on the timeout sends it down the plain tcp chain instead, as Istio does.
    listener_filters: [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': TYPE.tlsInspector } }],
    continue_on_listener_filters_timeout: true,
    // Plain TCP and TLS whose SNI no route names: the chain with no match (Envoy picks the most specific chain).
    filter_chains: [...tlsChains, fallback],
  };
}

/**
 * One chain per tls route that applies, matched on its SNI names. Envoy refuses two chains with the same
 * match and picks by specificity, not order: a name a route before has taken is left out (the first route wins).
 */
function tlsFilterChains(target: Service, vs: VirtualService | undefined, applies: (m: L4Match) => boolean, desired: Desired): Json[] {
  const taken = new Set<string>();
  const chains: Json[] = [];
  for (const r of vs?.tls ?? []) {
    const names = [...new Set(r.match.filter(applies).flatMap((m) => m.sniHosts))].filter((n) => !taken.has(n)).sort();
    if (names.length === 0) continue;
    names.forEach((n) => taken.add(n));
    chains.push({ filter_chain_match: { server_names: names }, filters: [tcpProxy(target.name, r.route, desired)] });
  }
  return chains;
}

/** `desired`: a DestinationRule's consistentHash useSourceIp becomes the tcp_proxy's hash policy. */
function tcpProxy(service: string, route: Destination[] | undefined, desired: Desired): Json {
  // TcpProxy's cluster weights must be >= 1 (unlike a route's): a 0-weight destination is left out of the
  // filter (its cluster stays, as for http), so a 100/0 canary flip is not refused.
  const dests = route?.filter((d) => d.weight !== 0);
  return {
    name: 'envoy.filters.network.tcp_proxy',
    typed_config: {
      '@type': TYPE.tcpProxy, stat_prefix: service,
      ...(dests && dests.length > 0 ? weighted(dests) : { cluster: clusterName(service) }),
      ...tcpHashPolicy(dests && dests.length > 0 ? dests.map((d) => clusterName(d.host, d.subset)) : [clusterName(service)], desired),
    },
  };
}
