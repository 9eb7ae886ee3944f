// Hosts as Istio users write them: `reviews`, `reviews.<ns>`, `reviews.<ns>.svc`, `reviews.<ns>.svc.<cluster domain>`.
// Resolved as Istio resolves short names, relative to the document's namespace. Only the form is checked
// here; whether the Service exists in that namespace, and the cluster domain, are set-level checks (validate-mesh).
import type { IssueSink } from '../model/issues.js';
import { quote } from '../model/issues.js';
import type { HostRef } from '../model/model.js';
import { SERVICE_NAME } from '../model/model.js';
import { at, describe, readList, readString } from './reader.js';
import { UNREAD } from './draft.js';

export { DEFAULT_NAMESPACE } from '../model/namespaces.js';
export const DEFAULT_CLUSTER_DOMAIN = 'cluster.local';
export const NAMESPACE = { pattern: SERVICE_NAME, maxLength: 63, expected: 'a namespace (a DNS label: lower-case letters, digits and "-", starting with a letter)' };
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const FORMS = '<service>, <service>.<namespace>, <service>.<namespace>.svc or <service>.<namespace>.svc.<cluster domain>';

/**
 * Reads a host naming a meshlet Service and records it on the sink; returns the Service's name (what
 * the model and the renderer use), or undefined when the host is not one of the forms above.
 */
export function readHost(sink: IssueSink, value: unknown, path: string): string | undefined {
  const written = readString(sink, value, path, { expected: `the name of a meshlet Service (${FORMS})` });
  if (written === undefined) return undefined;
  const ref = parseHost(written, sink.namespace);
  if (typeof ref === 'string') {
    sink.add(path, `expected the name of a meshlet Service (${FORMS}), got ${describe(written)}: ${ref}`);
    return undefined;
  }
  sink.hosts.push({ path, ...ref });
  return ref.name;
}

/** Reads a list of hosts, each with readHost; one that cannot be read keeps its place as UNREAD, so that indexes stay right. */
export function readHosts(sink: IssueSink, value: unknown, path: string): string[] | undefined {
  const list = readList(sink, value, path, 1);
  return list?.map((h, i) => readHost(sink, h, at(path, i)) ?? UNREAD);
}

/** The parts of a host, or why it names no meshlet Service. */
export function parseHost(written: string, namespace: string): Omit<HostRef, 'path'> | string {
  if (written.includes('*')) return 'wildcard hosts are not supported: a meshlet host names one Service';
  const labels = written.split('.');
  const [name, ns, svc, ...domain] = labels;
  if (!SERVICE_NAME.test(name!)) return 'a Service name is a DNS label (lower-case letters, digits and "-", starting with a letter)';
  if (labels.length === 1) return { written, name: name!, namespace };
  if (!SERVICE_NAME.test(ns!)) return `${quote(ns!)} is not a namespace (a DNS label)`;
  if (labels.length === 2) return { written, name: name!, namespace: ns! };
  if (svc !== 'svc') return 'external hosts are not supported: a meshlet host names a Service of the mesh (meshlet has no ServiceEntry)';
  if (labels.length === 3) return { written, name: name!, namespace: ns! };
  if (!domain.every((l) => DNS_LABEL.test(l))) return 'the cluster domain is DNS labels separated by "."';
  return { written, name: name!, namespace: ns!, domain: domain.join('.') };
}
