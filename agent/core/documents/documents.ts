// Raw documents → typed model: apiVersion/kind dispatch and metadata checks.
import type { Issue } from '../model/issues.js';
import { IssueSink } from '../model/issues.js';
import type { Desired, Document } from '../model/model.js';
import { SERVICE_NAME } from '../model/model.js';
import type { RawDoc } from './parse-yaml.js';
import { parseYamlDocuments } from './parse-yaml.js';
import { at, describe, readMapping, readObject, readString } from './reader.js';
import { suggestion } from './did-you-mean.js';
import { validateService } from './validate-service.js';
import { validateVirtualService } from './validate-route.js';
import { validateDestinationRule } from './validate-subsets.js';
import type { Checked } from './draft.js';
import { DEFAULT_NAMESPACE, NAMESPACE } from './host-names.js';

export const MESHLET_API = 'meshlet.dev/v1';
export const ISTIO_APIS = ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'];
const KINDS: Record<string, string[]> = {
  Service: [MESHLET_API],
  VirtualService: ISTIO_APIS,
  DestinationRule: ISTIO_APIS,
};

/** Validates one document on its own (no cross-document checks); a document with a problem gives nothing. */
export function validateDocument(raw: RawDoc, issues: Issue[]): Document | undefined {
  const checked = checkDocument(raw, issues);
  return checked?.ok ? checked.doc : undefined;
}

/**
 * Validates one document on its own and returns it as far as it could be read, even with problems, so
 * that the set-level checks can still look at it; undefined when not even its kind and spec can be read.
 */
export function checkDocument(raw: RawDoc, issues: Issue[]): Checked | undefined {
  const sink = new IssueSink(raw.ref, issues);
  const before = issues.length;
  const body = readObject(sink, raw.body, '', ['apiVersion', 'kind', 'metadata', 'spec'], { status: 'is written by controllers, not operators; remove it' });
  if (!body) return undefined;
  const kind = readString(sink, body.kind, 'kind', { oneOf: Object.keys(KINDS) });
  const apiVersion = readString(sink, body.apiVersion, 'apiVersion', { expected: 'an apiVersion' });
  if (kind && apiVersion && !KINDS[kind]!.includes(apiVersion)) {
    sink.add('apiVersion', `expected ${KINDS[kind]!.join(' | ')} for kind ${kind}, got ${describe(apiVersion)}${suggestion(apiVersion, KINDS[kind]!)}`);
  }
  const name = readMetadata(sink, body.metadata);
  // With another apiVersion the spec may mean something else: it is not read, and so not checked against the set.
  if (!kind || !apiVersion || !KINDS[kind]!.includes(apiVersion)) return undefined;
  // The spec is checked even when the name is bad, so that every problem is reported at once.
  const draft = kind === 'Service' ? validateService(sink, body, name) : kind === 'VirtualService' ? validateVirtualService(sink, body, name) : validateDestinationRule(sink, body, name);
  if (!draft) return undefined;
  const ok = issues.length === before;
  return { doc: draft.doc, gaps: draft.gaps, ok };
}

/** The name, or undefined when it cannot be read; the namespace goes on the sink, for the spec's short hosts. */
function readMetadata(sink: IssueSink, value: unknown): string | undefined {
  const meta = readObject(sink, value, 'metadata', ['name', 'namespace', 'labels', 'annotations']);
  if (!meta) return undefined;
  if (meta.namespace !== undefined) sink.namespace = readString(sink, meta.namespace, 'metadata.namespace', NAMESPACE) ?? DEFAULT_NAMESPACE;
  for (const key of ['labels', 'annotations'] as const) {
    if (meta[key] === undefined) continue;
    const m = readMapping(sink, meta[key], at('metadata', key));
    for (const [k, v] of Object.entries(m ?? {})) readString(sink, v, at(at('metadata', key), k));
  }
  return readString(sink, meta.name, 'metadata.name', {
    pattern: SERVICE_NAME,
    maxLength: 63,
    expected: 'a DNS label (lower-case letters, digits and "-", starting with a letter, at most 63 characters)',
  });
}

export interface SourceText {
  source: string;
  text: string;
}

/** Parses and validates each document of each file; cross-document checks are separate (validate-mesh). */
export function readDocuments(files: SourceText[], issues: Issue[]): Document[] {
  return checkDocuments(files, issues).filter((c) => c.ok).map((c) => c.doc);
}

/** Like readDocuments, but also gives the documents with problems, as far as they could be read. */
export function checkDocuments(files: SourceText[], issues: Issue[]): Checked[] {
  const out: Checked[] = [];
  for (const f of files) {
    for (const raw of parseYamlDocuments(f.source, f.text, issues)) {
      const checked = checkDocument(raw, issues);
      if (checked) out.push(checked);
    }
  }
  return out;
}

/** Groups documents by kind, each list sorted by name. Duplicates are reported by validate-mesh. */
export function toDesired(docs: Document[]): Desired {
  const byName = <T extends { name: string }>(a: T, b: T) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  return {
    services: docs.filter((d) => d.kind === 'Service').sort(byName),
    routes: docs.filter((d) => d.kind === 'VirtualService').sort(byName),
    subsets: docs.filter((d) => d.kind === 'DestinationRule').sort(byName),
  } as Desired;
}
