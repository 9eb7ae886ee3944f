// meshlet apply: documents from files → etcd, checked alone and together with what etcd holds, written in
// one transaction that lands only if the desired state did not change since it was read.
import type { Issue } from '../core/model/issues.js';
import type { Document } from '../core/model/model.js';
import { parseYamlDocuments } from '../core/documents/parse-yaml.js';
import { validateDocument } from '../core/documents/documents.js';
import { toEtcdEntry } from '../core/documents/etcd-docs.js';
import { ValidationError } from '../core/errors.js';
import type { EtcdFlags } from './etcd-options.js';
import { checkChange, commitGuarded, readDesired, untilStable, warnStored, withEtcd, type DesiredSnapshot } from '../adapters/etcd/etcd-store.js';
import { readSources } from './inputs.js';

export interface ApplyArgs extends EtcdFlags {
  file: string[];
  dryRun?: boolean;
  xdsPort: number;
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
  // Every document is checked alone before etcd is contacted: bad input is exit 2 even with etcd away.
  const issues: Issue[] = [];
  const sources = await readSources(args.file, issues);
  const incoming: Incoming[] = [];
  for (const src of sources) {
    for (const raw of parseYamlDocuments(src.source, src.text, issues)) {
      const doc = validateDocument(raw, issues);
      if (doc) incoming.push({ doc, ...toEtcdEntry(args.prefix, raw) });
    }
  }
  const first = new Map<string, Document>();
  for (const { doc, key } of incoming) {
    const other = first.get(key);
    if (other) issues.push({ doc: doc.ref, path: 'metadata.name', message: `${doc.kind} ${doc.name} is also defined in ${other.ref.source} (document ${other.ref.index + 1})` });
    else first.set(key, doc);
  }
  if (issues.length > 0) throw new ValidationError(issues);

  await withEtcd(args, (s) => untilStable('applying', async (attempt) => {
    const snap = await readDesired(s);
    // New documents claim host ports after the stored ones: on a clash, the message lands on the new one.
    for (const i of incoming) i.doc.ref = { ...i.doc.ref, revision: snap.revision + 1 };
    const replaced = new Set(incoming.map((i) => i.key));
    const { errors, preexisting } = checkChange(snap, { put: new Map(incoming.map((i) => [i.key, i.doc])), remove: new Set() }, { xdsPort: args.xdsPort });
    if (errors.length > 0) throw new ValidationError(errors, `the documents do not fit the desired state in etcd (revision ${snap.revision}); nothing was written`);
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
