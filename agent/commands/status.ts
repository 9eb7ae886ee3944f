// meshlet status: one view of the nodes (lease, drain, revisions, last apply, sidecars) and of the instances
// (healthy registered / placed, per service and version).
import { stringify } from 'yaml';
import { placedOn } from '../core/model/model.js';
import { ValidationError } from '../core/errors.js';
import { toDesired } from '../core/documents/documents.js';
import { instancesFromRegistry } from '../adapters/etcd/registry-reader.js';
import type { ContainerProblem } from '../xds/sidecar-status.js';
import type { EtcdFlags } from './etcd-options.js';
import { readDesired, readPrefix, withEtcd } from '../adapters/etcd/etcd-store.js';

export interface StatusArgs extends EtcdFlags {
  node?: string;
  output: 'table' | 'json' | 'yaml';
}

interface NodeRow {
  node: string;
  agent: 'up' | 'down';
  leaseTtlLeft?: number;
  drained: boolean;
  desiredRevision?: number;
  appliedRevision?: number;
  lastApply?: { ok: boolean; at: string; message?: string };
  rejected: number;
  /** The node's sidecars (connected or not), then any other xDS client of its agent (proxyless apps). */
  sidecars: SidecarRow[];
  /** Containers that are not running or are unhealthy, with their exit code and last log lines. */
  containers: ContainerProblem[];
}

interface SidecarRow {
  id: string;
  workload?: string;
  admin?: string;
  connected: boolean;
  acked: Record<string, string>;
  nack?: { type: string; version: string; message: string; at?: string };
}

interface InstanceRow {
  service: string;
  version: string;
  healthy: number;
  placed: number;
  nodes: string[];
}

export async function statusCommand(args: StatusArgs, out: (l: string) => void, warn: (l: string) => void): Promise<void> {
  const view = await withEtcd(args, async (s) => {
    const nodesPrefix = await readPrefix(s, s.k.nodes);
    const registry = await readPrefix(s, s.k.registry);
    const desired = await readDesired(s);
    const statuses = new Map<string, Record<string, unknown>>();
    const drained = new Set<string>();
    for (const e of nodesPrefix.entries.values()) {
      const [node, leaf] = e.key.slice(s.k.nodes.length).split('/');
      if (!node) continue;
      if (leaf === 'drain') drained.add(node);
      if (leaf !== 'status') continue;
      try {
        statuses.set(node, JSON.parse(e.value) as Record<string, unknown>);
      } catch {
        warn(`warning: ${e.key}: not valid JSON; skipped`);
      }
    }
    const names = [...new Set([...statuses.keys(), ...drained])].filter((n) => !args.node || n === args.node).sort();
    if (args.node && names.length === 0) {
      throw new ValidationError([{ doc: { source: '--node', index: 0, whole: true }, path: '', message: `no agent has reported for node ${args.node}, and it is not drained` }]);
    }
    const nodes: NodeRow[] = [];
    for (const node of names) {
      const st = statuses.get(node);
      let ttl: number | undefined;
      if (st && typeof st.lease === 'string' && /^\d+$/.test(st.lease)) {
        ttl = Number((await s.etcd.leaseClient.leaseTimeToLive({ ID: st.lease, keys: false }, s.call()).catch(() => ({ TTL: '-1' }))).TTL);
      }
      nodes.push({
        node,
        agent: st && ttl !== undefined && ttl > 0 ? 'up' : 'down',
        ...(ttl !== undefined && ttl > 0 ? { leaseTtlLeft: ttl } : {}),
        drained: drained.has(node) || st?.drained === true,
        desiredRevision: st?.desiredRevision as number | undefined,
        appliedRevision: st?.appliedRevision as number | undefined,
        lastApply: st?.lastApply as NodeRow['lastApply'],
        rejected: Array.isArray(st?.rejected) ? st.rejected.length : 0,
        sidecars: sidecarRows(st),
        containers: Array.isArray(st?.containers) ? (st.containers as ContainerProblem[]) : [],
      });
    }
    const state = toDesired([...desired.docs.values()]);
    const reporting = [...statuses.keys()];
    const instances: InstanceRow[] = [];
    const healthy = instancesFromRegistry(s.k.prefix, registry.entries, (msg, f) => warn(`warning: ${msg} ${JSON.stringify(f ?? {})}`));
    for (const svc of state.services) {
      for (const v of svc.versions) {
        const placed = v.nodes.includes('*') ? reporting.length : v.nodes.filter((n) => n !== '*').length;
        const regs = healthy.filter((i) => i.service === svc.name && i.version === v.name);
        if (args.node && !regs.some((r) => r.node === args.node) && !placedOn(v, args.node)) continue;
        instances.push({ service: svc.name, version: v.name, healthy: regs.length, placed, nodes: regs.map((r) => r.node).sort() });
      }
    }
    return { revision: desired.revision, nodes, instances };
  });
  if (args.output === 'json') return out(JSON.stringify(view, null, 2));
  if (args.output === 'yaml') return out(stringify(view).trimEnd());
  out(table(['NODE', 'AGENT', 'LEASE TTL', 'DRAINED', 'DESIRED REV', 'APPLIED REV', 'LAST APPLY', 'REJECTED', 'SIDECARS'], view.nodes.map((n) => [
    n.node, n.agent, n.leaseTtlLeft !== undefined ? `${n.leaseTtlLeft}s` : '-', n.drained ? 'yes' : 'no', String(n.desiredRevision ?? '-'), String(n.appliedRevision ?? '-'),
    n.lastApply ? (n.lastApply.ok ? `ok ${n.lastApply.at}` : `error: ${n.lastApply.message ?? ''}`) : '-', String(n.rejected),
    n.sidecars.length === 0 ? '-' : `${n.sidecars.filter((c) => c.connected).length}/${n.sidecars.length} connected${n.sidecars.some((c) => c.nack) ? ', NACK' : ''}`,
  ])));
  const sidecars = view.nodes.flatMap((n) => n.sidecars.map((c) => ({ node: n.node, ...c })));
  if (sidecars.length > 0) {
    out('');
    const v = (x?: string) => (x ? x.slice(0, 8) : '-');
    out(table(['NODE', 'SIDECAR', 'CONNECTED', 'ADMIN', 'CDS', 'EDS', 'LDS', 'RDS', 'LAST NACK'], sidecars.map((c) => [
      c.node, c.id, c.connected ? 'yes' : 'no', c.admin ?? '-', v(c.acked.cds), v(c.acked.eds), v(c.acked.lds), v(c.acked.rds), c.nack ? `${c.nack.type} ${v(c.nack.version)}` : '-',
    ])));
    // Envoy's messages are long: each on its own line under the table.
    for (const c of sidecars) if (c.nack) out(`  ${c.id} refused ${c.nack.type} ${c.nack.version}${c.nack.at ? ` at ${c.nack.at}` : ''}: ${oneLine(c.nack.message)}`);
  }
  const down = view.nodes.flatMap((n) => n.containers.map((c) => ({ node: n.node, ...c })));
  if (down.length > 0) {
    out('');
    out(table(['NODE', 'CONTAINER', 'STATE', 'EXIT CODE', 'RESTARTS'], down.map((c) => [
      c.node, c.composeService || c.name, c.health === 'unhealthy' ? `${c.state} (unhealthy)` : c.state, c.exitCode !== undefined ? String(c.exitCode) : '-', String(c.restarts),
    ])));
    for (const c of down) for (const line of c.logTail) out(`  ${c.composeService || c.name} | ${line}`);
  }
  out('');
  out(table(['SERVICE', 'VERSION', 'HEALTHY', 'NODES'], view.instances.map((i) => [i.service, i.version, `${i.healthy}/${i.placed}`, i.nodes.join(',') || '-'])));
}

type XdsEntry = { connected?: boolean; acked?: Record<string, string>; nack?: { type?: string; version?: string; message?: string; at?: string } };
const SHORT: Record<string, string> = { Cluster: 'cds', ClusterLoadAssignment: 'eds', Listener: 'lds', RouteConfiguration: 'rds' };

// The agent's `sidecars` (every sidecar it runs, with its admin address), then the other clients of its `xds`.
function sidecarRows(st: Record<string, unknown> | undefined): SidecarRow[] {
  const rows: SidecarRow[] = Array.isArray(st?.sidecars) ? (st.sidecars as SidecarRow[]).map((c) => ({ ...c, acked: c.acked ?? {} })) : [];
  const known = new Set(rows.map((r) => r.id));
  const xds = (st?.xds ?? {}) as Record<string, XdsEntry>;
  for (const [id, c] of Object.entries(xds).sort()) {
    if (known.has(id)) continue;
    rows.push({
      id,
      connected: c.connected === true,
      acked: Object.fromEntries(Object.entries(c.acked ?? {}).map(([t, ver]) => [SHORT[t] ?? t, ver])),
      ...(c.nack ? { nack: { type: SHORT[c.nack.type ?? ''] ?? c.nack.type ?? '', version: c.nack.version ?? '', message: c.nack.message ?? '', ...(c.nack.at ? { at: c.nack.at } : {}) } } : {}),
    });
  }
  return rows;
}

/** Envoy's NACK messages may hold several lines (one per refused resource): one line in the table view. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}
