// The xDS resources one client needs: a sidecar's outbound listeners, or a proxyless gRPC app's API listeners.
import type { Desired, Instance, Service, VirtualService } from '../model/model.js';
import type { Workload } from '../render/placement.js';
import type { ClusterFlavour, EndpointWarning } from './build-clusters.js';
import { buildCluster, buildEndpoints, resolveCluster } from './build-clusters.js';
import { FAULT_FILTER, buildRouteConfig, clusterName, referencedClusters, weighted } from './build-routes.js';
import type { Json } from './envoy-types.js';
import { ADS_SOURCE, TYPE, socketAddress } from './envoy-types.js';
import { tcpHashPolicy, withHashPolicies } from './hash-policy.js';
import type { Locality } from './locality-endpoints.js';

export interface XdsResources {
  listeners: Json[];
  routes: Json[];
  clusters: Json[];
  endpoints: Json[];
}

const HTTP_FILTERS = [
  { name: FAULT_FILTER, typed_config: { '@type': TYPE.fault } },
  // The router must be last.
  { name: 'envoy.filters.http.router', typed_config: { '@type': TYPE.router } },
];

export function routeFor(service: string, desired: Desired): VirtualService | undefined {
  return desired.routes.find((r) => r.hosts.includes(service));
}

/** Resources for the Envoy sidecar of `w`: one listener on 127.0.0.1:<localPort> per proxy-mode upstream. */
/** Where the client runs: its node's locality, and where the sidecar finds the host's TLS files. */
export interface ClientPlace {
  locality?: Locality;
  tlsRoot?: string;
}

export function buildSidecarResources(w: Workload, desired: Desired, instances: Instance[], warnings: EndpointWarning[], place: ClientPlace = {}): XdsResources {
  const listeners: Json[] = [];
  const routes: Json[] = [];
  const clusterNames = new Set<string>();
  // Listeners in service order, whatever order the document lists its upstreams in.
  const upstreams = [...w.service.upstreams].sort((a, b) => a.service.localeCompare(b.service));
  for (const u of upstreams) {
    if (u.mode !== 'proxy') continue;
    const target = desired.services.find((s) => s.name === u.service);
    if (!target) continue;
    const vs = routeFor(u.service, desired);
    referencedClusters(u.service, vs).forEach((c) => clusterNames.add(c));
    const name = `outbound_${u.localPort}_${u.service}`;
    if (target.protocol === 'tcp') {
      listeners.push(listener(name, u.localPort!, tcpProxy(target, vs, desired)));
    } else {
      listeners.push(listener(name, u.localPort!, httpConnectionManager(u.service)));
      routes.push(withHashPolicies(buildRouteConfig(u.service, vs), desired));
    }
  }
  return { listeners, routes, ...clustersAndEndpoints([...clusterNames], desired, instances, { ...place, proxyless: false }, warnings) };
}

/** Resources for a proxyless gRPC client dialing `xds:///<service>` for each of `services`. */
export function buildProxylessResources(services: string[], desired: Desired, instances: Instance[], warnings: EndpointWarning[], place: ClientPlace = {}): XdsResources {
  const listeners: Json[] = [];
  const routes: Json[] = [];
  const clusterNames = new Set<string>();
  for (const name of [...services].sort()) {
    if (!desired.services.some((s) => s.name === name)) continue;
    const vs = routeFor(name, desired);
    referencedClusters(name, vs).forEach((c) => clusterNames.add(c));
    listeners.push({ name, api_listener: { api_listener: hcmConfig(name) } });
    routes.push(withHashPolicies(buildRouteConfig(name, vs, { proxyless: true }), desired, true));
  }
  return { listeners, routes, ...clustersAndEndpoints([...clusterNames], desired, instances, { ...place, proxyless: true }, warnings) };
}

function clustersAndEndpoints(names: string[], desired: Desired, instances: Instance[], flavour: ClusterFlavour, warnings: EndpointWarning[]) {
  const clusters: Json[] = [];
  const endpoints: Json[] = [];
  for (const name of names.sort()) {
    const t = resolveCluster(name, desired);
    if (!t) continue;
    clusters.push(buildCluster(t, flavour));
    endpoints.push(buildEndpoints(t, instances, warnings, flavour.locality));
  }
  return { clusters, endpoints };
}

function listener(name: string, port: number, filter: Json): Json {
  return {
    name,
    address: socketAddress('127.0.0.1', port),
    // Sidecars of several apps on one host may proxy the same upstream on the same localPort.
    enable_reuse_port: true,
    filter_chains: [{ filters: [filter] }],
  };
}

function hcmConfig(service: string): Json {
  return {
    '@type': TYPE.hcm,
    stat_prefix: service,
    rds: { route_config_name: service, config_source: ADS_SOURCE },
    http_filters: HTTP_FILTERS,
  };
}

function httpConnectionManager(service: string): Json {
  return { name: 'envoy.filters.network.http_connection_manager', typed_config: { ...hcmConfig(service), codec_type: 'AUTO' } };
}

function tcpProxy(target: Service, vs: VirtualService | undefined, desired: Desired): Json {
  // TcpProxy's cluster weights must be >= 1 (unlike a route's): a 0-weight destination is left out of the
  // filter (its cluster stays, as for http), so a 100/0 canary flip is not refused.
  const dests = vs?.tcp[0]?.route.filter((d) => d.weight !== 0);
  return {
    name: 'envoy.filters.network.tcp_proxy',
    typed_config: { '@type': TYPE.tcpProxy, stat_prefix: target.name, ...(dests && dests.length > 0 ? weighted(dests) : { cluster: target.name }), ...tcpHashPolicy(dests && dests.length > 0 ? dests.map((d) => clusterName(d.host, d.subset)) : [target.name], desired) },
  };
}
