// Envoy clusters (EDS, one per subset or per whole service) and their endpoint assignments.
import { isIP } from 'node:net';
import type { Desired, Instance, PolicySections, Service } from '../model/model.js';
import { policyOf, subsetsOf } from './subsets.js';
import { envoyDuration } from '../documents/duration.js';
import type { Json } from './envoy-types.js';
import { ADS_SOURCE, socketAddress } from './envoy-types.js';
import { circuitBreakers, connectionOptions, httpProtocolOptions, loadBalancing, outlierDetection } from './cluster-policy.js';
import { UPSTREAM_TLS_ROOT, tlsTransportSocket } from './upstream-tls.js';
import type { Locality } from './locality-endpoints.js';
import { instanceLocality, localityPlan } from './locality-endpoints.js';

export interface ClusterTarget {
  name: string;
  service: Service;
  /** The version the cluster selects; undefined = every version. */
  version?: string;
  policy?: PolicySections;
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
  /** Where the host's TLS files are mounted in the sidecar (default UPSTREAM_TLS_ROOT; '' for an Envoy on the host). */
  tlsRoot?: string;
  /** The caller's locality, for localityLbSetting (its node's). */
  locality?: Locality;
}

export function buildCluster(t: ClusterTarget, flavour: ClusterFlavour): Json {
  const p = t.policy ?? {};
  const cp = p.connectionPool ?? {};
  const c: Json = {
    name: t.name,
    type: 'EDS',
    eds_cluster_config: { eds_config: ADS_SOURCE, service_name: t.name },
    connect_timeout: envoyDuration(cp.connectTimeoutMs ?? 1000),
    ...loadBalancing(p.loadBalancer, flavour),
  };
  const breakers = circuitBreakers(cp, flavour);
  if (breakers) c.circuit_breakers = breakers;
  const common: Json = {};
  if (p.outlierDetection) {
    c.outlier_detection = outlierDetection(p.outlierDetection);
    // Istio's minHealthPercent defaults to 0: ejected hosts stay out however few are left. Envoy's own
    // panic threshold (50%) would send traffic to every host, ejected or not, once half are ejected.
    common.healthy_panic_threshold = { value: p.outlierDetection.minHealthPercent ?? 0 };
  }
  // Locality weights count only with this set (priorities count always); Istio sets it with any locality setting.
  if (localityPlan(p, flavour.locality)) common.locality_weighted_lb_config = {};
  if (!flavour.proxyless && Object.keys(common).length > 0) c.common_lb_config = common;
  if (!flavour.proxyless) {
    const options = connectionOptions(cp);
    if (options) c.upstream_connection_options = options;
    const http = httpProtocolOptions(t.service.protocol, p);
    if (http) c.typed_extension_protocol_options = { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': http };
    const tls = tlsTransportSocket(p, flavour.tlsRoot ?? UPSTREAM_TLS_ROOT, alpnOf(http));
    if (tls) c.transport_socket = tls;
  }
  return c;
}

/** ALPN over TLS: h2 where the cluster speaks HTTP/2 (servers may insist on it), both for the caller's protocol. */
function alpnOf(http: Json | undefined): string[] {
  if (!http) return [];
  if (http.use_downstream_protocol_config) return ['h2', 'http/1.1'];
  const explicit = http.explicit_http_config as Json | undefined;
  return explicit?.http2_protocol_options ? ['h2'] : [];
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

/**
 * The healthy instances a cluster selects, one locality per node (gRPC skips a locality without a weight);
 * with a localityLbSetting, weights and priorities as seen from `caller`.
 */
export function buildEndpoints(t: ClusterTarget, instances: Instance[], warnings: EndpointWarning[], caller?: Locality): Json {
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
  const groups = [...byNode.keys()].sort().map((node) => {
    const list = byNode.get(node)!.sort((a, b) => (a.address === b.address ? a.port - b.port : a.address < b.address ? -1 : 1));
    return { locality: instanceLocality(list[0]!), count: list.length, list };
  });
  const placed = localityPlan(t.policy, caller)?.place(groups) ?? groups.map(() => ({ weight: 1, priority: 0 }));
  const endpoints = groups.flatMap((g, i) => {
    const at = placed[i];
    if (!at) return [];
    return [{
      locality: g.locality,
      load_balancing_weight: at.weight,
      ...(at.priority > 0 ? { priority: at.priority } : {}),
      lb_endpoints: g.list.map((x) => ({ endpoint: { address: socketAddress(x.address, x.port) }, health_status: 'HEALTHY' })),
    }];
  });
  return { cluster_name: t.name, endpoints };
}
