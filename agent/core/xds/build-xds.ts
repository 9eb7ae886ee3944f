// The xDS resources one client needs: a sidecar's outbound listeners, or a proxyless gRPC app's API listeners.
import type { Desired, Instance, VirtualService } from '../model/model.js';
import type { Workload } from '../render/placement.js';
import type { ClusterFlavour, EndpointWarning } from './build-clusters.js';
import { buildCluster, buildEndpoints, resolveCluster } from './build-clusters.js';
import { CORS_FILTER, FAULT_FILTER, buildRouteConfig, referencedClusters, usesCors } from './build-routes.js';
import { expandDelegates } from '../model/delegates.js';
import type { Caller } from './source-labels.js';
import { callerOf } from './source-labels.js';
import { DEFAULT_NAMESPACE, namespaceOf } from '../model/namespaces.js';
import { l4Listener } from './build-l4.js';
import type { Json } from './envoy-types.js';
import { ADS_SOURCE, TYPE, socketAddress } from './envoy-types.js';
import { withHashPolicies } from './hash-policy.js';
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

// Istio puts CORS ahead of fault injection: a preflight is answered even on a route that injects faults.
const CORS_HTTP_FILTER = { name: CORS_FILTER, typed_config: { '@type': TYPE.cors } };

/**
 * The VirtualService routing `service` for a caller in `namespace` (`exportTo: ["."]` keeps it to its own
 * namespace), its delegate rules expanded into the delegates' rules.
 */
export function routeFor(service: string, desired: Desired, namespace: string): VirtualService | undefined {
  const vs = desired.routes.find((r) => r.hosts.includes(service) && (!r.exportTo || r.exportTo.includes('*') || namespaceOf(r) === namespace));
  if (!vs || !vs.http.some((r) => r.delegate)) return vs;
  const find = (name: string, ns: string) => desired.routes.find((r) => r.name === name && namespaceOf(r) === ns);
  return { ...vs, http: expandDelegates(vs, find, namespaceOf(vs)) };
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
  const caller = callerOf(w.service, w.version.name);
  for (const u of upstreams) {
    if (u.mode !== 'proxy') continue;
    const target = desired.services.find((s) => s.name === u.service);
    if (!target) continue;
    const vs = routeFor(u.service, desired, caller.namespace);
    referencedClusters(u.service, vs).forEach((c) => clusterNames.add(c));
    const name = `outbound_${u.localPort}_${u.service}`;
    if (target.protocol === 'tcp') {
      listeners.push(listener(name, u.localPort!, l4Listener(target, vs, caller, desired)));
    } else {
      listeners.push(listener(name, u.localPort!, { filter_chains: [{ filters: [httpConnectionManager(u.service, usesCors(vs))] }] }));
      routes.push(withHashPolicies(buildRouteConfig(u.service, vs, { proxyless: false, caller, listenerPort: u.localPort! }), desired));
    }
  }
  return { listeners, routes, ...clustersAndEndpoints([...clusterNames], desired, instances, { ...place, proxyless: false }, warnings) };
}

/**
 * Resources for a proxyless gRPC client dialing `xds:///<service>` for each of `services`. `caller`: the
 * workload of the app, when the agent started it; a client it does not know gets no sourceLabels rules and is
 * taken to be in the `default` namespace.
 */
export function buildProxylessResources(services: string[], desired: Desired, instances: Instance[], warnings: EndpointWarning[], caller?: Caller, place: ClientPlace = {}): XdsResources {
  const namespace = caller?.namespace ?? DEFAULT_NAMESPACE;
  const listeners: Json[] = [];
  const routes: Json[] = [];
  const clusterNames = new Set<string>();
  for (const name of [...services].sort()) {
    if (!desired.services.some((s) => s.name === name)) continue;
    const vs = routeFor(name, desired, namespace);
    referencedClusters(name, vs).forEach((c) => clusterNames.add(c));
    listeners.push({ name, api_listener: { api_listener: hcmConfig(name) } });
    routes.push(withHashPolicies(buildRouteConfig(name, vs, { proxyless: true, ...(caller ? { caller } : {}) }), desired, true));
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

function listener(name: string, port: number, chains: Json): Json {
  return {
    name,
    address: socketAddress('127.0.0.1', port),
    // Sidecars of several apps on one host may proxy the same upstream on the same localPort.
    enable_reuse_port: true,
    ...chains,
  };
}

function hcmConfig(service: string, cors = false): Json {
  return {
    '@type': TYPE.hcm,
    stat_prefix: service,
    rds: { route_config_name: service, config_source: ADS_SOURCE },
    http_filters: cors ? [CORS_HTTP_FILTER, ...HTTP_FILTERS] : HTTP_FILTERS,
  };
}

/** `cors`: only a listener whose routes carry a CORS policy gets the filter, so adding one leaves the others untouched. */
function httpConnectionManager(service: string, cors: boolean): Json {
  return { name: 'envoy.filters.network.http_connection_manager', typed_config: { ...hcmConfig(service, cors), codec_type: 'AUTO' } };
}
