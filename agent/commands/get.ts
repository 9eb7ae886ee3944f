// meshlet get: what etcd holds, as a table for people or as the stored documents (YAML, JSON) for tools.
import type { Issue } from '../core/model/issues.js';
import { formatIssue } from '../core/model/issues.js';
import type { DestinationRule, Destination, Document, Service, VirtualService } from '../core/model/model.js';
import type { DesiredKind } from '../core/model/keys.js';
import { parseDesiredKey } from '../core/model/keys.js';
import { fromEtcdEntry } from '../core/documents/etcd-docs.js';
import { ValidationError } from '../core/errors.js';
import { toYaml } from '../core/render/yaml-emit.js';
import type { EtcdFlags } from './etcd-options.js';
import { readPrefix, withEtcd, type Session, type StoredEntry } from '../adapters/etcd/etcd-store.js';

export const GET_WHAT = ['services', 'routes', 'subsets', 'nodes', 'instances'] as const;
export type GetWhat = (typeof GET_WHAT)[number];
export const GET_OUTPUT = ['table', 'yaml', 'json'] as const;
export type GetOutput = (typeof GET_OUTPUT)[number];

export interface GetArgs extends EtcdFlags {
  what: GetWhat;
  name?: string;
  output: GetOutput;
}

interface Row {
  /** The name `meshlet get <what> NAME` selects by. */
  name: string;
  value: unknown;
  cells: string[];
}

const KIND_WORD: Record<GetWhat, string> = { services: 'Service', routes: 'VirtualService', subsets: 'DestinationRule', nodes: 'node status', instances: 'instance of service' };

export async function getCommand(args: GetArgs, log: (line: string) => void, warn: (line: string) => void): Promise<void> {
  const { header, rows } = await withEtcd(args, (s) => (args.what === 'nodes' ? nodeRows(s, warn) : args.what === 'instances' ? instanceRows(s, warn) : desiredRows(s, args.what, args.output, warn)));
  const shown = args.name === undefined ? rows : rows.filter((r) => r.name === args.name);
  if (args.name !== undefined && shown.length === 0) {
    const where = `etcd under ${args.prefix || '/'}`;
    throw new ValidationError([{ doc: { source: args.name, index: 0, whole: true }, path: '', message: `no ${KIND_WORD[args.what]} named ${JSON.stringify(args.name)} in ${where}${rows.length > 0 ? ` (there: ${[...new Set(rows.map((r) => r.name))].join(', ')})` : ''}` }], 'not found');
  }
  if (args.output === 'json') return log(JSON.stringify(shown.map((r) => r.value), null, 2));
  if (args.output === 'yaml') {
    if (shown.length > 0) log(shown.map((r) => toYaml(r.value).trimEnd()).join('\n---\n'));
    return;
  }
  if (shown.length === 0) return log(`no ${args.what} in etcd under ${args.prefix || '/'}`);
  for (const line of table([header, ...shown.map((r) => r.cells)])) log(line);
}

/** Columns padded to their widest cell, three spaces apart (as kubectl prints). */
export function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]!))).join('   ').trimEnd());
}

function parseJson(e: StoredEntry, warn: (line: string) => void): unknown {
  try {
    return JSON.parse(e.value);
  } catch (err) {
    warn(`warning: skipping ${e.key}: not valid JSON (${(err as Error).message})`);
    return undefined;
  }
}

async function desiredRows(s: Session, what: DesiredKind, output: GetOutput, warn: (line: string) => void): Promise<{ header: string[]; rows: Row[] }> {
  const { entries } = await readPrefix(s, s.k.desiredKind(what));
  const rows: Row[] = [];
  for (const e of entries.values()) {
    const name = parseDesiredKey(s.k.prefix, e.key)?.name;
    const value = parseJson(e, warn);
    if (name === undefined || value === undefined) continue;
    // YAML and JSON show what is stored; a table needs the checked document.
    if (output !== 'table') {
      rows.push({ name, value, cells: [] });
      continue;
    }
    const issues: Issue[] = [];
    const doc = fromEtcdEntry(s.k.prefix, e.key, e.value, e.modRevision, issues);
    if (!doc) {
      for (const i of issues) warn(`warning: skipping a stored document agents reject: ${formatIssue(i)}`);
      continue;
    }
    rows.push({ name, value, cells: cellsOf(doc) });
  }
  const header = what === 'services' ? ['NAME', 'PROTOCOL', 'PORT', 'VERSIONS', 'UPSTREAMS'] : what === 'routes' ? ['NAME', 'HOSTS', 'ROUTES'] : ['NAME', 'HOST', 'SUBSETS'];
  return { header, rows };
}

function cellsOf(doc: Document): string[] {
  if (doc.kind === 'Service') return serviceCells(doc);
  if (doc.kind === 'VirtualService') return routeCells(doc);
  return subsetCells(doc);
}

function serviceCells(s: Service): string[] {
  const versions = s.versions.map((v) => `${v.name}${v.port !== s.port ? `:${v.port}` : ''}(${v.nodes.join(',')})`).join(' ');
  // By service, as the sidecar orders them (the document keeps the order written).
  const upstreams = [...s.upstreams].sort((a, b) => a.service.localeCompare(b.service)).map((u) => `${u.service}(${u.mode}${u.mode === 'proxy' && u.localPort !== undefined ? `:${u.localPort}` : u.mode === 'direct' ? `:${u.address}` : ''})`).join(' ');
  return [s.name, s.protocol, String(s.port), versions, upstreams || '-'];
}

/** `jason-canary: v2; default: v1=90 v3=10` — each route by name (or #n), its destinations by subset. */
function routeCells(vs: VirtualService): string[] {
  const dest = (d: Destination, many: boolean) => {
    const label = d.subset === undefined ? d.host : vs.hosts.length === 1 && d.host === vs.hosts[0] ? d.subset : `${d.host}/${d.subset}`;
    return many ? `${label}=${d.weight}` : label;
  };
  const list = (route: Destination[]) => route.map((d) => dest(d, route.length > 1)).join(' ');
  const http = vs.http.map((r, i) => `${r.name ?? `#${i + 1}`}${r.match.length > 0 ? '[match]' : ''}: ${list(r.route)}`);
  const tcp = vs.tcp.map((r, i) => `tcp#${i + 1}: ${list(r.route)}`);
  return [vs.name, [...vs.hosts].sort().join(','), [...http, ...tcp].join('; ')];
}

function subsetCells(dr: DestinationRule): string[] {
  return [dr.name, dr.host, dr.subsets.map((s) => (s.name === s.version ? s.name : `${s.name}(version=${s.version})`)).join(' ')];
}

async function nodeRows(s: Session, warn: (line: string) => void): Promise<{ header: string[]; rows: Row[] }> {
  const { entries } = await readPrefix(s, s.k.nodes);
  const rows: Row[] = [];
  for (const e of entries.values()) {
    const node = e.key.slice(s.k.nodes.length).split('/');
    if (node.length !== 2 || node[1] !== 'status') continue;
    const value = parseJson(e, warn);
    if (value === undefined) continue;
    // Written by agents of any version: every field may be missing or shaped differently.
    const st = (value !== null && typeof value === 'object' ? value : {}) as Record<string, unknown>;
    const last = st.lastApply;
    const lastAt = typeof last === 'string' ? last : pick(last, 'at', 'time', 'finishedAt');
    const lastOk = pick(last, 'result', 'status') ?? (typeof (last as { ok?: unknown })?.ok === 'boolean' ? ((last as { ok: boolean }).ok ? 'ok' : 'failed') : undefined);
    const rejected = Array.isArray(st.rejected) ? String(st.rejected.length) : typeof st.rejected === 'number' ? String(st.rejected) : '-';
    rows.push({
      name: node[0]!,
      value,
      cells: [node[0]!, pick(st, 'agentVersion', 'version') ?? '-', pick(st, 'desiredRevision') ?? '-', pick(st, 'appliedRevision') ?? '-', [lastAt ?? pick(st, 'lastApplyAt'), lastOk].filter(Boolean).join(' ') || '-', rejected],
    });
  }
  return { header: ['NODE', 'AGENT VERSION', 'DESIRED REV', 'APPLIED REV', 'LAST APPLY', 'REJECTED'], rows };
}

/** The first of `fields` that holds a string or number, as text. */
function pick(obj: unknown, ...fields: string[]): string | undefined {
  if (obj === null || typeof obj !== 'object') return undefined;
  for (const f of fields) {
    const v = (obj as Record<string, unknown>)[f];
    if (typeof v === 'string' || typeof v === 'number') return String(v);
  }
  return undefined;
}

async function instanceRows(s: Session, warn: (line: string) => void): Promise<{ header: string[]; rows: Row[] }> {
  const { entries } = await readPrefix(s, s.k.registry);
  const rows: Row[] = [];
  for (const e of entries.values()) {
    const [service, version, node, ...rest] = e.key.slice(s.k.registry.length).split('/');
    if (!service || !version || !node || rest.length > 0) continue;
    const value = parseJson(e, warn);
    if (value === undefined) continue;
    const inst = (value !== null && typeof value === 'object' ? value : {}) as Record<string, unknown>;
    const address = pick(inst, 'address');
    const port = pick(inst, 'port');
    rows.push({
      name: service,
      value,
      cells: [service, version, node, address ? `${address}${port ? `:${port}` : ''}` : '-', pick(inst, 'container') ?? '-', pick(inst, 'healthySince') ?? '-'],
    });
  }
  return { header: ['SERVICE', 'VERSION', 'NODE', 'ADDRESS', 'CONTAINER', 'HEALTHY SINCE'], rows };
}
