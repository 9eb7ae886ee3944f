// The xDS resources one client needs: a sidecar's outbound listeners, or a proxyless gRPC app's API listeners.
import type { Desired, Instance, VirtualService } from '../model/model.js';
import type { Workload } from '../render/placement.js';
import type { EndpointWarning } from './build-clusters.js';
import { buildCluster, buildEndpoints, resolveCluster } from './build-clusters.js';
import { FAULT_FILTER, buildRouteConfig, referencedClusters } from './build-routes.js';
import { l4Listener } from './build-l4.js';
import { DEFAULT_NAMESPACE } from '../documents/host-names.js';
import type { Json } from './envoy-types.js';
import { ADS_SOURCE, TYPE, socketAddress } from './envoy-types.js';

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

/** The VirtualService routing `service` for a caller in `namespace`: `exportTo: ["."]` keeps it to its own namespace. */
function routeFor(service: string, desired: Desired, namespace: string): VirtualService | undefined {
  return desired.routes.find((r) => r.hosts.includes(service) && (!r.exportTo || r.exportTo.includes('*') || r.namespace === namespace));
}

/** Resources for the Envoy sidecar of `w`: one listener on 127.0.0.1:<localPort> per proxy-mode upstream. */
export function buildSidecarResources(w: Workload, desired: Desired, instances: Instance[], warnings: EndpointWarning[]): XdsResources {
  const listeners: Json[] = [];
  const routes: Json[] = [];
  const clusterNames = new Set<string>();
  // Listeners in service order, whatever order the document lists its upstreams in.
  const upstreams = [...w.service.upstreams].sort((a, b) => a.service.localeCompare(b.service));
  for (const u of upstreams) {
    if (u.mode !== 'proxy') continue;
    const target = desired.services.find((s) => s.name === u.service);
    if (!target) continue;
    const vs = routeFor(u.service, desired, w.service.namespace);
    referencedClusters(u.service, vs).forEach((c) => clusterNames.add(c));
    const name = `outbound_${u.localPort}_${u.service}`;
    if (target.protocol === 'tcp') {
      listeners.push(listener(name, u.localPort!, l4Listener(target, vs, { service: w.service.name, version: w.version.name, namespace: w.service.namespace })));
    } else {
      listeners.push(listener(name, u.localPort!, { filter_chains: [{ filters: [httpConnectionManager(u.service)] }] }));
      routes.push(buildRouteConfig(u.service, vs));
    }
  }
  return { listeners, routes, ...clustersAndEndpoints([...clusterNames], desired, instances, { proxyless: false }, warnings) };
}

/**
 * Resources for a proxyless gRPC client dialing `xds:///<service>` for each of `services`; `namespace` is
 * the caller's (a client the agent did not start is taken to be in `default`).
 */
export function buildProxylessResources(services: string[], desired: Desired, instances: Instance[], warnings: EndpointWarning[], namespace = DEFAULT_NAMESPACE): XdsResources {
  const listeners: Json[] = [];
  const routes: Json[] = [];
  const clusterNames = new Set<string>();
  for (const name of [...services].sort()) {
    if (!desired.services.some((s) => s.name === name)) continue;
    const vs = routeFor(name, desired, namespace);
    referencedClusters(name, vs).forEach((c) => clusterNames.add(c));
    listeners.push({ name, api_listener: { api_listener: hcmConfig(name) } });
    routes.push(buildRouteConfig(name, vs, { proxyless: true }));
  }
  return { listeners, routes, ...clustersAndEndpoints([...clusterNames], desired, instances, { proxyless: true }, warnings) };
}

function clustersAndEndpoints(names: string[], desired: Desired, instances: Instance[], flavour: { proxyless: boolean }, warnings: EndpointWarning[]) {
  const clusters: Json[] = [];
  const endpoints: Json[] = [];
  for (const name of names.sort()) {
    const t = resolveCluster(name, desired);
    if (!t) continue;
    clusters.push(buildCluster(t, flavour));
    endpoints.push(buildEndpoints(t, instances, warnings));
  }
  return { clusters, endpoints };
}

function listener(name: string, port: number, chains: Json): Json {
  return {
    name,
    address: socketAddress('127.0.0.1', port),
    // Sidecars of several apps on one host may proxy the same upstream on the same localPort.
    enable_reuse_port: true,
    ...chains,
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
