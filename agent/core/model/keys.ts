// The etcd key layout (DESIGN.md): one place that knows how keys are spelled.

export type DesiredKind = 'services' | 'routes' | 'subsets';

export const KIND_OF_DOC: Record<'Service' | 'VirtualService' | 'DestinationRule', DesiredKind> = {
  Service: 'services',
  VirtualService: 'routes',
  DestinationRule: 'subsets',
};

/** A normalised prefix: leading "/", no trailing "/" (default "/meshlet"). */
export function normalizePrefix(prefix: string): string {
  const p = `/${prefix.replace(/^\/+|\/+$/g, '')}`;
  return p === '/' ? '' : p;
}

export function keys(prefix: string) {
  const p = normalizePrefix(prefix);
  return {
    prefix: p,
    desired: `${p}/desired/`,
    desiredKind: (kind: DesiredKind) => `${p}/desired/${kind}/`,
    desiredDoc: (kind: DesiredKind, name: string) => `${p}/desired/${kind}/${name}`,
    registry: `${p}/registry/`,
    registryService: (service: string) => `${p}/registry/${service}/`,
    instance: (service: string, version: string, node: string) => `${p}/registry/${service}/${version}/${node}`,
    naming: `${p}/naming/`,
    namingService: (service: string) => `${p}/naming/${service}/`,
    namingEndpoint: (service: string, addr: string) => `${p}/naming/${service}/${addr}`,
    nodes: `${p}/nodes/`,
    nodeStatus: (node: string) => `${p}/nodes/${node}/status`,
    nodeOwner: (node: string) => `${p}/nodes/${node}/agent`,
    nodeDrain: (node: string) => `${p}/nodes/${node}/drain`,
    /** Bumped by every CLI delete of a desired document, so a guarded write sees deletions a range compare cannot. */
    desiredDeletions: `${p}/history/desired-deletions`,
    /** Weights before the last `meshlet route`/`promote`, for `meshlet rollback`. */
    routeHistory: (name: string) => `${p}/history/routes/${name}`,
  };
}

export type Keys = ReturnType<typeof keys>;

/** `<p>/desired/services/reviews` → {kind: 'services', name: 'reviews'}; undefined for anything else. */
export function parseDesiredKey(prefix: string, key: string): { kind: DesiredKind; name: string } | undefined {
  const k = keys(prefix);
  if (!key.startsWith(k.desired)) return undefined;
  const [kind, name, ...rest] = key.slice(k.desired.length).split('/');
  if (rest.length > 0 || !name || !(kind === 'services' || kind === 'routes' || kind === 'subsets')) return undefined;
  return { kind, name };
}
