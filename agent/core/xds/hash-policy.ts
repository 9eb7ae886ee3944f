// consistentHash needs a hash_policy on each route that sends to the cluster: the route says what to hash,
// the cluster (RING_HASH / MAGLEV) how to pick a host from the hash. Without one Envoy picks at random.
import { isDeepStrictEqual } from 'node:util';
import type { Desired, HashKey, PolicySections } from '../model/model.js';
import { envoyDuration } from '../documents/duration.js';
import { resolveCluster } from './build-clusters.js';
import type { Json } from './envoy-types.js';
import { anyRule } from './any-rule.js';

/** The route's hash policy for `key`; for gRPC's xDS client only what it hashes (gRFC A42), else undefined. */
export function hashPolicy(key: HashKey, proxyless = false): Json | undefined {
  if (proxyless) {
    if ('header' in key) return { header: { header_name: key.header } };
    // One channel is one client: gRPC's stand-in for the source address. Cookies and query parameters have none.
    if ('sourceIp' in key) return { filter_state: { key: 'io.grpc.channel_id' } };
    return undefined;
  }
  if ('header' in key) return { header: { header_name: key.header } };
  if ('cookie' in key) {
    const c = key.cookie;
    // With a ttl Envoy sets the cookie on the first response when the request had none (ttl 0: a session cookie).
    return { cookie: { name: c.name, ...(c.ttlMs !== undefined ? { ttl: envoyDuration(c.ttlMs) } : {}), ...(c.path !== undefined ? { path: c.path } : {}) } };
  }
  if ('sourceIp' in key) return { connection_properties: { source_ip: true } };
  return { query_parameter: { name: key.queryParameter } };
}

/**
 * The route configuration with a hash_policy on every route whose clusters hash: one cluster, or weighted
 * clusters that all hash on the same key (Envoy has one hash policy per route, so differing keys get none).
 */
export function withHashPolicies(config: Json, desired: Desired, proxyless = false): Json {
  if (!anyRule(desired, hashes)) return config;
  const cache = new Map<string, HashKey | undefined>();
  const keyOf = (cluster: string) => {
    if (!cache.has(cluster)) cache.set(cluster, resolveCluster(cluster, desired)?.policy?.loadBalancer?.consistentHash?.key);
    return cache.get(cluster);
  };
  const hosts = (config.virtual_hosts as Json[]).map((vh) => ({
    ...vh,
    routes: (vh.routes as Json[]).map((r) => {
      const action = r.route as Json | undefined;
      if (!action) return r;
      const names = action.cluster !== undefined ? [action.cluster as string] : (((action.weighted_clusters as Json | undefined)?.clusters as Json[] | undefined) ?? []).map((c) => c.name as string);
      const keys = names.map(keyOf);
      const key = keys[0];
      if (!key || !keys.every((k) => k && isDeepStrictEqual(k, key))) return r;
      const policy = hashPolicy(key, proxyless);
      return policy ? { ...r, route: { ...action, hash_policy: [policy] } } : r;
    }),
  }));
  return { ...config, virtual_hosts: hosts };
}

/** A tcp_proxy's hash policy: only the source IP can be hashed (all its clusters must hash on it). */
export function tcpHashPolicy(clusters: string[], desired: Desired): Json | undefined {
  if (clusters.length === 0 || !anyRule(desired, hashes)) return undefined;
  const keys = clusters.map((c) => resolveCluster(c, desired)?.policy?.loadBalancer?.consistentHash?.key);
  return keys.every((k) => k !== undefined && 'sourceIp' in k) ? { hash_policy: [{ source_ip: {} }] } : undefined;
}

const hashes = (p: PolicySections | undefined) => p?.loadBalancer?.consistentHash !== undefined;
