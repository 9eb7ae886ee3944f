// Cross-resource references in one snapshot: what a client would wait for forever if it were missing.
import type { XdsResources } from '../core/xds/build-xds.js';
import type { Json } from '../core/xds/envoy-types.js';
import { TYPE } from '../core/xds/envoy-types.js';

/**
 * Every problem (go-control-plane's Snapshot.Consistent, plus route → cluster): an EDS cluster
 * whose service name has no ClusterLoadAssignment, a listener (filter chain or API listener)
 * naming a RouteConfiguration that is absent, a route or TCP proxy naming an absent cluster.
 */
export function consistencyErrors(res: XdsResources): string[] {
  const errors: string[] = [];
  const clusters = new Set(res.clusters.map((c) => String(c.name)));
  const assignments = new Set(res.endpoints.map((e) => String(e.cluster_name)));
  const routeConfigs = new Set(res.routes.map((r) => String(r.name)));
  for (const c of res.clusters) {
    if (c.type !== 'EDS') continue;
    const eds = c.eds_cluster_config as Json | undefined;
    const service = String(eds?.service_name || c.name);
    if (!assignments.has(service)) errors.push(`cluster ${String(c.name)}: EDS service ${service} has no ClusterLoadAssignment`);
  }
  for (const l of res.listeners) {
    for (const { hcm, tcp } of networkConfigs(l)) {
      const rds = hcm?.rds as Json | undefined;
      if (rds && !routeConfigs.has(String(rds.route_config_name))) errors.push(`listener ${String(l.name)}: route configuration ${String(rds.route_config_name)} is missing`);
      const inline = hcm?.route_config as Json | undefined;
      if (inline) for (const name of routeClusters(inline)) if (!clusters.has(name)) errors.push(`listener ${String(l.name)}: inline route names missing cluster ${name}`);
      if (tcp) for (const name of actionClusters(tcp)) if (!clusters.has(name)) errors.push(`listener ${String(l.name)}: TCP proxy names missing cluster ${name}`);
    }
  }
  for (const r of res.routes) {
    for (const name of routeClusters(r)) if (!clusters.has(name)) errors.push(`route configuration ${String(r.name)}: names missing cluster ${name}`);
  }
  return errors;
}

// HCM and TCP proxy configs of a listener: in filter chains (sidecar) or as its API listener (proxyless).
function networkConfigs(l: Json): { hcm?: Json; tcp?: Json }[] {
  const out: { hcm?: Json; tcp?: Json }[] = [];
  const consider = (cfg: Json | undefined) => {
    if (cfg?.['@type'] === TYPE.hcm) out.push({ hcm: cfg });
    else if (cfg?.['@type'] === TYPE.tcpProxy) out.push({ tcp: cfg });
  };
  consider((l.api_listener as Json | undefined)?.api_listener as Json | undefined);
  const chains = [...((l.filter_chains as Json[] | undefined) ?? []), ...(l.default_filter_chain ? [l.default_filter_chain as Json] : [])];
  for (const chain of chains) for (const f of (chain.filters as Json[] | undefined) ?? []) consider(f.typed_config as Json | undefined);
  return out;
}

function routeClusters(rc: Json): string[] {
  const names: string[] = [];
  for (const vh of (rc.virtual_hosts as Json[] | undefined) ?? []) {
    for (const r of (vh.routes as Json[] | undefined) ?? []) {
      const action = r.route as Json | undefined;
      if (!action) continue;
      names.push(...actionClusters(action));
      for (const m of (action.request_mirror_policies as Json[] | undefined) ?? []) if (typeof m.cluster === 'string') names.push(m.cluster);
    }
  }
  return names;
}

// `cluster` or `weighted_clusters.clusters[].name` (the same shape in a RouteAction and a TcpProxy).
function actionClusters(action: Json): string[] {
  if (typeof action.cluster === 'string') return [action.cluster];
  const wc = action.weighted_clusters as Json | undefined;
  return ((wc?.clusters as Json[] | undefined) ?? []).map((c) => String(c.name));
}
