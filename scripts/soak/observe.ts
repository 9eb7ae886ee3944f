// What the soak reads to judge the mesh: one etcd snapshot of the prefix, the node's containers as Docker
// inspects them (plus our own probe of each app's health page), the agent's state.json, and the agent's own
// render of the desired state in that snapshot (the same pure functions the agent runs, with its state).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type Docker from 'dockerode';
import type { Etcd3 } from 'etcd3';
import type { Document, Instance } from '../../agent/core/model/model.js';
import type { Issue } from '../../agent/core/model/issues.js';
import { formatIssue } from '../../agent/core/model/issues.js';
import { keys } from '../../agent/core/model/keys.js';
import { projectName } from '../../agent/core/model/ids.js';
import { acceptValid } from '../../agent/core/documents/desired.js';
import { fromEtcdEntry } from '../../agent/core/documents/etcd-docs.js';
import { renderPass, type PassRender } from '../../agent/core/render/plan.js';
import type { Templates } from '../../agent/core/render/render-node.js';
import type { PortRange } from '../../agent/core/render/admin-ports.js';
import type { AgentState } from '../../agent/adapters/files/state-store.js';
import { parseInstance } from '../../agent/adapters/etcd/registry-reader.js';
import { probeHttp } from '../../agent/health/probes.js';

/** Everything about the node under test that does not change during a run. */
export interface Target {
  etcd: Etcd3;
  docker: Docker;
  node: string;
  prefix: string;
  stateDir: string;
  advertiseAddress: string;
  sidecarImage: string;
  xdsPort: number;
  adminPorts: PortRange;
  templates: Templates;
}

export interface Kv {
  key: string;
  value: string;
  lease: string;
  modRevision: number;
}

export interface Observed {
  revision: number;
  kvs: Kv[];
  /** Every node's registrations, as the agent's registry reader parses them. */
  instances: Instance[];
  containers: SeenContainer[];
  state: AgentState;
  rendered: PassRender;
  /** Desired documents the agent's validation would reject (the soak writes none). */
  rejected: string[];
}

export interface SeenContainer {
  id: string;
  service: string;
  role: string;
  status: string;
  running: boolean;
  /** Docker's health status, when the container has a Docker health check. */
  dockerHealth?: string;
  /** Our own probe of the app's health check (apps with an http check only). */
  probe?: { ok: boolean; detail: string };
}

/** Fails after `ms`: a frozen etcd or a stopped dockerd leaves calls hanging, and a check must end. */
export function within<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export async function observe(t: Target): Promise<Observed> {
  const [snap, raw] = await Promise.all([readPrefix(t), listContainers(t)]);
  const state = readState(t.stateDir, t.node);
  const k = keys(t.prefix);
  const instances = snap.kvs.filter((kv) => kv.key.startsWith(k.registry)).map((kv) => parseInstance(kv.key, kv.value, () => {})).filter((i): i is Instance => !!i);
  const { rendered, rejected } = renderDesired(t, snap, state, instances);
  const apps = new Map(rendered.apps.map((a) => [`${a.service}-${a.version}`, a]));
  const containers = await Promise.all(raw.map(async (c) => {
    const app = c.role === 'app' ? apps.get(c.service) : undefined;
    const health = app?.health;
    if (!c.running || health?.kind !== 'http') return c;
    return { ...c, probe: await probeHttp(t.advertiseAddress, app!.port, health.path, 1_000) };
  }));
  return { ...snap, instances, containers, state, rendered, rejected };
}

async function readPrefix(t: Target): Promise<{ revision: number; kvs: Kv[] }> {
  const res = await within('etcd range of the prefix', 5_000, t.etcd.getAll().prefix(`${keys(t.prefix).prefix}/`).exec());
  return {
    revision: Number(res.header.revision),
    kvs: res.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString(), lease: String(kv.lease), modRevision: Number(kv.mod_revision) })),
  };
}

async function listContainers(t: Target): Promise<SeenContainer[]> {
  const list = await within('docker ps', 5_000, t.docker.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${projectName(t.node)}`] } }));
  return Promise.all(list.map(async (c) => {
    const info = await within(`docker inspect ${c.Id.slice(0, 12)}`, 5_000, t.docker.getContainer(c.Id).inspect());
    const s = info.State;
    return {
      id: c.Id,
      service: c.Labels['com.docker.compose.service'] ?? '?',
      role: c.Labels['meshlet.role'] ?? '?',
      status: s.Status,
      running: s.Running && !s.Restarting,
      ...(s.Health?.Status ? { dockerHealth: s.Health.Status } : {}),
    };
  }));
}

function readState(stateDir: string, node: string): AgentState {
  try {
    return JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as AgentState;
  } catch {
    return { node, adminPorts: {} };
  }
}

/** The agent's pass render (reconcile.ts #readDesired + #render) for the desired state in the snapshot. */
function renderDesired(t: Target, snap: { revision: number; kvs: Kv[] }, state: AgentState, instances: Instance[]): { rendered: PassRender; rejected: string[] } {
  const k = keys(t.prefix);
  const docs: Document[] = [];
  const issues: Issue[] = [];
  for (const kv of snap.kvs) {
    if (!kv.key.startsWith(k.desired)) continue;
    const doc = fromEtcdEntry(t.prefix, kv.key, kv.value, kv.modRevision, issues);
    if (doc) docs.push(doc);
  }
  const accepted = acceptValid(docs, { xdsPort: t.xdsPort, nodes: [t.node] });
  const view = { revision: snap.revision, desired: accepted.desired, rejected: [...issues, ...accepted.rejected], instances };
  const paths = { envoyDir: join(t.stateDir, 'envoy'), xdsDir: join(t.stateDir, 'xds') };
  const rendered = renderPass(view, t.templates, state, {
    node: t.node, prefix: k.prefix, advertiseAddress: t.advertiseAddress, sidecarImage: t.sidecarImage, xdsPort: t.xdsPort, adminPorts: t.adminPorts, paths,
  });
  return { rendered, rejected: [...view.rejected, ...rendered.render.issues].map(formatIssue) };
}
