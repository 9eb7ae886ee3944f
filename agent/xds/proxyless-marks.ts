// Puts each proxyless resource's content hash where grpc-js-xds 1.14 cannot miss a change.
import type { XdsResources } from '../core/xds/build-xds.js';
import type { Json } from '../core/xds/envoy-types.js';
import { contentHash } from '../core/model/canonical.js';

/**
 * grpc-js-xds 1.14 compares an update with its cached copy by walking only the OLD value's keys
 * (a Buffer: only its old length), then ACKs and drops an update it thinks is equal. Seen ignored:
 * a listener-only change in RDS mode, an update that only adds map keys (e.g. a fault filter
 * config on a route), and a change that only appends bytes to an inline config. A fixed-length
 * hash of the resource's own content, early in every proxyless Listener (the API listener's HCM
 * `stat_prefix`, encoded first) and RouteConfiguration (its virtual host names), makes every
 * real change visible to that comparison. Sidecar resources (no `api_listener`) are left as they are.
 */
export function markProxyless(res: XdsResources): XdsResources {
  const routeNames = new Set<string>();
  const listeners = res.listeners.map((l) => {
    const hcm = apiListenerHcm(l);
    if (!hcm) return l;
    const rds = hcm.rds as Json | undefined;
    if (typeof rds?.route_config_name === 'string') routeNames.add(rds.route_config_name);
    const hash = contentHash(l);
    return { ...l, api_listener: { ...(l.api_listener as Json), api_listener: { ...hcm, stat_prefix: `${String(hcm.stat_prefix ?? l.name)}-${hash}` } } };
  });
  if (routeNames.size === 0) return res;
  const routes = res.routes.map((r) => {
    if (!routeNames.has(String(r.name))) return r;
    const hash = contentHash(r);
    const hosts = (r.virtual_hosts as Json[] | undefined) ?? [];
    return { ...r, virtual_hosts: hosts.map((vh) => ({ ...vh, name: `${String(vh.name)}-${hash}` })) };
  });
  return { ...res, listeners, routes };
}

function apiListenerHcm(l: Json): Json | undefined {
  const outer = l.api_listener as Json | undefined;
  const inner = outer?.api_listener as Json | undefined;
  return inner && typeof inner === 'object' ? inner : undefined;
}
