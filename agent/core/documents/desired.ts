// From document texts to a checked desired state: strict for operators, lenient for the agent.
import type { Issue } from '../model/issues.js';
import { sortIssues } from '../model/issues.js';
import type { Desired, Document } from '../model/model.js';
import type { SourceText } from './documents.js';
import { checkDocuments, toDesired } from './documents.js';
import type { Refused } from './draft.js';
import type { MeshOptions } from './validate-mesh.js';
import { checkMesh } from './validate-mesh.js';

/**
 * Every problem of every document and of the set, each document's together; the CLI refuses the whole
 * input when any is found. The set-level checks also run when some documents have problems of their own:
 * on the documents that passed, and on what could be read of the others.
 */
export function loadDesired(files: SourceText[], mesh: MeshOptions): { desired: Desired; issues: Issue[] } {
  const issues: Issue[] = [];
  const checked = checkDocuments(files, issues);
  const desired = toDesired(checked.filter((c) => c.ok).map((c) => c.doc));
  issues.push(...checkMesh(desired, mesh, checked.filter((c) => !c.ok)));
  return { desired, issues: sortIssues(issues, files.map((f) => f.source)) };
}

/**
 * The agent's stance: a document with a problem is rejected alone and the rest applies. Rejecting one
 * document can break others (a route to a rejected service), so repeat until stable; a rejected document
 * stays in the check as refused, so that what depended on it says why, once, instead of "no Service named".
 * `refused` are the documents with problems of their own: their set-level problems are listed too.
 */
export function acceptValid(docs: Document[], mesh: MeshOptions, refused: readonly Refused[] = []): { desired: Desired; rejected: Issue[] } {
  const keyOf = (d: { source: string; index: number }) => `${d.source}#${d.index}`;
  let kept = docs;
  let out = [...refused];
  const rejected: Issue[] = [];
  for (let round = 0; ; round++) {
    const keptKeys = new Set(kept.map((d) => keyOf(d.ref)));
    const issues = checkMesh(toDesired(kept), mesh, out);
    // Each round lists only why documents are rejected in it (refused ones in the first): no repeats, no chains.
    rejected.push(...issues.filter((i) => round === 0 || keptKeys.has(keyOf(i.doc))));
    const bad = new Set(issues.map((i) => keyOf(i.doc)).filter((k) => keptKeys.has(k)));
    if (bad.size === 0) return { desired: toDesired(kept), rejected: sortIssues(rejected) };
    out = [...out, ...kept.filter((d) => bad.has(keyOf(d.ref))).map((doc) => ({ doc, gaps: new Set<never>() }))];
    kept = kept.filter((d) => !bad.has(keyOf(d.ref)));
  }
}
