// meshlet apply: documents from files → etcd, checked alone and together with what etcd holds, written in
// one transaction that lands only if the desired state did not change since it was read.
import type { Issue } from '../core/model/issues.js';
import type { Document } from '../core/model/model.js';
import type { MeshOptions } from '../core/documents/validate-mesh.js';
import { duplicateName } from '../core/documents/validate-mesh.js';
import { parseYamlDocuments } from '../core/documents/parse-yaml.js';
import { sortIssues } from '../core/model/issues.js';
import { KIND_OF_DOC, keys } from '../core/model/keys.js';
import { checkDocument } from '../core/documents/documents.js';
import { toEtcdEntry } from '../core/documents/etcd-docs.js';
import { MeshletError, ValidationError } from '../core/errors.js';
import type { EtcdFlags } from './etcd-options.js';
import { checkChange, commitGuarded, readDesired, untilStable, warnStored, withEtcd, type DesiredSnapshot, type DocChange } from '../adapters/etcd/etcd-store.js';
import { readSources } from './inputs.js';

export interface ApplyArgs extends EtcdFlags {
  file: string[];
  dryRun?: boolean;
  xdsPort: number;
  clusterDomain?: string;
}

/** For tests: runs after the read and check, before the write (to change etcd in between). */
export interface ApplyHooks {
  beforeCommit?: (attempt: number) => Promise<void>;
}

interface Incoming {
  doc: Document;
  key: string;
  value: string;
}

type Status = 'added' | 'changed' | 'unchanged';

export async function applyCommand(args: ApplyArgs, log: (line: string) => void, warn: (line: string) => void, hooks: ApplyHooks = {}): Promise<void> {
  // Every document is checked alone first, then with what etcd holds, and all problems are reported together.
  const issues: Issue[] = [];
  const sources = await readSources(args.file, issues);
  const incoming: Incoming[] = [];
  const refused: Refusal[] = [];
  for (const src of sources) {
    for (const raw of parseYamlDocuments(src.source, src.text, issues)) {
      const checked = checkDocument(raw, issues);
      if (checked?.ok) incoming.push({ doc: checked.doc, ...toEtcdEntry(args.prefix, raw) });
      else if (checked) refused.push({ refused: checked, ...(checked.gaps.has('name') ? {} : { key: keys(args.prefix).desiredDoc(KIND_OF_DOC[checked.doc.kind], checked.doc.name) }) });
    }
  }
  const first = new Map<string, Document>();
  for (const { doc, key } of incoming) {
    const other = first.get(key);
    if (other) issues.push({ doc: doc.ref, path: 'metadata.name', message: duplicateName(doc, other) });
    else first.set(key, doc);
  }
  const names = args.file;
  if (issues.length > 0) throw await withStoredProblems(args, names, issues, incoming, refused);

  await withEtcd(args, (s) => untilStable('applying', async (attempt) => {
    const snap = await readDesired(s);
    const { errors, preexisting } = checkIncoming(snap, incoming, [], meshOf(args));
    const replaced = new Set(incoming.map((i) => i.key));
    if (errors.length > 0) throw new ValidationError(sortIssues(errors, names), `the documents do not fit the desired state in etcd (revision ${snap.revision}); nothing was written`);
    const lines = incoming.map((i) => describeChange(i, snap));
    const count = (st: Status) => lines.filter((l) => l.status === st).length;
    const summary = `${count('added')} added, ${count('changed')} changed, ${count('unchanged')} unchanged`;
    const writes = incoming.filter((_, n) => lines[n]!.status !== 'unchanged');
    const print = (last: string) => {
      warnStored(warn, snap, preexisting, replaced);
      for (const l of lines) log(l.text);
      log(last);
    };
    if (args.dryRun) {
      print(`dry run: ${summary}; nothing written (etcd revision ${snap.revision})`);
      return true;
    }
    if (writes.length === 0) {
      print(`applied: ${summary}; nothing to write (etcd revision stays ${snap.revision})`);
      return true;
    }
    await hooks.beforeCommit?.(attempt);
    const revision = await commitGuarded(s, snap.revision, { puts: writes.map((i) => ({ key: i.key, value: i.value })), deletes: [] });
    if (revision === undefined) return undefined;
    print(`applied: ${summary}; written at etcd revision ${revision}`);
    return true;
  }));
}

type Refusal = NonNullable<DocChange['refuse']>[number];

function meshOf(args: { xdsPort: number; clusterDomain?: string }): MeshOptions {
  return { xdsPort: args.xdsPort, ...(args.clusterDomain ? { clusterDomain: args.clusterDomain } : {}) };
}

function checkIncoming(snap: DesiredSnapshot, incoming: Incoming[], refused: Refusal[], mesh: MeshOptions): ReturnType<typeof checkChange> {
  // New documents claim host ports after the stored ones: on a clash, the message lands on the new one.
  for (const d of [...incoming.map((i) => i.doc), ...refused.map((r) => r.refused.doc)]) d.ref = { ...d.ref, revision: snap.revision + 1 };
  // A name given twice is reported by itself; the first keeps the key, as in the set-level checks.
  const put = new Map<string, Document>();
  for (const i of incoming) if (!put.has(i.key)) put.set(i.key, i.doc);
  const checked = checkChange(snap, { put, remove: new Set(), refuse: refused }, mesh);
  return { ...checked, errors: [...namespaceMoves(snap, incoming, refused), ...checked.errors] };
}

/**
 * The key has no namespace: a document with the name of a stored one in another namespace would replace
 * it rather than stand beside it, as it would in Kubernetes. Refused; moving it takes a delete first.
 */
function namespaceMoves(snap: DesiredSnapshot, incoming: Incoming[], refused: Refusal[]): Issue[] {
  const docs = [...incoming.map((i) => ({ key: i.key, doc: i.doc })), ...refused.flatMap((r) => (r.key ? [{ key: r.key, doc: r.refused.doc }] : []))];
  return docs.flatMap(({ key, doc }) => {
    const stored = snap.docs.get(key) ?? snap.refused.get(key)?.doc;
    if (!stored || stored.namespace === doc.namespace) return [];
    return [{ doc: doc.ref, path: 'metadata.namespace', message: `${duplicateName(doc, stored, `etcd ${key}`)}, or delete the stored one first` }];
  });
}

/**
 * The input has problems of its own, so nothing will be written; the documents are still checked against
 * etcd, as far as they could be read, so that every problem is reported at once. When etcd cannot be
 * asked, the problems found so far are the answer (bad input is exit 2 whether etcd is there or not).
 */
async function withStoredProblems(args: ApplyArgs, names: string[], issues: Issue[], incoming: Incoming[], refused: Refusal[]): Promise<ValidationError> {
  const n = (count: number) => `${count} problem${count === 1 ? '' : 's'} found`;
  try {
    const errors = await withEtcd(args, async (s) => checkIncoming(await readDesired(s), incoming, refused, meshOf(args)).errors);
    const all = sortIssues([...issues, ...errors], names);
    return new ValidationError(all, `${n(all.length)}; nothing was written`);
  } catch (err) {
    if (!(err instanceof MeshletError)) throw err;
    const why = err.message.split('\n')[0];
    return new ValidationError(sortIssues(issues, names), `${n(issues.length)}; nothing was written (the documents were not checked against etcd: ${why})`);
  }
}

function describeChange(i: Incoming, snap: DesiredSnapshot): { status: Status; text: string } {
  const stored = snap.entries.get(i.key);
  const status: Status = !stored ? 'added' : stored.value === i.value ? 'unchanged' : 'changed';
  const fields = status === 'changed' ? changedFields(parseOr(stored!.value), JSON.parse(i.value)) : [];
  return { status, text: `${status.padEnd(10)} ${i.key}${fields.length > 0 ? `: ${fields.join(', ')}` : ''}` };
}

function parseOr(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Top-level fields that differ; metadata and spec are opened one level (`spec.versions`, `metadata.labels`). */
export function changedFields(before: unknown, after: unknown): string[] {
  const obj = (v: unknown) => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined);
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const a = obj(before);
  const b = obj(after);
  if (!a || !b) return ['(the stored value is not a document)'];
  const out: string[] = [];
  for (const key of [...new Set([...Object.keys(a), ...Object.keys(b)])].sort()) {
    if (same(a[key], b[key])) continue;
    const [ia, ib] = [obj(a[key]), obj(b[key])];
    if ((key === 'spec' || key === 'metadata') && ia && ib) {
      for (const sub of [...new Set([...Object.keys(ia), ...Object.keys(ib)])].sort()) if (!same(ia[sub], ib[sub])) out.push(`${key}.${sub}`);
    } else {
      out.push(key);
    }
  }
  return out;
}
