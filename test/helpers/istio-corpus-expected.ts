// fixtures/istio-corpus/expected.yaml: the recorded outcome of every corpus document, compared and rewritten.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import type { DocOutcome, IssueOut, ServiceIssue } from './istio-corpus.js';
import { CORPUS, EXPECTED } from './istio-corpus.js';

export interface Expected {
  summary: { documents: number; accepted: number; refused: number };
  services: ServiceIssue[];
  documents: DocOutcome[];
}

const HEADER = `# The outcome of every document of the Istio corpus through meshlet's validation (test/unit/istio-corpus.test.ts).
# Written by \`UPDATE_CORPUS=1 node --test dist/test/unit/istio-corpus.test.js\` from what meshlet does now:
# regenerate when a feature lands, and review the diff (each refusal that goes away should be a feature that came).
# A refused document lists its issues in order: \`path\` must match exactly, \`message\` is matched as a fragment
# of the actual message (a recorded full message is its own fragment; it may be shortened by hand).
# \`services\`: the issues on services.yaml itself, the same in every run.
`;

export function readExpected(): Expected | undefined {
  try {
    return parse(readFileSync(join(CORPUS, EXPECTED), 'utf8')) as Expected;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export function writeExpected(services: ServiceIssue[], documents: DocOutcome[]): void {
  const accepted = documents.filter((d) => d.outcome === 'accepted').length;
  const body: Expected = { summary: { documents: documents.length, accepted, refused: documents.length - accepted }, services, documents };
  writeFileSync(join(CORPUS, EXPECTED), HEADER + stringify(body, { lineWidth: 0 }));
}

const key = (d: { file: string; index: number }) => `${d.file}#${d.index}`;

function issuesDiffer(expected: readonly IssueOut[], actual: readonly IssueOut[]): boolean {
  return expected.length !== actual.length || expected.some((e, i) => e.path !== actual[i]!.path || !actual[i]!.message.includes(e.message));
}

const show = (issues: readonly IssueOut[] | undefined) => (issues ?? []).map((i) => `${i.path}: ${i.message}`).join(' | ');

/** Every difference between the recorded and the actual outcomes, one line each; empty when they agree. */
export function differences(expected: Expected, documents: readonly DocOutcome[], services: readonly ServiceIssue[]): string[] {
  const out: string[] = [];
  const want = new Map(expected.documents.map((d) => [key(d), d]));
  const got = new Map(documents.map((d) => [key(d), d]));
  for (const [k, d] of got) {
    const e = want.get(k);
    if (!e) { out.push(`${k} (${d.kind} ${d.name}): not in ${EXPECTED}`); continue; }
    if (e.kind !== d.kind || e.name !== d.name) out.push(`${k}: recorded as ${e.kind} ${e.name}, is ${d.kind} ${d.name}`);
    if (e.outcome !== d.outcome) out.push(`${k} (${d.kind} ${d.name}): expected ${e.outcome}, got ${d.outcome}${d.issues ? `: ${show(d.issues)}` : ''}`);
    else if (d.outcome === 'refused' && issuesDiffer(e.issues ?? [], d.issues ?? [])) out.push(`${k} (${d.kind} ${d.name}): expected ${show(e.issues)}; got ${show(d.issues)}`);
  }
  for (const k of want.keys()) if (!got.has(k)) out.push(`${k}: in ${EXPECTED} but no longer in the corpus`);
  const s = expected.services ?? [];
  const sameServices = s.length === services.length && s.every((e, i) => e.index === services[i]!.index && e.path === services[i]!.path && services[i]!.message.includes(e.message));
  if (!sameServices) out.push(`services.yaml: expected ${s.map((i) => `#${i.index} ${i.path}: ${i.message}`).join(' | ') || 'no issue'}; got ${services.map((i) => `#${i.index} ${i.path}: ${i.message}`).join(' | ') || 'no issue'}`);
  return out;
}
