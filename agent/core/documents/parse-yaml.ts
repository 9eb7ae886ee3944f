// Multi-document YAML → raw documents, with limits: size, aliases, duplicate keys.
import type { Document as YamlDocument, YAMLError } from 'yaml';
import { isMap, isNode, isScalar, isSeq, parseAllDocuments } from 'yaml';
import type { Issue, DocRef } from '../model/issues.js';
import { at } from './reader.js';

export const MAX_FILE_BYTES = 4 * 1024 * 1024;
export const MAX_ALIASES = 100;

/** The message for a file over MAX_FILE_BYTES (checked before it is read or parsed). */
export function tooLargeMessage(bytes: number): string {
  return `file is too large: ${bytes} bytes; at most ${MAX_FILE_BYTES} bytes (${MAX_FILE_BYTES / 1024 / 1024} MiB) are accepted`;
}

export interface RawDoc {
  ref: DocRef;
  body: unknown;
}

/** Parses one file's text. Empty documents (a trailing `---`) are skipped; a file with none is an error. */
export function parseYamlDocuments(source: string, text: string, issues: Issue[]): RawDoc[] {
  const fileRef: DocRef = { source, index: 0, whole: true };
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_FILE_BYTES) {
    issues.push({ doc: fileRef, path: '', message: tooLargeMessage(bytes) });
    return [];
  }
  const docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: true, strict: true, version: '1.2' });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: RawDoc[] = [];
  const before = issues.length;
  list.forEach((doc, index) => {
    // Kind and name are read from the syntax tree (aliases unresolved), so that even a document
    // that cannot be turned into values is named in its messages.
    const ref: DocRef = { source, index, ...namesOf(doc) };
    for (const err of doc.errors) {
      issues.push({ doc: ref, path: pathAt(doc.contents, err.pos[0], '') ?? '', message: `invalid YAML: ${yamlErrorMessage(err)}` });
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
    out.push({ ref, body });
  });
  if (out.length === 0 && issues.length === before) {
    issues.push({ doc: fileRef, path: '', message: 'no documents found; expected one or more Service, VirtualService or DestinationRule documents' });
  }
  return out;
}

function namesOf(doc: YamlDocument.Parsed): { kind?: string; name?: string } {
  const kind = isMap(doc.contents) ? doc.get('kind') : undefined;
  const name = isMap(doc.contents) ? doc.getIn(['metadata', 'name']) : undefined;
  return {
    ...(typeof kind === 'string' ? { kind } : {}),
    ...(typeof name === 'string' ? { name } : {}),
  };
}

function yamlErrorMessage(err: YAMLError): string {
  if (err.code === 'DUPLICATE_KEY') {
    const pos = err.linePos?.[0];
    return `the key is given twice; keys must be unique${pos ? ` (the second at line ${pos.line}, column ${pos.col})` : ''}`;
  }
  return oneLine(err.message);
}

/** The field path of the deepest key or value whose source range holds `offset` (for YAML errors). */
function pathAt(node: unknown, offset: number, path: string): string | undefined {
  // A scalar holds the offset within its text; a collection up to its end (an unclosed one: the end of the file).
  const holds = (n: unknown) => isNode(n) && !!n.range && offset >= n.range[0] && (isScalar(n) ? offset < n.range[1] : offset <= n.range[2]);
  if (isMap(node)) {
    for (const pair of node.items) {
      if (!isScalar(pair.key) || (typeof pair.key.value !== 'string' && typeof pair.key.value !== 'number')) continue;
      const p = at(path, String(pair.key.value));
      if (holds(pair.key)) return p;
      if (holds(pair.value)) return pathAt(pair.value, offset, p) ?? p;
    }
  } else if (isSeq(node)) {
    for (let i = 0; i < node.items.length; i++) {
      if (holds(node.items[i])) return pathAt(node.items[i], offset, at(path, i)) ?? at(path, i);
    }
  }
  return undefined;
}

/** The first line of a parser message, without the colon that introduced its code frame. */
function oneLine(text: string): string {
  return text.split('\n')[0]!.trim().replace(/:$/, '');
}
