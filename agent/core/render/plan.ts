// One pass's plan, pure: from the desired state and what Docker shows, the files to write and whether compose must run.
import type { Issue } from '../model/issues.js';
import type { Desired, HealthCheck, Instance } from '../model/model.js';
import { workloadsOn } from './placement.js';
import type { NodeOptions, NodeRender, Templates } from './render-node.js';
import { renderNode } from './render-node.js';
import { COMPOSE_FILE, renderFiles } from './render-files.js';
import { contentHash } from '../model/canonical.js';

/** What Docker shows of one container of the node's project. */
export interface ObservedContainer {
  composeService: string;
  state: string;
  configHash?: string;
}

export interface Observed {
  revision: number;
  desired: Desired;
  rejected: Issue[];
  instances: Instance[];
  containers: ObservedContainer[];
}

export interface Previous {
  adminPorts: Record<string, number>;
  appliedHash?: string;
  appliedContainers?: Record<string, string>;
  renderedHash?: string;
  renderedRevision?: number;
}

export interface Plan {
  render: NodeRender;
  /** Files for the state dir, by relative path (compose/…, envoy/…, xds/…). */
  files: Map<string, string>;
  /** Hash of what compose runs: the compose document and every file it mounts. */
  projectHash: string;
  renderedRevision: number;
  /** Why compose must run, or undefined when the project on Docker is already what was rendered. */
  composeReason?: string;
  images: string[];
  composeServices: string[];
  /** The app instances placed on this node (for health tracking and registration). */
  apps: { service: string; version: string; port: number; health?: HealthCheck }[];
}

/** Renders the node and decides about compose from what Docker shows (both steps; see planRender). */
export function planPass(observed: Observed, templates: Templates, previous: Previous, opts: Omit<NodeOptions, 'previousAdminPorts'>): Plan {
  const plan = planRender(observed, templates, previous, opts);
  plan.composeReason = composeReasonFor(plan, observed.containers, previous);
  return plan;
}

/** Everything that needs no Docker: files, xDS snapshots, apps. The agent publishes xDS from this before Docker answers. */
export function planRender(observed: Omit<Observed, 'containers'>, templates: Templates, previous: Previous, opts: Omit<NodeOptions, 'previousAdminPorts'>): Plan {
  const render = renderNode(observed.desired, observed.instances, templates, { ...opts, previousAdminPorts: previous.adminPorts });
  const projectHash = contentHash({ compose: render.compose, bootstraps: render.bootstraps, xds: render.xdsBootstraps });
  // The header names the revision at which the project last changed, so unrelated changes don't touch the file.
  const renderedRevision = previous.renderedHash === projectHash && previous.renderedRevision !== undefined ? previous.renderedRevision : observed.revision;
  const files = new Map<string, string>();
  for (const [rel, text] of renderFiles(render, `etcd revision ${renderedRevision} for node ${opts.node}`)) {
    if (rel === COMPOSE_FILE) files.set(`compose/${COMPOSE_FILE}`, text);
    else if (!rel.includes('~')) files.set(rel, text); // per-client xDS dumps are served over xDS, not written
  }
  const composeServices = Object.keys(render.compose.services).sort();
  const images = [...new Set(Object.values(render.compose.services).map((s) => String(s.image)))].sort();
  const apps = workloadsOn(observed.desired, opts.node)
    .filter((w) => render.adminPorts[w.name] !== undefined)
    .map((w) => ({ service: w.service.name, version: w.version.name, port: w.version.port, ...(w.version.health ? { health: w.version.health } : {}) }));
  return { render, files, projectHash, renderedRevision, images, composeServices, apps };
}

export function composeReasonFor(plan: Plan, containers: ObservedContainer[], previous: Previous): string | undefined {
  return composeReason(plan.projectHash, plan.composeServices, containers, previous);
}

function composeReason(hash: string, expected: string[], containers: ObservedContainer[], previous: Previous): string | undefined {
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
