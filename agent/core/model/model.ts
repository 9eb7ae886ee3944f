// The desired state after validation: plain values, names sorted, defaults filled in.
import type { DocRef } from './issues.js';

export const PROTOCOLS = ['http', 'http2', 'grpc', 'tcp'] as const;
export type Protocol = (typeof PROTOCOLS)[number];
export const UPSTREAM_MODES = ['proxy', 'direct', 'naming', 'xds'] as const;
export type UpstreamMode = (typeof UPSTREAM_MODES)[number];

export type HealthCheck =
  | { kind: 'http'; path: string; timing: HealthTiming }
  | { kind: 'tcp'; timing: HealthTiming }
  | { kind: 'grpc'; service: string; timing: HealthTiming }
  | { kind: 'exec'; command: string[] | string; timing: HealthTiming };

export interface HealthTiming {
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

export interface Version {
  name: string;
  image: string;
  command?: string[];
  env: Record<string, string>;
  /** The host port this version's app listens on (the version's override or the service port). */
  port: number;
  nodes: string[];
  health?: HealthCheck;
  resources?: { cpus?: number; memory?: string };
  volumes: string[];
}

export interface Upstream {
  service: string;
  mode: UpstreamMode;
  localPort?: number;
  address?: string;
  /** The variable injected into the app. */
  env: string;
}

export interface Service {
  kind: 'Service';
  name: string;
  /** `metadata.namespace` (default `default`). Names stay unique across namespaces: etcd keys have none. */
  namespace: string;
  protocol: Protocol;
  port: number;
  versions: Version[];
  upstreams: Upstream[];
  sidecar: { image?: string };
  ref: DocRef;
}

export interface StringMatch {
  exact?: string;
  prefix?: string;
  regex?: string;
  /** Istio's `{}` (or `regex: "*"`) for a header or query parameter: it is present, whatever its value. */
  present?: true;
}

export interface HttpMatch {
  /** Istio's match name: the Envoy route is named `<route>.<match>`. */
  name?: string;
  uri?: StringMatch;
  scheme?: StringMatch;
  method?: StringMatch;
  authority?: StringMatch;
  headers: { name: string; match: StringMatch }[];
  withoutHeaders: { name: string; match: StringMatch }[];
  queryParams: { name: string; match: StringMatch }[];
  ignoreUriCase: boolean;
  /** The destination Service's port; validation refuses any other (a meshlet Service has one port). */
  port?: number;
  /** Labels of the caller (`app`, `version`): the rule is rendered only into the sidecars that carry them. */
  sourceLabels?: Record<string, string>;
  /** The caller Service's namespace. */
  sourceNamespace?: string;
  /** Envoy's route stat_prefix. */
  statPrefix?: string;
}

export interface Destination {
  host: string;
  subset?: string;
  /** Istio's `destination.port.number`; must be the Service's port when given. */
  port?: number;
  weight: number;
  /** Header operations applied only when this destination is picked. */
  headers?: HeaderOps;
}

/** A fractional percentage 0–100 as Istio writes it (`percentage.value` or the older integer `percent`). */
export type Percent = number;

export interface HttpRoute {
  name?: string;
  match: HttpMatch[];
  /** Empty when the rule redirects, answers directly or delegates. */
  route: Destination[];
  redirect?: Redirect;
  directResponse?: { status: number; body?: { string: string } | { bytes: string } };
  /** Another VirtualService (without hosts) whose http rules are merged under this rule's match. */
  delegate?: { name: string; namespace?: string };
  timeoutMs?: number;
  retries?: {
    attempts: number;
    perTryTimeoutMs?: number;
    retryOn?: string;
    retryRemoteLocalities?: boolean;
    /** Istio's default true: a retry picks a host not tried yet. */
    retryIgnorePreviousHosts?: boolean;
    /** The base interval between retries (Envoy's default is 25 ms). */
    backoffMs?: number;
  };
  fault?: {
    delay?: { fixedDelayMs: number; percent: Percent };
    abort?: { httpStatus?: number; grpcStatus?: string; percent: Percent };
  };
  mirrors: { host: string; subset?: string; percent: Percent }[];
  rewrite?: { uri?: string; authority?: string; uriRegexRewrite?: { match: string; rewrite: string } };
  headers?: HeaderOps;
  corsPolicy?: CorsPolicy;
}

export interface Redirect {
  uri?: string;
  authority?: string;
  scheme?: string;
  port?: number;
  derivePort?: 'FROM_PROTOCOL_DEFAULT' | 'FROM_REQUEST_PORT';
  /** 301 unless written. */
  redirectCode: number;
}

export interface CorsPolicy {
  /** Istio's `allowOrigins`, plus the deprecated `allowOrigin` list as exact matches. */
  allowOrigins: StringMatch[];
  allowMethods: string[];
  allowHeaders: string[];
  exposeHeaders: string[];
  maxAgeMs?: number;
  allowCredentials?: boolean;
  unmatchedPreflights?: 'FORWARD' | 'IGNORE';
}

export interface HeaderOps {
  /** A Host set in `request.set`: an authority rewrite, as Istio renders it. */
  authority?: string;
  request: { set: Record<string, string>; add: Record<string, string>; remove: string[] };
  response: { set: Record<string, string>; add: Record<string, string>; remove: string[] };
}

/** Istio's L4 match attributes (`tcp` and `tls` routes); each given one must hold. */
export interface L4Match {
  /** The port addressed; a meshlet Service has one, so it can only be the Service's. */
  port?: number;
  /** The caller's workload labels (`app`, `version`): see xds/source-labels.ts. */
  sourceLabels?: Record<string, string>;
  sourceNamespace?: string;
}

export interface TcpRoute {
  match: L4Match[];
  route: Destination[];
}

/** A TLS passthrough route: the client's SNI (read by Envoy's tls_inspector) picks the destinations. */
export interface TlsRoute {
  match: (L4Match & { sniHosts: string[] })[];
  route: Destination[];
}

/**
 * A host as written in a document and the Service it resolves to: `reviews` is relative to the document's
 * namespace, `reviews.prod`, `reviews.prod.svc` and `reviews.prod.svc.<cluster domain>` name `prod`.
 * The set-level checks compare the namespace with the Service's and the domain with the configured one.
 */
export interface HostRef {
  path: string;
  written: string;
  name: string;
  namespace: string;
  domain?: string;
}

export interface VirtualService {
  kind: 'VirtualService';
  name: string;
  namespace: string;
  /** The Services routed, by name (each host resolved: see hostRefs). */
  hosts: string[];
  http: HttpRoute[];
  tcp: TcpRoute[];
  tls: TlsRoute[];
  /** `exportTo` as written (`.` and `*`); absent means every namespace. */
  exportTo?: string[];
  /** Every host of the document as written, for the set-level checks. */
  hostRefs: HostRef[];
  ref: DocRef;
}

export type LbPolicy = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM';

/** What a consistent hash is computed from (Istio's consistentHash hash key, one of them). */
export type HashKey =
  | { header: string }
  | { cookie: { name: string; path?: string; ttlMs?: number } }
  | { sourceIp: true }
  | { queryParameter: string };

export interface ConsistentHash {
  key: HashKey;
  /** RING_HASH (with the deprecated top-level minimumRingSize folded in) or MAGLEV. */
  table: { kind: 'ringHash'; minimumRingSize?: number } | { kind: 'maglev'; tableSize?: number };
}

/** Istio's localityLbSetting; localities are written `region/zone/subzone` (a meshlet node is a subzone). */
export interface LocalityLbSetting {
  enabled: boolean;
  distribute: { from: string; to: [string, number][] }[];
  failover: { from: string; to: string }[];
  failoverPriority: string[];
}

export interface LoadBalancer {
  simple?: LbPolicy;
  consistentHash?: ConsistentHash;
  locality?: LocalityLbSetting;
  /** Envoy slow start (round robin and least request only). */
  warmup?: { durationMs: number; minimumPercent?: number; aggression?: number };
}

export interface ConnectionPool {
  maxConnections?: number;
  connectTimeoutMs?: number;
  tcpKeepalive?: { probes?: number; timeS?: number; intervalS?: number };
  maxConnectionDurationMs?: number;
  tcpIdleTimeoutMs?: number;
  http1MaxPendingRequests?: number;
  http2MaxRequests?: number;
  maxRequestsPerConnection?: number;
  maxRetries?: number;
  idleTimeoutMs?: number;
  h2UpgradePolicy?: 'DEFAULT' | 'DO_NOT_UPGRADE' | 'UPGRADE';
  useClientProtocol?: boolean;
  maxConcurrentStreams?: number;
}

export interface OutlierDetection {
  consecutive5xxErrors?: number;
  consecutiveGatewayErrors?: number;
  /** Istio's deprecated consecutiveErrors: counted as gateway errors only (502, 503, 504), as Istio did. */
  consecutiveErrors?: number;
  consecutiveLocalOriginFailures?: number;
  splitExternalLocalOriginErrors?: boolean;
  intervalMs?: number;
  baseEjectionTimeMs?: number;
  maxEjectionPercent?: number;
  minHealthPercent?: number;
}

/** TLS from the sidecar to the upstream, with files on the host (mounted read-only into the sidecar). */
export type UpstreamTls =
  | { mode: 'DISABLE' }
  | {
      mode: 'SIMPLE' | 'MUTUAL';
      clientCertificate?: string;
      privateKey?: string;
      caCertificates?: string;
      sni?: string;
      subjectAltNames: string[];
      insecureSkipVerify: boolean;
    };

/** The four sections Istio overrides as wholes (subset over rule, port level over both). */
export interface PolicySections {
  loadBalancer?: LoadBalancer;
  connectionPool?: ConnectionPool;
  outlierDetection?: OutlierDetection;
  tls?: UpstreamTls;
}

export interface TrafficPolicy extends PolicySections {
  /** Istio's portLevelSettings; a meshlet Service has one port, so only its own port's entry can apply. */
  portLevelSettings?: { port: number; policy: PolicySections; /** Place in the document's list, for messages. */ index: number }[];
}

export interface Subset {
  name: string;
  version: string;
  trafficPolicy?: TrafficPolicy;
}

export interface DestinationRule {
  kind: 'DestinationRule';
  name: string;
  namespace: string;
  host: string;
  hostRefs: HostRef[];
  trafficPolicy?: TrafficPolicy;
  subsets: Subset[];
  ref: DocRef;
}

export type Document = Service | VirtualService | DestinationRule;

/** The whole desired state, each list sorted by name. */
export interface Desired {
  services: Service[];
  routes: VirtualService[];
  subsets: DestinationRule[];
}

/** An instance registered in etcd: `<p>/registry/<service>/<version>/<node>`. */
export interface Instance {
  service: string;
  version: string;
  node: string;
  address: string;
  port: number;
  container?: string;
  healthySince?: string;
  /** The node's locality (agent flags --region, --zone); absent: region `meshlet`, zone the node's name. */
  region?: string;
  zone?: string;
}

export const SERVICE_NAME = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const VERSION_NAME = /^[a-z0-9]([a-z0-9.-]{0,30}[a-z0-9])?$/;
/** A DestinationRule subset's name; a version name (an implicit subset) is one too. */
export const SUBSET_NAME = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;
export const NODE_NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;
/** A region or zone name (agent flags --region and --zone; registry Instance JSON). */
export const LOCALITY_NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function placedOn(version: Version, node: string): boolean {
  return version.nodes.includes('*') || version.nodes.includes(node);
}

/** Compose service name of an app; its sidecar adds `-envoy`. */
export function workloadName(service: string, version: string): string {
  return `${service}-${version}`;
}
