// Everything one node runs, rendered as values: the compose project, bootstraps and each client's xDS resources.
import type { Issue } from '../model/issues.js';
import type { Desired, Instance } from '../model/model.js';
import type { ComposeFile, ComposeOptions } from './render-compose.js';
import { renderCompose } from './render-compose.js';
import { renderSidecarBootstrap, renderXdsBootstrap } from './render-bootstrap.js';
import type { XdsResources } from '../xds/build-xds.js';
import type { ClientPlace } from '../xds/build-xds.js';
import { buildProxylessResources, buildSidecarResources } from '../xds/build-xds.js';
import { localityOf } from '../xds/locality-endpoints.js';
import { sidecarTlsFiles } from '../xds/sidecar-tls-files.js';
import { missingTlsFiles } from '../xds/missing-tls-files.js';
import type { EndpointWarning } from '../xds/build-clusters.js';
import { callerOf } from '../xds/source-labels.js';
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
  /** This node's locality (agent flags --region, --zone), for localityLbSetting. */
  region?: string;
  zone?: string;
  /** Where sidecars see the host's upstream TLS files (default UPSTREAM_TLS_ROOT; '' when Envoy runs on the host). */
  upstreamTlsRoot?: string;
  /** The upstream TLS files found on this host (the agent looks); undefined: not looked for (`meshlet render`). */
  hostFiles?: ReadonlySet<string>;
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
  const place: ClientPlace = { locality: localityOf(opts.node, opts.region, opts.zone), ...(opts.upstreamTlsRoot !== undefined ? { tlsRoot: opts.upstreamTlsRoot } : {}) };
  const tlsMounts: Record<string, string[]> = {};
  for (const w of placed) {
    tlsMounts[w.name + SIDECAR_SUFFIX] = sidecarTlsFiles(w, desired);
    bootstraps[w.name] = renderSidecarBootstrap(w, templates.envoyBootstrap, { node: opts.node, xdsPort: opts.xdsPort, adminPort: ports[w.name]! });
    mountHashes[w.name + SIDECAR_SUFFIX] = contentHash(bootstraps[w.name]);
    snapshots[xdsNodeId('sidecar', opts.node, w.service.name, w.version.name)] = buildSidecarResources(w, desired, instances, warnings, place);
    const xdsUpstreams = w.service.upstreams.filter((u) => u.mode === 'xds').map((u) => u.service);
    if (xdsUpstreams.length > 0) {
      xdsBootstraps[w.name] = renderXdsBootstrap(w, { node: opts.node, xdsPort: opts.xdsPort });
      mountHashes[w.name] = contentHash(xdsBootstraps[w.name]);
      snapshots[xdsNodeId('proxyless', opts.node, w.service.name, w.version.name)] = buildProxylessResources(xdsUpstreams, desired, instances, warnings, callerOf(w.service, w.version.name), place);
    }
  }
  if (opts.hostFiles) {
    const present = opts.hostFiles;
    const used = new Set(Object.values(tlsMounts).flat());
    issues.push(...missingTlsFiles(desired, used, present, opts.node));
    for (const k of Object.keys(tlsMounts)) tlsMounts[k] = tlsMounts[k]!.filter((f) => present.has(f));
  }
  const compose = renderCompose(placed, { app: templates.composeApp, sidecar: templates.composeSidecar }, opts, mountHashes, tlsMounts);
  return { compose, bootstraps, xdsBootstraps, snapshots, adminPorts: ports, warnings, issues };
}
