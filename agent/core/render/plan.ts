// One pass's plan, pure: render from the desired state (no Docker), then decide about compose from what Docker shows.
import type { Issue } from '../model/issues.js';
import type { Desired, HealthCheck, Instance } from '../model/model.js';
import { workloadsOn } from './placement.js';
import type { NodeOptions, NodeRender, Templates } from './render-node.js';
import { renderNode } from './render-node.js';
import { COMPOSE_FILE, renderFiles } from './render-files.js';
import { contentHash } from '../model/canonical.js';

/** The desired state as one pass sees it: the accepted documents at an etcd revision, and every node's instances. */
export interface DesiredView {
  revision: number;
  desired: Desired;
  rejected: Issue[];
  instances: Instance[];
}

/** What Docker shows of one container of the node's project. */
export interface ObservedContainer {
  composeService: string;
  state: string;
  configHash?: string;
}

/** What the agent remembers between passes (state.json) that planning reads and nextState() writes. */
export interface AppliedState {
  adminPorts: Record<string, number>;
  appliedRevision?: number;
  appliedHash?: string;
  appliedContainers?: Record<string, string>;
  renderedHash?: string;
  renderedRevision?: number;
}

/** Everything that needs no Docker: files, xDS snapshots, apps. The agent publishes xDS from this before Docker answers. */
export interface PassRender {
  render: NodeRender;
  /** The desired revision rendered. */
  revision: number;
  /** Files for the state dir, by relative path (compose/…, envoy/…, xds/…). */
  files: Map<string, string>;
  /** Hash of what compose runs: the compose document and every file it mounts. */
  projectHash: string;
  renderedRevision: number;
  images: string[];
  composeServices: string[];
  /** The app instances placed on this node (for health tracking and registration). */
  apps: { service: string; version: string; port: number; health?: HealthCheck }[];
}

/** A render plus the decision about compose: what one pass applies. */
export interface PassPlan extends PassRender {
  /** Why compose must run, or undefined when the project on Docker is already what was rendered. */
  composeReason?: string;
}

export function renderPass(view: DesiredView, templates: Templates, previous: AppliedState, opts: Omit<NodeOptions, 'previousAdminPorts'>): PassRender {
  const render = renderNode(view.desired, view.instances, templates, { ...opts, previousAdminPorts: previous.adminPorts });
  const projectHash = contentHash({ compose: render.compose, bootstraps: render.bootstraps, xds: render.xdsBootstraps });
  // The header names the revision at which the project last changed, so unrelated changes don't touch the file.
  const renderedRevision = previous.renderedHash === projectHash && previous.renderedRevision !== undefined ? previous.renderedRevision : view.revision;
  const files = stateDirFiles(render, renderedRevision, opts.node);
  const composeServices = Object.keys(render.compose.services).sort();
  const images = [...new Set(Object.values(render.compose.services).map((s) => String(s.image)))].sort();
  const apps = workloadsOn(view.desired, opts.node)
    .filter((w) => render.adminPorts[w.name] !== undefined)
    .map((w) => ({ service: w.service.name, version: w.version.name, port: w.version.port, ...(w.version.health ? { health: w.version.health } : {}) }));
  return { render, revision: view.revision, files, projectHash, renderedRevision, images, composeServices, apps };
}

/** The files of the state dir (compose/…, envoy/…, xds/…), their header naming `renderedRevision`. */
export function stateDirFiles(render: NodeRender, renderedRevision: number, node: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const [rel, text] of renderFiles(render, `etcd revision ${renderedRevision} for node ${node}`)) {
    if (rel === COMPOSE_FILE) files.set(`compose/${COMPOSE_FILE}`, text);
    else if (!rel.includes('~')) files.set(rel, text); // per-client xDS dumps are served over xDS, not written
  }
  return files;
}

/** The pass's plan: the render, and whether compose must run given the containers Docker lists. */
export function planPass(rendered: PassRender, containers: ObservedContainer[], previous: AppliedState): PassPlan {
  const composeReason = composeReasonFor(rendered.projectHash, rendered.composeServices, containers, previous);
  return composeReason ? { ...rendered, composeReason } : { ...rendered };
}

function composeReasonFor(hash: string, expected: string[], containers: ObservedContainer[], previous: AppliedState): string | undefined {
  if (previous.appliedHash !== hash) return previous.appliedHash ? 'the rendered project changed' : 'first apply';
  // While compose recreates a container, the old one briefly shows too (stopped, renamed): a service is fine
  // when one of its containers runs with the config compose last applied.
  const byService = new Map<string, ObservedContainer[]>();
  for (const c of containers) byService.set(c.composeService, [...(byService.get(c.composeService) ?? []), c]);
  for (const svc of expected) {
    const list = byService.get(svc) ?? [];
    if (list.length === 0) return `drift: container of ${svc} is missing`;
    const live = list.filter((c) => c.state === 'running' || c.state === 'restarting');
    if (live.length === 0) return `drift: container of ${svc} is ${list[0]!.state}`;
    const applied = previous.appliedContainers?.[svc];
    if (applied && !live.some((c) => !c.configHash || c.configHash === applied)) return `drift: container of ${svc} was changed outside meshlet`;
  }
  for (const c of containers) if (!expected.includes(c.composeService)) return `drift: container of ${c.composeService} is not in the project`;
  return undefined;
}
