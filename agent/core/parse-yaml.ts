// Multi-document YAML → raw documents, with limits: size, aliases, duplicate keys.
import { parseAllDocuments } from 'yaml';
import type { Issue, DocRef } from './issues.js';

export const MAX_FILE_BYTES = 4 * 1024 * 1024;
export const MAX_ALIASES = 100;

export interface RawDoc {
  ref: DocRef;
  body: unknown;
}

/** Parses one file's text. Empty documents (a trailing `---`) are skipped; a file with none is an error. */
export function parseYamlDocuments(source: string, text: string, issues: Issue[]): RawDoc[] {
  const fileRef: DocRef = { source, index: 0, kind: undefined };
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_FILE_BYTES) {
    issues.push({ doc: fileRef, path: '', message: `file is ${bytes} bytes; at most ${MAX_FILE_BYTES} bytes are accepted` });
    return [];
  }
  const docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true, strict: true, version: '1.2' });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: RawDoc[] = [];
  const before = issues.length;
  list.forEach((doc, index) => {
    const ref: DocRef = { source, index };
    for (const err of doc.errors) {
      issues.push({ doc: ref, path: '', message: `invalid YAML: ${oneLine(err.message)}` });
    }
    if (doc.errors.length > 0) return;
    let body: unknown;
    try {
      body = doc.toJS({ maxAliasCount: MAX_ALIASES });
    } catch (err) {
      issues.push({ doc: ref, path: '', message: `refused: ${oneLine((err as Error).message)} (at most ${MAX_ALIASES} aliases)` });
      return;
    }
    if (body === null || body === undefined) return;
    const meta = (body as { metadata?: { name?: unknown } }).metadata;
    const kind = (body as { kind?: unknown }).kind;
    out.push({
      ref: {
        source,
        index,
        kind: typeof kind === 'string' ? kind : undefined,
        name: typeof meta?.name === 'string' ? meta.name : undefined,
      },
      body,
    });
  });
  if (out.length === 0 && issues.length === before) {
    issues.push({ doc: fileRef, path: '', message: 'no documents found; expected one or more Service, VirtualService or DestinationRule documents' });
  }
  return out;
}

function oneLine(text: string): string {
  return text.split('\n')[0]!.trim();
}
