// Names shared by the renderers and the agent: xDS node ids, compose names, file names.

export type ClientKind = 'sidecar' | 'proxyless';

/** xDS node id of a sidecar or of a proxyless app, e.g. `sidecar~node-a~reviews-v1`. */
export function xdsNodeId(kind: ClientKind, node: string, service: string, version: string): string {
  return workloadNodeId(kind, node, `${service}-${version}`);
}

/** The same id from a workload name (`<service>-<version>`, as bootstraps and admin ports are keyed). */
export function workloadNodeId(kind: ClientKind, node: string, workload: string): string {
  return `${kind}~${node}~${workload}`;
}

/** Compose project name; v1 silently strips and v2 refuses characters outside this set. */
export function projectName(node: string): string {
  return `meshlet-${node.toLowerCase().replace(/[^a-z0-9_-]/g, '-')}`;
}

export const SIDECAR_SUFFIX = '-envoy';
export const ENVOY_CONFIG_IN_CONTAINER = '/etc/envoy/envoy.yaml';
export const XDS_BOOTSTRAP_IN_CONTAINER = '/etc/meshlet/xds-bootstrap.json';
