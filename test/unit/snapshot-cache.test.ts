// The snapshot cache: only consistent, valid snapshots are published; versions come from content.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { XdsResources } from '../../agent/core/xds/build-xds.js';
import { buildProxylessResources } from '../../agent/core/xds/build-xds.js';
import type { Instance } from '../../agent/core/model/model.js';
import { TYPE } from '../../agent/core/xds/envoy-types.js';
import { greeterMesh } from '../helpers/grpc-mesh.js';
import { SnapshotCache, type Snapshot } from '../../agent/xds/snapshot-cache.js';
import { encodeResource } from '../../agent/envoy-proto/encode-resource.js';
import { findEnvoyType } from '../../agent/envoy-proto/envoy-protos.js';

/** greeter v1/v2 (90/10) and a client dialing it over xds: the mesh the real-client tests use too. */
const desiredMesh = () => greeterMesh({ weights: { v1: 90, v2: 10 } });

const INSTANCES: Instance[] = [
  { service: 'greeter', version: 'v1', node: 'n1', address: '127.0.0.1', port: 50051 },
  { service: 'greeter', version: 'v2', node: 'n1', address: '127.0.0.1', port: 50052 },
];

function greeter(instances = INSTANCES): XdsResources {
  return buildProxylessResources(['greeter'], desiredMesh(), instances, []);
}

const clone = (r: XdsResources): XdsResources => JSON.parse(JSON.stringify(r)) as XdsResources;
const NODE = 'proxyless~n1~client-v1';

function expectRejected(cache: SnapshotCache, res: XdsResources, pattern: RegExp, good: Snapshot): void {
  const r = cache.setSnapshot(NODE, res);
  assert.equal(r.ok, false);
  assert.ok(!r.ok && r.errors.some((e) => pattern.test(e)), `errors ${JSON.stringify(!r.ok && r.errors)} should match ${pattern}`);
  assert.equal(cache.getSnapshot(NODE), good, 'the last good snapshot keeps serving');
}

test('a consistent, valid snapshot is published with per-resource versions', () => {
  const cache = new SnapshotCache();
  const r = cache.setSnapshot(NODE, greeter());
  assert.ok(r.ok);
  const snap = cache.getSnapshot(NODE)!;
  assert.equal(snap.version, r.version);
  assert.deepEqual([...snap.resources[TYPE.cluster].keys()], ['greeter|v1', 'greeter|v2']);
  assert.deepEqual([...snap.resources[TYPE.endpoint].keys()], ['greeter|v1', 'greeter|v2']);
  assert.deepEqual([...snap.resources[TYPE.listener].keys()], ['greeter']);
  assert.deepEqual([...snap.resources[TYPE.route].keys()], ['greeter']);
  for (const m of Object.values(snap.resources)) for (const res of m.values()) assert.match(res.version, /^[0-9a-f]{16}$/);
});

test('a resource with several mistakes is refused with every issue listed, each with its path (the validator on the publish path)', () => {
  const cache = new SnapshotCache();
  assert.ok(cache.setSnapshot(NODE, greeter()).ok);
  const good = cache.getSnapshot(NODE)!;
  const bad = clone(greeter());
  const c = bad.clusters.find((x) => x.name === 'greeter|v1')!;
  c.lb_policy = 'ROUND_ROBINN';
  c.connect_timeout = 5;
  const r = cache.setSnapshot(NODE, bad);
  assert.ok(!r.ok);
  assert.equal(r.errors.length, 2, JSON.stringify(r.errors));
  assert.match(r.errors.join('\n'), /Cluster greeter\|v1: lb_policy: unknown value "ROUND_ROBINN"/);
  assert.match(r.errors.join('\n'), /Cluster greeter\|v1: connect_timeout: expected Duration/);
  assert.equal(cache.getSnapshot(NODE), good, 'the last good snapshot keeps serving');
  assert.ok(cache.setSnapshot(NODE, greeter()).ok, 'the valid one again is accepted');
});

test('inconsistent or invalid snapshots are refused with every error, and the last good one keeps serving', () => {
  const cache = new SnapshotCache();
  assert.ok(cache.setSnapshot(NODE, greeter()).ok);
  const good = cache.getSnapshot(NODE)!;

  const missingCluster = clone(greeter());
  missingCluster.clusters = missingCluster.clusters.filter((c) => c.name !== 'greeter|v2');
  missingCluster.endpoints = missingCluster.endpoints.filter((e) => e.cluster_name !== 'greeter|v2');
  expectRejected(cache, missingCluster, /route configuration greeter: names missing cluster greeter\|v2/, good);

  const noEndpoints = clone(greeter());
  noEndpoints.endpoints = noEndpoints.endpoints.filter((e) => e.cluster_name !== 'greeter|v1');
  expectRejected(cache, noEndpoints, /cluster greeter\|v1: EDS service greeter\|v1 has no ClusterLoadAssignment/, good);

  const noRoute = clone(greeter());
  noRoute.routes = [];
  expectRejected(cache, noRoute, /listener greeter: route configuration greeter is missing/, good);

  const invalid = clone(greeter());
  (invalid.clusters[0] as Record<string, unknown>).lb_policy = 'LEAST_REQUESTS';
  expectRejected(cache, invalid, /Cluster greeter\|v1: lb_policy: unknown value "LEAST_REQUESTS"/, good);

  const unknownField = clone(greeter());
  (unknownField.endpoints[0] as Record<string, unknown>).endpoint = [];
  expectRejected(cache, unknownField, /ClusterLoadAssignment greeter\|v1: endpoint: unknown field/, good);

  const twice = clone(greeter());
  twice.clusters.push(twice.clusters[0]!);
  expectRejected(cache, twice, /Cluster greeter\|v1: defined twice/, good);
});

test('versions come from content: same content, same versions; a change, a new version only where it changed', () => {
  const cache = new SnapshotCache();
  const seen: string[] = [];
  cache.watch(NODE, (s) => seen.push(s.version));
  const a = cache.setSnapshot(NODE, greeter());
  const first = cache.getSnapshot(NODE)!;
  const again = cache.setSnapshot(NODE, clone(greeter()));
  assert.ok(a.ok && again.ok);
  assert.equal(again.version, a.version);
  assert.equal(seen.length, 1, 'republishing the same content notifies nobody');
  // Another cache, same content: same versions (no clock, no counter).
  const other = new SnapshotCache();
  const o = other.setSnapshot('another-node', greeter());
  assert.ok(o.ok && o.version === a.version);

  const moved = greeter([INSTANCES[0]!, { ...INSTANCES[1]!, port: 50062 }]);
  const b = cache.setSnapshot(NODE, moved);
  assert.ok(b.ok && b.version !== a.version);
  assert.deepEqual(seen, [a.version, b.version]);
  const second = cache.getSnapshot(NODE)!;
  const v = (s: Snapshot, type: keyof Snapshot['resources'], name: string) => s.resources[type].get(name)!.version;
  assert.notEqual(v(second, TYPE.endpoint, 'greeter|v2'), v(first, TYPE.endpoint, 'greeter|v2'));
  assert.equal(v(second, TYPE.endpoint, 'greeter|v1'), v(first, TYPE.endpoint, 'greeter|v1'));
  assert.equal(v(second, TYPE.cluster, 'greeter|v2'), v(first, TYPE.cluster, 'greeter|v2'));
  assert.equal(v(second, TYPE.route, 'greeter'), v(first, TYPE.route, 'greeter'));
});

test('after many publications the cache holds only what it serves: the latest snapshot per client, one object per content', () => {
  const cache = new SnapshotCache();
  const nodes = ['proxyless~n1~a-v1', 'proxyless~n1~b-v1', 'proxyless~n1~c-v1'];
  // 200 route and endpoint changes, each a version never seen before, published to three clients.
  for (let i = 0; i < 200; i++) {
    const res = buildProxylessResources(['greeter'], greeterMesh({ weights: { v1: 1 + (i % 99), v2: 99 - (i % 99) } }), [INSTANCES[0]!, { ...INSTANCES[1]!, port: 40000 + i }], []);
    for (const n of nodes) assert.ok(cache.setSnapshot(n, clone(res)).ok);
  }
  const served = new Set<string>();
  for (const n of nodes) for (const [type, byName] of Object.entries(cache.getSnapshot(n)!.resources)) for (const r of byName.values()) served.add(`${type}|${r.version}`);
  assert.equal(served.size, 6, 'two clusters, two assignments, a listener and a route, shared by the three clients');
  assert.equal(cache.resourceCount(), served.size, 'nothing kept of the 199 earlier versions');
  // Equal content is one object, so the ADS server encodes it once (its bytes are keyed by the object).
  const [a, b] = nodes.map((n) => cache.getSnapshot(n)!);
  for (const type of Object.keys(a!.resources) as (keyof Snapshot['resources'])[]) {
    for (const [name, r] of a!.resources[type]) assert.equal(b!.resources[type].get(name), r, `${type} ${name}`);
  }
  for (const n of nodes) cache.deleteSnapshot(n);
  assert.equal(cache.resourceCount(), 0);
});

test('an unchanged resource keeps its object across publications; a refused input is refused again without a rebuild', () => {
  const cache = new SnapshotCache();
  assert.ok(cache.setSnapshot(NODE, greeter()).ok);
  const first = cache.getSnapshot(NODE)!;
  assert.ok(cache.setSnapshot(NODE, greeter([INSTANCES[0]!, { ...INSTANCES[1]!, port: 50062 }])).ok);
  const second = cache.getSnapshot(NODE)!;
  assert.equal(second.resources[TYPE.cluster].get('greeter|v1'), first.resources[TYPE.cluster].get('greeter|v1'));
  assert.notEqual(second.resources[TYPE.endpoint].get('greeter|v2'), first.resources[TYPE.endpoint].get('greeter|v2'));
  const bad = clone(greeter());
  bad.clusters.find((x) => x.name === 'greeter|v1')!.lb_policy = 'ROUND_ROBINN';
  const r1 = cache.setSnapshot(NODE, bad);
  const r2 = cache.setSnapshot(NODE, clone(bad));
  assert.ok(!r1.ok && !r2.ok);
  assert.deepEqual(r2.errors, r1.errors);
  assert.equal(cache.getSnapshot(NODE), second, 'the last good snapshot keeps serving');
  assert.equal(cache.resourceCount(), 6);
});

test('proxyless resources carry their content hash where grpc-js-xds compares (stat_prefix, virtual host name)', () => {
  const cache = new SnapshotCache();
  assert.ok(cache.setSnapshot(NODE, greeter()).ok);
  const route = (s: Snapshot) => s.resources[TYPE.route].get('greeter')!.json as { virtual_hosts: { name: string }[] };
  const hcm = (s: Snapshot) => (s.resources[TYPE.listener].get('greeter')!.json as { api_listener: { api_listener: { stat_prefix: string } } }).api_listener.api_listener;
  const before = cache.getSnapshot(NODE)!;
  assert.match(route(before).virtual_hosts[0]!.name, /^greeter-[0-9a-f]{16}$/);
  assert.match(hcm(before).stat_prefix, /^greeter-[0-9a-f]{16}$/);
  // A route change that only adds a map key (a fault filter config) changes the virtual host name.
  const withFault = clone(greeter());
  const r0 = (withFault.routes[0] as { virtual_hosts: { routes: Record<string, unknown>[] }[] }).virtual_hosts[0]!.routes[0]!;
  r0.typed_per_filter_config = { 'envoy.filters.http.fault': { '@type': TYPE.fault, abort: { grpc_status: 14, percentage: { numerator: 30, denominator: 'HUNDRED' } } } };
  assert.ok(cache.setSnapshot(NODE, withFault).ok);
  const after = cache.getSnapshot(NODE)!;
  assert.notEqual(route(after).virtual_hosts[0]!.name, route(before).virtual_hosts[0]!.name);
  assert.equal(hcm(after).stat_prefix, hcm(before).stat_prefix, 'the listener did not change');
  // The encoded route starts differing inside the bytes the old copy had (not only by appended bytes).
  const enc = (s: Snapshot) => Buffer.from(encodeResource(TYPE.route, s.resources[TYPE.route].get('greeter')!.json));
  const a = enc(before);
  const b = enc(after);
  assert.ok(a.some((byte, i) => b[i] !== byte));
  // Sidecar resources (no api_listener) are not touched.
  const sidecar = { listeners: [], routes: clone(greeter()).routes, clusters: clone(greeter()).clusters, endpoints: clone(greeter()).endpoints };
  assert.ok(cache.setSnapshot('sidecar~n1~x-v1', sidecar).ok);
  assert.equal(route(cache.getSnapshot('sidecar~n1~x-v1')!).virtual_hosts[0]!.name, 'greeter');
});

test('unknown node ids are served by the fallback from the listener names they ask for', () => {
  const cache = new SnapshotCache();
  assert.equal(cache.resolve('proxyless~n1~stranger-v1', ['greeter']), undefined, 'no fallback: nothing');
  const calls: [string, string[]][] = [];
  const desired = desiredMesh();
  cache.setFallback((node, names) => {
    calls.push([node, names]);
    return buildProxylessResources(names, desired, INSTANCES, []);
  });
  const snap = cache.resolve('proxyless~n1~stranger-v1', ['greeter', 'unknown'])!;
  assert.deepEqual([...snap.resources[TYPE.listener].keys()], ['greeter']);
  assert.deepEqual([...snap.resources[TYPE.cluster].keys()], ['greeter|v1', 'greeter|v2']);
  assert.equal(cache.resolve('proxyless~n1~stranger-v1', ['unknown', 'greeter']), snap, 'same names: the built snapshot is reused');
  assert.equal(calls.length, 1);
  // A node id with its own snapshot never goes to the fallback.
  assert.ok(cache.setSnapshot(NODE, greeter()).ok);
  assert.equal(cache.resolve(NODE, ['other']), cache.getSnapshot(NODE));
  assert.equal(calls.length, 1);
  // A new fallback (new desired state) reaches a watching client.
  const seen: Snapshot[] = [];
  const stop = cache.watch('proxyless~n1~stranger-v1', (s) => seen.push(s));
  cache.setFallback((_node, names) => buildProxylessResources(names, desired, INSTANCES.slice(0, 1), []));
  assert.equal(seen.length, 1);
  assert.equal((seen[0]!.resources[TYPE.endpoint].get('greeter|v2')!.json as { endpoints: unknown[] }).endpoints.length, 0);
  stop();
  // A fallback result that fails the checks is not served.
  cache.setFallback(() => ({ listeners: [{ name: 'greeter', api_listener: { api_listener: { '@type': TYPE.hcm, stat_prefix: 'x', rds: { route_config_name: 'nope', config_source: { ads: {} } } } } }], routes: [], clusters: [], endpoints: [] }));
  assert.equal(cache.resolve('proxyless~n1~third-v1', ['greeter']), undefined);
});

test('a client that asked before any fallback existed is answered as soon as one is set', () => {
  const cache = new SnapshotCache();
  const seen: Snapshot[] = [];
  const stop = cache.watch('proxyless~n1~early-v1', (s) => seen.push(s));
  assert.equal(cache.resolve('proxyless~n1~early-v1', ['greeter']), undefined);
  const desired = desiredMesh();
  cache.setFallback((_node, names) => buildProxylessResources(names, desired, INSTANCES, []));
  assert.equal(seen.length, 1, 'the watching client was pushed a snapshot');
  assert.deepEqual([...seen[0]!.resources[TYPE.listener].keys()], ['greeter']);
  // The agent sets the fallback every pass: the same output keeps the same snapshot object and pushes nothing.
  const first = cache.resolve('proxyless~n1~early-v1', ['greeter']);
  cache.setFallback((_node, names) => buildProxylessResources(names, desired, INSTANCES, []));
  assert.equal(seen.length, 1);
  assert.equal(cache.resolve('proxyless~n1~early-v1', ['greeter']), first);
  // Different output (an instance gone) is rebuilt and pushed.
  cache.setFallback((_node, names) => buildProxylessResources(names, desired, INSTANCES.slice(0, 1), []));
  assert.equal(seen.length, 2);
  stop();
});

test('encodeResource writes proto3 JSON forms (durations, wrappers, Any) as protobuf', () => {
  const res = greeter();
  const cluster = { ...res.clusters[0]!, connect_timeout: '0.250s' };
  const Cluster = findEnvoyType('envoy.config.cluster.v3.Cluster')!;
  const c = Cluster.toObject(Cluster.decode(encodeResource(TYPE.cluster, cluster)), { longs: String, enums: String }) as Record<string, any>;
  assert.deepEqual(c.connect_timeout, { seconds: '0', nanos: 250_000_000 });
  assert.equal(c.type, 'EDS');
  const Cla = findEnvoyType('envoy.config.endpoint.v3.ClusterLoadAssignment')!;
  const e = Cla.toObject(Cla.decode(encodeResource(TYPE.endpoint, res.endpoints[0]!)), { longs: String, enums: String }) as Record<string, any>;
  assert.deepEqual(e.endpoints[0].load_balancing_weight, { value: 1 });
  assert.equal(e.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value, 50051);
  const Listener = findEnvoyType('envoy.config.listener.v3.Listener')!;
  const l = Listener.toObject(Listener.decode(encodeResource(TYPE.listener, res.listeners[0]!))) as Record<string, any>;
  assert.equal(l.api_listener.api_listener.type_url, TYPE.hcm);
  const Hcm = findEnvoyType('envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager')!;
  const h = Hcm.toObject(Hcm.decode(l.api_listener.api_listener.value), { enums: String }) as Record<string, any>;
  assert.equal(h.rds.route_config_name, 'greeter');
  assert.deepEqual(h.http_filters.map((f: { name: string }) => f.name), ['envoy.filters.http.fault', 'envoy.filters.http.router']);
});

test('the test-only seam skips the strict Envoy check but not consistency; the normal path still refuses', () => {
  const cache = new SnapshotCache();
  const good = cache.setSnapshot(NODE, greeter());
  assert.ok(good.ok);
  const bad = clone(greeter());
  const route = bad.routes[0]!.virtual_hosts as { routes: { match: Record<string, unknown> }[] }[];
  route[0]!.routes[0]!.match = { safe_regex: { regex: '(?=x)' } };
  const refused = cache.setSnapshot(NODE, bad);
  assert.ok(!refused.ok && refused.errors.some((e) => /RE2/.test(e)), JSON.stringify(refused));
  const forced = cache.setSnapshotUncheckedForTests(NODE, bad);
  assert.ok(forced.ok);
  assert.notEqual(cache.getSnapshot(NODE)!.version, good.version);
  const inconsistent = clone(bad);
  inconsistent.endpoints = [];
  assert.equal(cache.setSnapshotUncheckedForTests(NODE, inconsistent).ok, false, 'consistency still applies');
});
