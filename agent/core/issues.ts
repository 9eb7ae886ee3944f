// One problem with one field of one document, and how it is printed.

/** Where a document came from: its file (or etcd key), index, kind and name. */
export interface DocRef {
  source: string;
  index: number;
  kind?: string;
  name?: string;
}

export interface Issue {
  doc: DocRef;
  /** Field path inside the document, e.g. `spec.versions.v1.port`; '' for the whole document. */
  path: string;
  message: string;
}

export function describeDoc(doc: DocRef): string {
  const what = doc.kind ? `${doc.kind}${doc.name ? ` "${doc.name}"` : ''}` : 'document';
  return `${doc.source}: ${what} (document ${doc.index + 1})`;
}

export function formatIssue(issue: Issue): string {
  return `${describeDoc(issue.doc)}: ${issue.path ? `${issue.path}: ` : ''}${issue.message}`;
}

export function formatIssues(issues: Issue[]): string {
  return issues.map((i) => `  - ${formatIssue(i)}`).join('\n');
}

/** Collects issues for one document; `at(path)` reports against a field. */
export class IssueSink {
  constructor(readonly doc: DocRef, readonly out: Issue[]) {}
  add(path: string, message: string): void {
    this.out.push({ doc: this.doc, path, message });
  }
}
