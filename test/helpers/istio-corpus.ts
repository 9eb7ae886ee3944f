// The Istio corpus (fixtures/istio-corpus/): each real Istio document's outcome through meshlet's validation,
// as `meshlet validate` reaches it (loadDesired over the corpus file and the Services it needs).
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { loadDesired } from '../../agent/core/documents/desired.js';
import type { SourceText } from '../../agent/core/documents/documents.js';
import type { Desired } from '../../agent/core/model/model.js';
import type { Issue } from '../../agent/core/model/issues.js';
import { at } from '../../agent/core/documents/reader.js';

export const CORPUS = fileURLToPath(new URL('../../../fixtures/istio-corpus/', import.meta.url));
export const SERVICES = 'services.yaml';
export const EXPECTED = 'expected.yaml';
export const MESH = { xdsPort: 15010 };

export interface IssueOut {
  path: string;
  message: string;
}

/** An issue on the Services, with the document it is on. */
export interface ServiceIssue extends IssueOut {
  index: number;
}

/** One document of a corpus file and what meshlet made of it. */
export interface DocOutcome {
  file: string;
  index: number;
  kind?: string;
  name?: string;
  namespace?: string;
  outcome: 'accepted' | 'refused';
  issues?: IssueOut[];
}

/** What one validation run found wrong with the corpus itself, not with a document: must stay empty. */
export interface Breach {
  file: string;
  problem: string;
}

/** Corpus-relative names of every corpus file (sorted), without the Services and the expectations. */
export function corpusFiles(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.yaml')) out.push(relative(CORPUS, p));
    }
  };
  walk(CORPUS);
  return out.filter((f) => f !== SERVICES && f !== EXPECTED).sort();
}

export function source(file: string): SourceText {
  return { source: file, text: readFileSync(join(CORPUS, file), 'utf8') };
}

/** The non-empty documents of a text, by the index meshlet gives them, read independently of meshlet's parser. */
export function documentsOf(text: string): { index: number; body: Record<string, any> }[] {
  const out: { index: number; body: Record<string, any> }[] = [];
  parseAllDocuments(text).forEach((doc, index) => {
    const body = doc.errors.length > 0 ? {} : (doc.toJS() as unknown);
    if (body === null || body === undefined) return; // an empty document (a trailing `---`), as meshlet skips it
    out.push({ index, body: body !== null && typeof body === 'object' ? (body as Record<string, any>) : {} });
  });
  return out;
}

/** Whether the accepted document `file#index` reached the desired state (accepted and not dropped). */
function reached(desired: Desired, file: string, index: number): boolean {
  const docs = [...desired.services, ...desired.routes, ...desired.subsets];
  return docs.some((d) => d.ref.source === file && d.ref.index === index);
}

const plainIssue = (i: Issue): IssueOut => ({ path: i.path, message: i.message });

/**
 * Validates one corpus file together with the Services. Every non-empty document gets an outcome; a
 * refusal that is not by a path inside a document, or a document neither refused nor in the desired
 * state, is a breach. `services` are the issues found on the Services in this run.
 */
export function validateFile(file: string, services: SourceText, text = source(file).text): { outcomes: DocOutcome[]; services: ServiceIssue[]; breaches: Breach[] } {
  const { desired, issues } = loadDesired([services, { source: file, text }], MESH);
  const docs = documentsOf(text);
  const breaches: Breach[] = [];
  const known = new Set(docs.map((d) => d.index));
  for (const i of issues) {
    if (i.doc.source === services.source) continue;
    if (i.doc.source !== file) breaches.push({ file, problem: `an issue on an unknown source ${i.doc.source}: ${i.message}` });
    else if (i.doc.whole || !known.has(i.doc.index)) breaches.push({ file, problem: `refused as a whole file, not by document: ${i.path} ${i.message}` });
  }
  const outcomes = docs.map(({ index, body }): DocOutcome => {
    const own = issues.filter((i) => i.doc.source === file && !i.doc.whole && i.doc.index === index);
    const meta = body.metadata ?? {};
    const head = {
      file, index,
      ...(typeof body.kind === 'string' ? { kind: body.kind } : {}),
      ...(typeof meta.name === 'string' ? { name: meta.name } : {}),
      ...(typeof meta.namespace === 'string' ? { namespace: meta.namespace } : {}),
    };
    if (own.length === 0) {
      if (!reached(desired, file, index)) breaches.push({ file, problem: `document ${index + 1} has no issue but is not in the desired state (ignored)` });
      return { ...head, outcome: 'accepted' };
    }
    if (!own.some((i) => i.path !== '')) breaches.push({ file, problem: `document ${index + 1} is refused, but by no path inside it: ${own.map((i) => i.message).join('; ')}` });
    return { ...head, outcome: 'refused', issues: own.map(plainIssue) };
  });
  return { outcomes, services: issues.filter((i) => i.doc.source === services.source).map((i) => ({ index: i.doc.index, ...plainIssue(i) })), breaches };
}

/** The Services' own outcome, validated alone. */
export function validateServices(services: SourceText): { outcomes: DocOutcome[]; issues: ServiceIssue[] } {
  const { desired, issues } = loadDesired([services], MESH);
  const outcomes = documentsOf(services.text).map(({ index, body }): DocOutcome => {
    const own = issues.filter((i) => i.doc.source === services.source && i.doc.index === index);
    const head = { file: services.source, index, kind: body.kind, name: body.metadata?.name, ...(body.metadata?.namespace ? { namespace: body.metadata.namespace } : {}) };
    if (own.length === 0 && reached(desired, services.source, index)) return { ...head, outcome: 'accepted' };
    return { ...head, outcome: 'refused', issues: own.map(plainIssue) };
  });
  return { outcomes, issues: issues.map((i) => ({ index: i.doc.index, ...plainIssue(i) })) };
}

/** The field name the strictness check adds; no Istio or meshlet document has it. */
export const UNKNOWN_FIELD = 'corpusUnknownField';

// Mappings with free keys (labels, header names, localities…): a new key there is data, not an unknown field.
const FREE_KEYS = new Set(['labels', 'annotations', 'sourceLabels', 'queryParams', 'withoutHeaders', 'set', 'add', 'to', 'matchLabels']);

/**
 * Every mapping of a document that has fixed fields, as a YAML path (for `setIn`) and as meshlet names
 * it in issues (`spec.http[0].route[0].destination`); '' is the document itself. A match's `headers`
 * are header names, so free; a route's `headers` (request/response) are fields.
 */
export function fixedFieldMappings(body: unknown): { segments: (string | number)[]; path: string }[] {
  const out: { segments: (string | number)[]; path: string }[] = [];
  const walk = (value: unknown, segments: (string | number)[], path: string) => {
    if (Array.isArray(value)) return value.forEach((v, i) => walk(v, [...segments, i], at(path, i)));
    if (value === null || typeof value !== 'object') return;
    const last = segments[segments.length - 1];
    const free = typeof last === 'string' && (FREE_KEYS.has(last) || (last === 'headers' && segments[segments.length - 3] === 'match'));
    if (!free) out.push({ segments, path });
    for (const [k, v] of Object.entries(value)) walk(v, [...segments, k], at(path, k));
  };
  walk(body, [], '');
  return out;
}

/** The file's text with `field: true` added to the mapping at `segments` of document `index`. */
export function withUnknownField(text: string, index: number, segments: (string | number)[]): string {
  const docs = parseAllDocuments(text);
  docs[index]!.setIn([...segments, UNKNOWN_FIELD], true);
  return docs.map((d) => d.toString()).join('');
}
