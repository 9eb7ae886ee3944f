// The one error hierarchy. cli.ts alone turns these into exit codes.
import type { Issue } from './model/issues.js';
import { formatIssues } from './model/issues.js';

export class MeshletError extends Error {
  readonly recoverable: boolean;
  constructor(message: string, opts: { cause?: unknown; recoverable?: boolean } = {}) {
    super(message, { cause: opts.cause });
    this.name = new.target.name;
    this.recoverable = opts.recoverable ?? false;
  }
}

/** Bad operator input: documents, flags, files. Never recoverable by retrying. */
export class ValidationError extends MeshletError {
  readonly issues: Issue[];
  constructor(issues: Issue[], summary = `${issues.length} problem${issues.length === 1 ? '' : 's'} found`) {
    super(`${summary}:\n${formatIssues(issues)}`);
    this.issues = issues;
  }
}

/** Something outside meshlet (etcd, Docker, the file system) failed; worth retrying. */
export class ExternalError extends MeshletError {
  constructor(message: string, cause?: unknown) {
    super(message, { cause, recoverable: true });
  }
}

/** A precondition the operator must fix (a second agent for a node, a stale compare-and-swap). */
export class ConflictError extends MeshletError {}
