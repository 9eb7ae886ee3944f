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
}

export interface HttpMatch {
  uri?: StringMatch;
  method?: StringMatch;
  authority?: StringMatch;
  headers: { name: string; match: StringMatch }[];
  withoutHeaders: { name: string; match: StringMatch }[];
  queryParams: { name: string; match: StringMatch }[];
  ignoreUriCase: boolean;
}

export interface Destination {
  host: string;
  subset?: string;
  /** Istio's `destination.port.number`; must be the Service's port when given. */
  port?: number;
  weight: number;
}

/** A fractional percentage 0–100 as Istio writes it (`percentage.value` or the older integer `percent`). */
export type Percent = number;

export interface HttpRoute {
  name?: string;
  match: HttpMatch[];
  route: Destination[];
  timeoutMs?: number;
  retries?: { attempts: number; perTryTimeoutMs?: number; retryOn?: string };
  fault?: {
    delay?: { fixedDelayMs: number; percent: Percent };
    abort?: { httpStatus?: number; grpcStatus?: string; percent: Percent };
  };
  mirrors: { host: string; subset?: string; percent: Percent }[];
  rewrite?: { uri?: string; authority?: string };
  headers?: HeaderOps;
}

export interface HeaderOps {
  request: { set: Record<string, string>; add: Record<string, string>; remove: string[] };
  response: { set: Record<string, string>; add: Record<string, string>; remove: string[] };
}

export interface TcpRoute {
  route: Destination[];
}

export interface VirtualService {
  kind: 'VirtualService';
  name: string;
  hosts: string[];
  http: HttpRoute[];
  tcp: TcpRoute[];
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
  host: string;
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
