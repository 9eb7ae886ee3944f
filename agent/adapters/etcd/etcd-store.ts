// The CLI's view of etcd: a session with errors in operator words, the desired-state snapshot, and guarded
// writes that land only if nothing under <p>/desired/ changed since the snapshot (all or nothing).
import * as etcd3 from 'etcd3';
import {
  EtcdAuthenticationFailedError, EtcdPermissionDeniedError, GRPCDeadlineExceededError, GRPCUnavailableError,
  isRecoverableError, type Etcd3, type ICompare, type IRequestOp,
} from 'etcd3';
import { createEtcd, type EtcdConnection } from './etcd-client.js';
import { ConflictError, ExternalError, ValidationError } from '../../core/errors.js';
import type { Issue } from '../../core/model/issues.js';
import { formatIssue } from '../../core/model/issues.js';
import type { Document } from '../../core/model/model.js';
import { toDesired } from '../../core/documents/documents.js';
import { checkEtcdEntry } from '../../core/documents/etcd-docs.js';
import type { Refused } from '../../core/documents/draft.js';
import { keys, type Keys } from '../../core/model/keys.js';
import { checkMesh, type MeshOptions } from '../../core/documents/validate-mesh.js';
import { connectionOf, redactUrl, type EtcdFlags } from '../../commands/etcd-options.js';

export interface Session {
  etcd: Etcd3;
  k: Keys;
  /** Call options for one request: an operator waits for the CLI, so no call may hang. */
  call(): { deadline: Date };
}

const CALL_TIMEOUT_MS = 5_000;

/** Connects, runs `fn`, closes; etcd failures become MeshletErrors whose text never holds the password. */
export async function withEtcd<T>(flags: EtcdFlags, fn: (s: Session) => Promise<T>): Promise<T> {
  // One quick retry, then a clear error: an operator is waiting (the agent runs its own backoff loop).
  const conn = { ...connectionOf(flags), retries: 1, dialTimeoutMs: 2_000 };
  const etcd = createEtcd(conn);
  try {
    return await fn({ etcd, k: keys(conn.prefix), call: () => ({ deadline: new Date(Date.now() + CALL_TIMEOUT_MS) }) });
  } catch (err) {
    throw explain(err, conn);
  } finally {
    etcd.close();
  }
}

function explain(err: unknown, conn: EtcdConnection): unknown {
  // Only the etcd3 package's own errors are about etcd; anything else (a bug) goes to cli.ts as it is.
  if (!(err instanceof Error) || !Object.values(etcd3).includes(err.constructor as never)) return err;
  const scrub = (text: string) => (conn.password ? text.split(conn.password).join('***') : text);
  const cause = new Error(scrub(err.message));
  const where = conn.endpoints.map(redactUrl).join(',');
  const flag = (source: string, message: string) => new ValidationError([{ doc: { source, index: 0, whole: true }, path: '', message }], 'etcd refused the request');
  if (err instanceof EtcdAuthenticationFailedError) return flag('--etcd-user', `etcd at ${where} refused the user name or password of user ${JSON.stringify(conn.user ?? '')}`);
  if (/user name is empty/.test(err.message)) return flag('--etcd-user', `etcd at ${where} requires authentication: give --etcd-user and --etcd-password (or MESHLET_ETCD_USER / MESHLET_ETCD_PASSWORD)`);
  if (err instanceof EtcdPermissionDeniedError) return flag('--etcd-user', `etcd user ${JSON.stringify(conn.user ?? '')} may not use the keys under ${conn.prefix || '/'} (${cause.message})`);
  if (/request is too large/.test(err.message)) return flag('etcd request', `etcd refused the write as too large (its --max-request-bytes); nothing was written. Apply the documents in several smaller files`);
  if (/too many operations in txn/.test(err.message)) return flag('etcd request', `etcd refused the write: more operations than its --max-txn-ops allows in one transaction; nothing was written`);
  if (err instanceof GRPCUnavailableError || err instanceof GRPCDeadlineExceededError || isRecoverableError(err) || /ECONNREFUSED|No connection established|failed to connect/i.test(err.message)) {
    return new ExternalError(`cannot reach etcd at ${where}`, cause);
  }
  return new ExternalError(`etcd at ${where} failed`, cause);
}

export interface StoredEntry {
  key: string;
  value: string;
  modRevision: number;
}

export interface DesiredSnapshot {
  /** The etcd revision the snapshot was read at. */
  revision: number;
  /** Every key under <p>/desired/, valid or not. */
  entries: Map<string, StoredEntry>;
  /** The entries that hold a valid document, by key. */
  docs: Map<string, Document>;
  /** Entries whose document has problems of its own, as far as it was read (for the set-level checks). */
  refused: Map<string, Refused>;
  /** Why the other entries hold no document. */
  problems: Issue[];
}

export async function readPrefix(s: Session, prefix: string): Promise<{ revision: number; entries: Map<string, StoredEntry> }> {
  const res = await s.etcd.getAll().prefix(prefix).options(s.call()).exec();
  const entries = new Map<string, StoredEntry>();
  for (const kv of res.kvs) {
    const key = kv.key.toString();
    entries.set(key, { key, value: kv.value.toString(), modRevision: Number(kv.mod_revision) });
  }
  return { revision: Number(res.header.revision), entries };
}

export async function readDesired(s: Session): Promise<DesiredSnapshot> {
  const { revision, entries } = await readPrefix(s, s.k.desired);
  const docs = new Map<string, Document>();
  const refused = new Map<string, Refused>();
  const problems: Issue[] = [];
  for (const e of entries.values()) {
    const checked = checkEtcdEntry(s.k.prefix, e.key, e.value, e.modRevision, problems);
    if (checked?.ok) docs.set(e.key, checked.doc);
    else if (checked) refused.set(e.key, checked);
  }
  return { revision, entries, docs, refused, problems };
}

/** A change to the stored documents: documents put (by key) and keys removed. */
export interface DocChange {
  put: Map<string, Document>;
  remove: Set<string>;
  /**
   * Incoming documents with problems of their own, as far as they were read, to check the rest of the
   * change against; one whose name could be read has its key, and takes the place of what is stored there.
   */
  refuse?: { key?: string; refused: Refused }[];
}

/**
 * Checks the stored state with a change applied. Problems the stored state already had, on documents the
 * change leaves alone, are not the change's fault: they come back as `preexisting`, the rest as `errors`.
 * A stored document agents already reject is not made worse by a change either: its problems are `preexisting`.
 */
export function checkChange(snap: DesiredSnapshot, change: DocChange, mesh: MeshOptions): { errors: Issue[]; preexisting: Issue[] } {
  const incomingRefused = change.refuse ?? [];
  const refusedKeys = new Set(incomingRefused.map((r) => r.key).filter((k) => k !== undefined));
  const replaced = (key: string) => change.put.has(key) || change.remove.has(key) || refusedKeys.has(key);
  const after = [...snap.docs].filter(([key]) => !replaced(key)).map(([, d]) => d).concat([...change.put.values()]);
  const afterRefused = [...snap.refused].filter(([key]) => !replaced(key)).map(([, r]) => r).concat(incomingRefused.map((r) => r.refused));
  const baseline = new Set(checkMesh(toDesired([...snap.docs.values()]), mesh, [...snap.refused.values()]).map(formatIssue));
  const errors: Issue[] = [];
  const preexisting: Issue[] = [];
  const stored = (source: string) => snap.docs.has(source) || snap.refused.has(source);
  for (const issue of checkMesh(toDesired(after), mesh, afterRefused)) {
    const untouched = stored(issue.doc.source) && !replaced(issue.doc.source);
    // That a stored document refers to an incoming one with problems adds nothing to those problems.
    if (untouched && issue.follows && !stored(issue.follows.source)) continue;
    (untouched && (baseline.has(formatIssue(issue)) || snap.refused.has(issue.doc.source)) ? preexisting : errors).push(issue);
  }
  return { errors, preexisting };
}

export interface GuardedWrite {
  puts: { key: string; value: string }[];
  deletes: string[];
  /** Further conditions, e.g. compare-and-swap on one key. */
  compares?: ICompare[];
}

/** etcd refuses requests over --max-request-bytes (1.5 MiB by default); stay below with room for framing. */
export const MAX_TXN_BYTES = Math.floor(1.4 * 1024 * 1024);
/** etcd's --max-txn-ops (128 by default) bounds each list of a transaction; a nested transaction gets what its parent leaves. */
const FLAT_OPS = 120;
const CHUNK_OPS = 60;

const b = (text: string) => Buffer.from(text);

/** The end of the range of every key that starts with `prefix`. */
export function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1]! += 1;
  return end;
}

/** Mod revision of a key, or 0 when it does not exist (etcd compares a missing key as zero). */
export const sameMod = (key: string, modRevision: number): ICompare => ({ key: b(key), target: 'Mod', result: 'Equal', mod_revision: modRevision });

/**
 * Writes in one transaction, on condition that nothing under <p>/desired/ was written or deleted after
 * `since`. A range compare sees changed and new keys, not deleted ones: every meshlet command that deletes
 * a desired document also writes the deletion guard key, which is compared too (a delete made by hand with
 * etcdctl goes unseen). Returns the revision written at, or undefined when the condition failed.
 */
export async function commitGuarded(s: Session, since: number, w: GuardedWrite): Promise<number | undefined> {
  const guard = deletionGuard(s.k);
  const compares: ICompare[] = [
    { key: b(s.k.desired), range_end: prefixEnd(s.k.desired), target: 'Mod', result: 'Less', mod_revision: since + 1 },
    { key: b(guard), target: 'Mod', result: 'Less', mod_revision: since + 1 },
    ...(w.compares ?? []),
  ];
  const puts = [...w.puts];
  if (w.deletes.length > 0) puts.push({ key: guard, value: JSON.stringify({ deleted: w.deletes }) });
  const ops: IRequestOp[] = [
    ...puts.map((p) => ({ request_put: { key: b(p.key), value: b(p.value) } })),
    ...w.deletes.map((key) => ({ request_delete_range: { key: b(key) } })),
  ];
  const bytes = puts.reduce((n, p) => n + Buffer.byteLength(p.key) + Buffer.byteLength(p.value) + 16, 0)
    + w.deletes.reduce((n, key) => n + Buffer.byteLength(key) + 8, 0)
    + compares.reduce((n, c) => n + (c.key?.length ?? 0) + (c.range_end?.length ?? 0) + 24, 0);
  const issue = (message: string) => new ValidationError([{ doc: { source: 'etcd transaction', index: 0, whole: true }, path: '', message }], 'the write does not fit in one etcd transaction; nothing was written');
  if (bytes > MAX_TXN_BYTES) {
    throw issue(`${mib(bytes)} in ${puts.length + w.deletes.length} keys; one transaction may carry at most ${mib(MAX_TXN_BYTES)} (etcd refuses requests over its --max-request-bytes, 1.5 MiB by default). Apply the documents in several smaller files`);
  }
  // Over etcd's per-list limit, the writes go into nested transactions: still one atomic request.
  const chunks: IRequestOp[][] = [];
  for (let i = 0; i < ops.length; i += CHUNK_OPS) chunks.push(ops.slice(i, i + CHUNK_OPS));
  if (ops.length > FLAT_OPS && chunks.length > CHUNK_OPS) throw issue(`${ops.length} keys; one transaction may write at most ${CHUNK_OPS * CHUNK_OPS}`);
  const success = ops.length <= FLAT_OPS ? ops : chunks.map((c) => ({ request_txn: { compare: [], success: c, failure: [] } }));
  const res = await s.etcd.kv.txn({ compare: compares, success, failure: [] }, s.call());
  return res.succeeded ? Number(res.header.revision) : undefined;
}

/** Written by every meshlet command that deletes a desired document; see commitGuarded. */
export function deletionGuard(k: Keys): string {
  return k.desiredDeletions;
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(2)} MiB`;
}

export const ATTEMPTS = 3;

/**
 * Runs read → check → write until the write's condition holds. `attempt` returns undefined when etcd
 * refused the write because the desired state changed meanwhile; it is then read and checked again.
 */
export async function untilStable<T>(what: string, attempt: (n: number) => Promise<T | undefined>): Promise<T> {
  for (let n = 1; n <= ATTEMPTS; n++) {
    const result = await attempt(n);
    if (result !== undefined) return result;
  }
  throw new ConflictError(`the desired state in etcd changed ${ATTEMPTS} times while ${what}; nothing was written. Retry`);
}

/** Prints the stored documents that cannot be used and the problems the stored state already had. */
export function warnStored(warn: (line: string) => void, snap: DesiredSnapshot, preexisting: Issue[], replaced: Set<string> = new Set()): void {
  for (const p of snap.problems) if (!replaced.has(p.doc.source)) warn(`warning: ignoring a stored document agents reject: ${formatIssue(p)}`);
  for (const p of preexisting) warn(`warning: already in etcd, left as is: ${formatIssue(p)}`);
}

/** A key's current mod revision; 0 when it does not exist. */
export async function modRevisionOf(s: Session, key: string): Promise<number> {
  const res = await s.etcd.get(key).options(s.call()).exec();
  return Number(res.kvs[0]?.mod_revision ?? 0);
}
