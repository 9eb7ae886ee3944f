// Desired-state documents as stored in etcd: the operator's document in canonical JSON under its kind's key.
import type { Issue } from '../model/issues.js';
import type { Document } from '../model/model.js';
import type { RawDoc } from './parse-yaml.js';
import { checkDocument } from './documents.js';
import type { Checked } from './draft.js';
import { canonicalJson } from '../model/canonical.js';
import type { DesiredKind } from '../model/keys.js';
import { KIND_OF_DOC, keys, parseDesiredKey } from '../model/keys.js';

/** The key and value `meshlet apply` writes for a raw document that passed validation. */
export function toEtcdEntry(prefix: string, raw: RawDoc): { key: string; value: string } {
  const body = raw.body as { kind: keyof typeof KIND_OF_DOC; metadata: { name: string } };
  return { key: keys(prefix).desiredDoc(KIND_OF_DOC[body.kind], body.metadata.name), value: canonicalJson(raw.body) };
}

/**
 * Reads one stored document back. Anything written by hand is checked like operator input: bad JSON,
 * a failing field, or a key that disagrees with the document's kind or name is an issue and no document.
 */
export function fromEtcdEntry(prefix: string, key: string, value: string, modRevision: number, issues: Issue[]): Document | undefined {
  const checked = checkEtcdEntry(prefix, key, value, modRevision, issues);
  return checked?.ok ? checked.doc : undefined;
}

/**
 * Like fromEtcdEntry, but a document with problems of its own comes back too, as far as it was read, for
 * the set-level checks. Nothing comes back for a key whose document is not even JSON or names another key.
 */
export function checkEtcdEntry(prefix: string, key: string, value: string, modRevision: number, issues: Issue[]): Checked | undefined {
  const where = parseDesiredKey(prefix, key);
  const ref = { source: key, index: 0, revision: modRevision };
  if (!where) {
    issues.push({ doc: ref, path: '', message: 'not a desired-state key (expected <prefix>/desired/services|routes|subsets/<name>)' });
    return undefined;
  }
  let body: unknown;
  try {
    body = JSON.parse(value);
  } catch (err) {
    issues.push({ doc: ref, path: '', message: `invalid JSON: ${(err as Error).message}` });
    return undefined;
  }
  const meta = (body as { metadata?: { name?: unknown }; kind?: unknown }) ?? {};
  const raw: RawDoc = {
    ref: { ...ref, kind: typeof meta.kind === 'string' ? meta.kind : undefined, name: typeof meta.metadata?.name === 'string' ? meta.metadata.name : undefined },
    body,
  };
  const checked = checkDocument(raw, issues);
  if (!checked) return undefined;
  const { doc } = checked;
  const expectedKind: DesiredKind = KIND_OF_DOC[doc.kind];
  // A bad name is reported by itself; the key is compared with a name that could be read.
  if (checked.gaps.has('name')) return checked;
  if (expectedKind !== where.kind || doc.name !== where.name) {
    issues.push({ doc: raw.ref, path: 'metadata.name', message: `the key says ${where.kind}/${where.name} but the document is ${doc.kind} ${doc.name}` });
    return undefined;
  }
  return checked;
}
