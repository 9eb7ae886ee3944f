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

export const MESHLET_API = 'meshlet.dev/v1';
export const ISTIO_APIS = ['networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3'];
const KINDS: Record<string, string[]> = {
  Service: [MESHLET_API],
  VirtualService: ISTIO_APIS,
  DestinationRule: ISTIO_APIS,
};

/** Validates one document on its own (no cross-document checks). */
export function validateDocument(raw: RawDoc, issues: Issue[]): Document | undefined {
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
  if (!kind || !apiVersion || !KINDS[kind]!.includes(apiVersion)) return undefined;
  // The spec is checked even when the name is bad, so that every problem is reported at once.
  const doc = kind === 'Service' ? validateService(sink, body, name) : kind === 'VirtualService' ? validateVirtualService(sink, body, name) : validateDestinationRule(sink, body, name);
  return issues.length === before ? doc : undefined;
}

function readMetadata(sink: IssueSink, value: unknown): string | undefined {
  const meta = readObject(sink, value, 'metadata', ['name', 'labels', 'annotations'], {
    namespace: 'is not supported (meshlet has one namespace); remove it',
  });
  if (!meta) return undefined;
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
  const out: Document[] = [];
  for (const f of files) {
    for (const raw of parseYamlDocuments(f.source, f.text, issues)) {
      const doc = validateDocument(raw, issues);
      if (doc) out.push(doc);
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
