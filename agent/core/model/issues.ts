// One problem with one field of one document, and how it is printed.
import type { HostRef } from './model.js';

/** Where a document came from: its file (or etcd key), index, kind and name. */
export interface DocRef {
  source: string;
  index: number;
  kind?: string;
  name?: string;
  /** The issue concerns the whole file (or command-line option), not one document in it. */
  whole?: boolean;
  /** etcd mod revision of the document, when it came from etcd: on a clash, the older document keeps its claim. */
  revision?: number;
}

/** Order in which documents claim shared things (host ports): older etcd revision first, then file order. */
export function claimOrder(a: DocRef, b: DocRef): number {
  return (a.revision ?? 0) - (b.revision ?? 0) || (a.source < b.source ? -1 : a.source > b.source ? 1 : 0) || a.index - b.index;
}

export interface Issue {
  doc: DocRef;
  /** Field path inside the document, e.g. `spec.versions.v1.port`; '' for the whole document. */
  path: string;
  message: string;
  /** The issue only follows from the problems of this other document (it refers to a refused one). */
  follows?: DocRef;
}

export function describeDoc(doc: DocRef): string {
  if (doc.whole) return doc.source;
  // Kind and name come from the operator's text: quoted and shortened so that they cannot break the line.
  const kind = doc.kind && (/^[A-Za-z][A-Za-z0-9]{0,62}$/.test(doc.kind) ? doc.kind : quoted(doc.kind));
  const what = kind ? `${kind}${doc.name !== undefined ? ` ${quoted(doc.name)}` : ''}` : 'document';
  return `${doc.source}: ${what} (document ${doc.index + 1})`;
}

function quoted(text: string): string {
  return quote(text.length > 63 ? `${text.slice(0, 60)}...` : text);
}

/** Operator text in double quotes, escaped so that it stays on one line (JSON leaves U+2028 and U+2029 as they are). */
export function quote(text: string): string {
  return JSON.stringify(text).replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}

export function formatIssue(issue: Issue): string {
  return `${describeDoc(issue.doc)}: ${issue.path ? `${issue.path}: ` : ''}${issue.message}`;
}

/**
 * One list for the operator: each document's problems together, documents in the order of `sources` (the
 * files as given; other sources after them, by name), then by place in their file; the same line once.
 * The order within a document is kept: its own problems first, then those found against the set.
 */
export function sortIssues(issues: Issue[], sources: readonly string[] = []): Issue[] {
  const rank = (source: string) => {
    const i = sources.indexOf(source);
    return i === -1 ? sources.length : i;
  };
  const seen = new Set<string>();
  const unique = issues.filter((i) => {
    const line = formatIssue(i);
    return !seen.has(line) && !!seen.add(line);
  });
  // Array.prototype.sort is stable, so equal keys keep the order the checks found them in.
  return unique.sort((a, b) => rank(a.doc.source) - rank(b.doc.source) || (a.doc.source < b.doc.source ? -1 : a.doc.source > b.doc.source ? 1 : 0) || a.doc.index - b.doc.index);
}

export function formatIssues(issues: Issue[]): string {
  return issues.map((i) => `  - ${formatIssue(i)}`).join('\n');
}

/**
 * Collects issues for one document; `at(path)` reports against a field. It also carries what reading the
 * rest of the document needs to know: its namespace (short hosts are relative to it, read from metadata
 * before the spec) and the hosts read so far, which the set-level checks resolve against the Services.
 */
export class IssueSink {
  namespace = 'default';
  readonly hosts: HostRef[] = [];
  constructor(readonly doc: DocRef, readonly out: Issue[]) {}
  add(path: string, message: string): void {
    this.out.push({ doc: this.doc, path, message });
  }
}
