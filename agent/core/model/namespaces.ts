// A document's namespace. Until Services and routes carry `namespace` (issue 14, item 1), every document is in
// `default`, as a Kubernetes object without one is: this is the one place that knows.
export const DEFAULT_NAMESPACE = 'default';

export function namespaceOf(doc: object): string {
  const ns = (doc as { namespace?: unknown }).namespace;
  return typeof ns === 'string' && ns !== '' ? ns : DEFAULT_NAMESPACE;
}
