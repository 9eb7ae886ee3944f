// Everything one node runs, rendered as values: the compose project, bootstraps and each client's xDS resources.
import type { Issue } from '../model/issues.js';
import type { Desired, Instance } from '../model/model.js';
import type { ComposeFile, ComposeOptions } from './render-compose.js';
import { renderCompose } from './render-compose.js';
import { renderSidecarBootstrap, renderXdsBootstrap } from './render-bootstrap.js';
import type { XdsResources } from '../xds/build-xds.js';
import { buildProxylessResources, buildSidecarResources } from '../xds/build-xds.js';
import type { EndpointWarning } from '../xds/build-clusters.js';
import type { PortRange } from './admin-ports.js';
import { allocateAdminPorts } from './admin-ports.js';
import { portsInUse, workloadsOn } from './placement.js';
import { SIDECAR_SUFFIX, xdsNodeId } from '../model/ids.js';
import { contentHash } from '../model/canonical.js';
import type { Json } from '../xds/envoy-types.js';

export interface Templates {
  composeApp: Json;
  composeSidecar: Json;
  envoyBootstrap: Json;
}

export interface NodeOptions extends ComposeOptions {
  xdsPort: number;
  adminPorts: PortRange;
  /** Admin ports assigned by an earlier render (state.json), kept where still valid. */
  previousAdminPorts: Readonly<Record<string, number>>;
}

export interface NodeRender {
  compose: ComposeFile;
  /** Envoy bootstrap per sidecar, by workload name (`reviews-v1`). */
  bootstraps: Record<string, Json>;
  /** gRPC xDS bootstrap per workload that has xds-mode upstreams. */
  xdsBootstraps: Record<string, Json>;
  /** xDS resources per client node id. */
  snapshots: Record<string, XdsResources>;
  adminPorts: Record<string, number>;
  warnings: EndpointWarning[];
  issues: Issue[];
}

/** Pure: the same desired state, instances, templates and options give the same values. */
export function renderNode(desired: Desired, instances: Instance[], templates: Templates, opts: NodeOptions): NodeRender {
  const workloads = workloadsOn(desired, opts.node);
  const { ports, unplaced } = allocateAdminPorts(workloads.map((w) => w.name), opts.previousAdminPorts, opts.adminPorts, portsInUse(workloads, opts.xdsPort));
  const issues: Issue[] = unplaced.map((name) => {
    const w = workloads.find((x) => x.name === name)!;
    return { doc: w.service.ref, path: `spec.versions.${w.version.name}`, message: `no free sidecar admin port in ${opts.adminPorts.from}-${opts.adminPorts.to} on node ${opts.node}` };
  });
  const placed = workloads.filter((w) => ports[w.name] !== undefined);
  const warnings: EndpointWarning[] = [];
  const bootstraps: Record<string, Json> = {};
  const xdsBootstraps: Record<string, Json> = {};
  const snapshots: Record<string, XdsResources> = {};
  const mountHashes: Record<string, string> = {};
  for (const w of placed) {
    bootstraps[w.name] = renderSidecarBootstrap(w, templates.envoyBootstrap, { node: opts.node, xdsPort: opts.xdsPort, adminPort: ports[w.name]! });
    mountHashes[w.name + SIDECAR_SUFFIX] = contentHash(bootstraps[w.name]);
    snapshots[xdsNodeId('sidecar', opts.node, w.service.name, w.version.name)] = buildSidecarResources(w, desired, instances, warnings);
    const xdsUpstreams = w.service.upstreams.filter((u) => u.mode === 'xds').map((u) => u.service);
    if (xdsUpstreams.length > 0) {
      xdsBootstraps[w.name] = renderXdsBootstrap(w, { node: opts.node, xdsPort: opts.xdsPort });
      mountHashes[w.name] = contentHash(xdsBootstraps[w.name]);
      snapshots[xdsNodeId('proxyless', opts.node, w.service.name, w.version.name)] = buildProxylessResources(xdsUpstreams, desired, instances, warnings, w.service.namespace);
    }
  }
  const compose = renderCompose(placed, { app: templates.composeApp, sidecar: templates.composeSidecar }, opts, mountHashes);
  return { compose, bootstraps, xdsBootstraps, snapshots, adminPorts: ports, warnings, issues };
}
