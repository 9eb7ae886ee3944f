// meshlet route / promote / rollback: canary shifts on the catch-all (last) route of a service's
// VirtualService. The new document is checked like any other, and written by compare-and-swap on the route
// key together with the weights it replaces, which `rollback` restores.
import type { Issue } from '../core/model/issues.js';
import type { Service, VirtualService } from '../core/model/model.js';
import type { RawDoc } from '../core/documents/parse-yaml.js';
import { validateDocument, toDesired } from '../core/documents/documents.js';
import { canonicalJson } from '../core/model/canonical.js';
import { subsetsOf } from '../core/xds/subsets.js';
import { suggestion } from '../core/documents/did-you-mean.js';
import { ConflictError, ValidationError } from '../core/errors.js';
import type { ICompare } from 'etcd3';
import type { EtcdFlags } from './etcd-options.js';
import { DEFAULT_NAMESPACE } from '../core/documents/host-names.js';
import { checkChange, commitGuarded, modRevisionOf, readDesired, sameMod, untilStable, withEtcd, type DesiredSnapshot, type Session } from '../adapters/etcd/etcd-store.js';

export interface CanaryArgs extends EtcdFlags {
  service: string;
}

export interface CanaryHooks {
  /** For tests: runs after the read and check, before the write (to change etcd in between). */
  beforeCommit?: (attempt: number) => Promise<void>;
}

/** An Istio destination as the operator wrote it. */
interface RawDest {
  destination: { host: string; subset?: string; port?: { number: number } };
  weight?: number;
}

/** One step of the rollback history, newest last: the catch-all destinations a verb replaced, or that it created the route. */
type HistoryEntry = { route: RawDest[] } | { created: true };
const HISTORY_DEPTH = 20;

type Obj = Record<string, unknown>;

interface Target {
  snap: DesiredSnapshot;
  svc: Service;
  /** The route key and name: the VirtualService routing the service, or the one `route` would create. */
  key: string;
  name: string;
  /** The stored document (operator's form), undefined when there is none yet. */
  body: Obj | undefined;
  modRevision: number;
  list: 'http' | 'tcp';
  historyKey: string;
  history: HistoryEntry[];
  historyModRevision: number;
}

type Plan =
  | { op: 'put'; body: Obj; old: RawDest[] | undefined; now: RawDest[]; history: HistoryEntry[] }
  | { op: 'delete'; old: RawDest[] | undefined; history: HistoryEntry[] }
  | { op: 'unchanged'; old: RawDest[] };

export async function routeCommand(args: CanaryArgs & { weights: string }, log: (line: string) => void, warn: (line: string) => void, hooks: CanaryHooks = {}): Promise<void> {
  const weights = parseWeights(args.weights);
  await shift(args, 'route', log, warn, hooks, (t) => setCatchAll(t, weights.map((w) => ({ subset: resolveSubset(t, w.subset), weight: w.weight }))));
}

export async function promoteCommand(args: CanaryArgs & { version: string }, log: (line: string) => void, warn: (line: string) => void, hooks: CanaryHooks = {}): Promise<void> {
  await shift(args, 'promote', log, warn, hooks, (t) => {
    const known = subsetsOf(t.svc, toDesired([...t.snap.docs.values()]));
    if (!known.some((s) => s.name === args.version || s.version === args.version)) {
      throw new ValidationError([{ doc: { source: 'VERSION', index: 0, whole: true }, path: '', message: `Service ${t.svc.name} has no subset or version ${JSON.stringify(args.version)}${suggestion(args.version, known.map((s) => s.name))}; subsets: ${known.map((s) => (s.name === s.version ? s.name : `${s.name} (version ${s.version})`)).join(', ')}` }], 'nothing to promote');
    }
    return setCatchAll(t, [{ subset: resolveSubset(t, args.version), weight: 100 }]);
  });
}

export async function rollbackCommand(args: CanaryArgs, log: (line: string) => void, warn: (line: string) => void, hooks: CanaryHooks = {}): Promise<void> {
  await shift(args, 'rollback', log, warn, hooks, (t) => {
    const last = t.history.at(-1);
    const old = t.body ? catchAll(t.body, t.list) : undefined;
    if (!last) {
      throw new ValidationError([{ doc: { source: t.historyKey, index: 0, whole: true }, path: '', message: `no rollback history for Service ${t.svc.name}: meshlet route or promote has not changed its weights since the route was applied, or every change was rolled back already` }], 'nothing to roll back');
    }
    if (!t.body) throw new ValidationError([{ doc: { source: t.key, index: 0, whole: true }, path: '', message: `the VirtualService of Service ${t.svc.name} is gone; there are no weights to roll back` }], 'nothing to roll back');
    const history = t.history.slice(0, -1);
    if ('created' in last) return { op: 'delete', old, history };
    return { op: 'put', body: withCatchAll(t.body, t.list, last.route), old, now: last.route, history };
  });
}

async function shift(args: CanaryArgs, verb: string, log: (line: string) => void, warn: (line: string) => void, hooks: CanaryHooks, decide: (t: Target) => Plan): Promise<void> {
  await withEtcd(args, (s) => untilStable(`meshlet ${verb} ran`, async (attempt) => {
    const t = await readTarget(s, args.service, warn);
    const plan = decide(t);
    const last = t.body ? routesOf(t.body, t.list) : [];
    const where = `VirtualService ${t.name}, ${t.list} route ${last.length || 1}${typeof last.at(-1)?.name === 'string' ? ` (${JSON.stringify(last.at(-1)!.name)})` : ''}`;
    if (plan.op === 'unchanged') {
      log(`${where}: weights already ${weightsText(plan.old)}; nothing written (etcd revision ${t.snap.revision})`);
      return true;
    }
    if (plan.op === 'put') checkNew(t, plan.body);
    const compares: ICompare[] = [
      t.body ? sameMod(t.key, t.modRevision) : { key: Buffer.from(t.key), target: 'Create', result: 'Equal', create_revision: 0 },
      sameMod(t.historyKey, t.historyModRevision),
    ];
    const history = { key: t.historyKey, value: JSON.stringify(plan.history) };
    await hooks.beforeCommit?.(attempt);
    const revision = await commitGuarded(s, t.snap.revision, plan.op === 'put'
      ? { puts: [{ key: t.key, value: canonicalJson(plan.body) }, history], deletes: [], compares }
      : { puts: [history], deletes: [t.key], compares });
    if (revision === undefined) {
      if ((await modRevisionOf(s, t.key)) !== t.modRevision || (await modRevisionOf(s, t.historyKey)) !== t.historyModRevision) {
        throw new ConflictError(`someone else changed VirtualService ${t.name} (or its rollback history) while meshlet ${verb} ran; nothing was written. Check it with meshlet get routes ${t.name} and retry`);
      }
      return undefined; // something else under desired/ changed: read and check again
    }
    log(t.body ? `${where}:` : `VirtualService ${t.name} created for Service ${t.svc.name}:`);
    log(`  old weights: ${plan.old ? weightsText(plan.old) : 'none (no VirtualService: round robin over all versions)'}`);
    log(`  new weights: ${plan.op === 'put' ? weightsText(plan.now) : `none (VirtualService ${t.name} deleted, as before meshlet route created it: round robin over all versions)`}`);
    const kept = verb === 'rollback' ? `${plan.history.length} older step${plan.history.length === 1 ? '' : 's'} left to roll back` : 'the old weights are kept for meshlet rollback';
    log(`written at etcd revision ${revision}; ${kept}`);
    return true;
  }));
}

async function readTarget(s: Session, service: string, warn: (line: string) => void): Promise<Target> {
  const snap = await readDesired(s);
  const notFound = (message: string) => new ValidationError([{ doc: { source: service, index: 0, whole: true }, path: '', message }], 'cannot shift traffic');
  const services = [...snap.docs.values()].filter((d): d is Service => d.kind === 'Service');
  const svc = services.find((d) => d.name === service);
  if (!svc) throw notFound(`no Service named ${JSON.stringify(service)} in etcd${suggestion(service, services.map((d) => d.name))}`);
  const found = [...snap.docs].find((e): e is [string, VirtualService] => e[1].kind === 'VirtualService' && e[1].hosts.includes(service));
  const key = found?.[0] ?? s.k.desiredDoc('routes', service);
  const name = found?.[1].name ?? service;
  const entry = snap.entries.get(key);
  if (!found && entry) {
    const doc = snap.docs.get(key) as VirtualService | undefined;
    const why = doc ? `it routes ${doc.hosts.join(', ')}, not ${service}` : `it is not valid: ${snap.problems.filter((p) => p.doc.source === key).map((p) => `${p.path ? `${p.path}: ` : ''}${p.message}`).join('; ')}`;
    throw notFound(`VirtualService ${service} (${key}) exists but ${why}; fix it with meshlet apply`);
  }
  const historyKey = s.k.routeHistory(name);
  const res = await s.etcd.get(historyKey).options(s.call()).exec();
  const kv = res.kvs[0];
  let history: HistoryEntry[] = [];
  if (kv) {
    try {
      const parsed: unknown = JSON.parse(kv.value.toString());
      if (!Array.isArray(parsed)) throw new Error('not a list');
      history = parsed as HistoryEntry[];
    } catch (err) {
      warn(`warning: ignoring the rollback history in ${historyKey}: ${(err as Error).message}`);
    }
  }
  return {
    snap, svc, key, name,
    body: entry ? (JSON.parse(entry.value) as Obj) : undefined,
    modRevision: entry?.modRevision ?? 0,
    list: svc.protocol === 'tcp' ? 'tcp' : 'http',
    historyKey, history,
    historyModRevision: Number(kv?.mod_revision ?? 0),
  };
}

/** Runs the new document through the same checks as `meshlet apply`: alone, then with the rest of etcd. */
function checkNew(t: Target, body: Obj): void {
  const issues: Issue[] = [];
  const raw: RawDoc = { ref: { source: t.key, index: 0, kind: 'VirtualService', name: t.name, revision: t.snap.revision + 1 }, body };
  const doc = validateDocument(raw, issues);
  if (!doc) throw new ValidationError(issues, `the new weights for ${t.svc.name} are not valid; nothing was written`);
  const { errors } = checkChange(t.snap, { put: new Map([[t.key, doc]]), remove: new Set() }, { xdsPort: 15010 });
  if (errors.length > 0) throw new ValidationError(errors, `the new weights for ${t.svc.name} do not fit the desired state in etcd; nothing was written`);
}

function setCatchAll(t: Target, weights: { subset: string; weight: number }[]): Plan {
  const old = t.body ? catchAll(t.body, t.list) : undefined;
  // Keep the destination port the operator wrote, if any.
  const port = old?.find((d) => d.destination?.host?.split('.')[0] === t.svc.name && d.destination.port)?.destination.port;
  // A short host is relative to the VirtualService's namespace: name the Service's when the two differ.
  const vsNamespace = (t.body?.metadata as Obj | undefined)?.namespace ?? t.svc.namespace;
  const host = vsNamespace === t.svc.namespace ? t.svc.name : `${t.svc.name}.${t.svc.namespace}`;
  const now: RawDest[] = weights.map((w) => ({ destination: { host, subset: w.subset, ...(port ? { port } : {}) }, weight: w.weight }));
  if (old && canonicalJson(old) === canonicalJson(now)) return { op: 'unchanged', old };
  const body = t.body ? withCatchAll(t.body, t.list, now) : {
    apiVersion: 'networking.istio.io/v1',
    kind: 'VirtualService',
    metadata: { name: t.name, ...(t.svc.namespace !== DEFAULT_NAMESPACE ? { namespace: t.svc.namespace } : {}) },
    spec: { hosts: [t.svc.name], [t.list]: [{ route: now }] },
  };
  const step: HistoryEntry = old ? { route: old } : { created: true };
  return { op: 'put', body, old, now, history: [...t.history, step].slice(-HISTORY_DEPTH) };
}

function routesOf(body: Obj, list: 'http' | 'tcp'): Obj[] {
  const routes = (body.spec as Obj | undefined)?.[list];
  return Array.isArray(routes) ? (routes as Obj[]) : [];
}

function catchAll(body: Obj, list: 'http' | 'tcp'): RawDest[] | undefined {
  const route = routesOf(body, list).at(-1)?.route;
  return Array.isArray(route) ? (route as RawDest[]) : undefined;
}

/** A copy of the document with the last route's destinations replaced; routes above it are left as they are. */
function withCatchAll(body: Obj, list: 'http' | 'tcp', dests: RawDest[]): Obj {
  const copy = structuredClone(body);
  const spec = ((copy.spec as Obj | undefined) ?? (copy.spec = {})) as Obj;
  const routes = Array.isArray(spec[list]) ? (spec[list] as Obj[]) : (spec[list] = []) as Obj[];
  if (routes.length === 0) routes.push({ route: dests });
  else routes[routes.length - 1] = { ...routes.at(-1), route: dests };
  return copy;
}

/** A subset named as given, else the subset that selects the version of that name (the name as is when neither). */
function resolveSubset(t: Target, name: string): string {
  const known = subsetsOf(t.svc, toDesired([...t.snap.docs.values()]));
  return known.find((s) => s.name === name)?.name ?? known.find((s) => s.version === name)?.name ?? name;
}

export function parseWeights(text: string): { subset: string; weight: number }[] {
  const bad = (message: string) => new ValidationError([{ doc: { source: '--weights', index: 0, whole: true }, path: '', message }]);
  const parts = text.split(',').map((p) => p.trim()).filter((p) => p !== '');
  if (parts.length === 0) throw bad('expected SUBSET=WEIGHT pairs, e.g. v1=90,v2=10');
  const out: { subset: string; weight: number }[] = [];
  for (const p of parts) {
    const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)=(\d{1,3})$/.exec(p);
    if (!m || Number(m[2]) > 100) throw bad(`expected SUBSET=WEIGHT with a weight from 0 to 100, e.g. v1=90,v2=10; got ${JSON.stringify(p)}`);
    if (out.some((o) => o.subset === m[1])) throw bad(`${m[1]} is given twice`);
    out.push({ subset: m[1]!, weight: Number(m[2]) });
  }
  return out;
}

function weightsText(dests: RawDest[]): string {
  return dests.map((d) => `${d.destination?.subset ?? d.destination?.host}=${d.weight ?? 100}`).join(',');
}
