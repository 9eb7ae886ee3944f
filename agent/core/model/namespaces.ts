// A document's namespace: `metadata.namespace`, or `default` when none was written, as for a Kubernetes object.
export const DEFAULT_NAMESPACE = 'default';

export function namespaceOf(doc: object): string {
  const ns = (doc as { namespace?: unknown }).namespace;
  return typeof ns === 'string' && ns !== '' ? ns : DEFAULT_NAMESPACE;
}
