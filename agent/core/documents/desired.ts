// From document texts to a checked desired state: strict for operators, lenient for the agent.
import type { Issue } from '../model/issues.js';
import type { Desired, Document } from '../model/model.js';
import type { SourceText } from './documents.js';
import { readDocuments, toDesired } from './documents.js';
import type { MeshOptions } from './validate-mesh.js';
import { checkMesh } from './validate-mesh.js';

/** Every problem of every document and of the set; the CLI refuses the whole input when any is found. */
export function loadDesired(files: SourceText[], mesh: MeshOptions): { desired: Desired; issues: Issue[] } {
  const issues: Issue[] = [];
  const desired = toDesired(readDocuments(files, issues));
  if (issues.length === 0) issues.push(...checkMesh(desired, mesh));
  return { desired, issues };
}

/**
 * The agent's stance: a document with a problem is rejected alone and the rest applies.
 * Rejecting one document can break others (a route to a rejected service), so repeat until stable.
 */
export function acceptValid(docs: Document[], mesh: MeshOptions): { desired: Desired; rejected: Issue[] } {
  let kept = docs;
  const rejected: Issue[] = [];
  for (;;) {
    const issues = checkMesh(toDesired(kept), mesh);
    if (issues.length === 0) return { desired: toDesired(kept), rejected };
    rejected.push(...issues);
    const bad = new Set(issues.map((i) => `${i.doc.source}#${i.doc.index}`));
    kept = kept.filter((d) => !bad.has(`${d.ref.source}#${d.ref.index}`));
  }
}
