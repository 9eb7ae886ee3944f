// The ADS server against a bare client speaking the protocol by hand; invariants are checked on every response.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import type { XdsResources } from '../../agent/core/xds/build-xds.js';
import { buildProxylessResources } from '../../agent/core/xds/build-xds.js';
import type { Desired, Instance } from '../../agent/core/model/model.js';
import { TYPE } from '../../agent/core/xds/envoy-types.js';
import { loadDesired } from '../../agent/core/documents/desired.js';
import { renderNode, type Templates } from '../../agent/core/render/render-node.js';
import { DEFAULT_ADMIN_PORTS } from '../../agent/core/render/admin-ports.js';
import { loadTemplates } from '../../agent/adapters/files/templates.js';
import { SnapshotCache } from '../../agent/xds/snapshot-cache.js';
import { AdsServer, type AdsEvent } from '../../agent/xds/ads-server.js';
import { RawAdsClient, decodeResources, resourceNames, short, type RawResponse } from '../helpers/raw-ads-client.js';
import { fixture } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';

const NODE_ID = 'sidecar~node-a~productpage-v1';
const CLUSTERS = ['details', 'reviews|v1', 'reviews|v2', 'reviews|v3'];
const LISTENERS = ['outbound_19001_details', 'outbound_19002_reviews'];
const ROUTES = ['details', 'reviews'];

const read = (name: string) => readFileSync(fixture('bookinfo', name), 'utf8');
const SERVICES = read('services.yaml');
const ROUTES_YAML = read('routes.yaml');
const INSTANCES = parse(read('instances.yaml')) as Instance[];
let templates: Templates | undefined;

/** Bookinfo's desired state, optionally edited, as the agent would load it. */
function bookinfo(edit: { services?: (t: string) => string; reviewsRoute?: string } = {}): Desired {
  const routes = edit.reviewsRoute ? [edit.reviewsRoute, ...ROUTES_YAML.split(/^---$/m).slice(1)].join('\n---\n') : ROUTES_YAML;
  const { desired, issues } = loadDesired(
    [
      { source: 'services.yaml', text: edit.services ? edit.services(SERVICES) : SERVICES },
      { source: 'routes.yaml', text: routes },
    ],
    { xdsPort: 15010 },
  );
  assert.deepEqual(issues, []);
  return desired;
}

async function sidecarResources(desired = bookinfo(), instances = INSTANCES): Promise<XdsResources> {
  templates ??= await loadTemplates();
  const r = renderNode(desired, instances, templates, {
    node: 'node-a', advertiseAddress: '127.0.0.1', prefix: '/meshlet', sidecarImage: 'envoy', paths: { envoyDir: 'envoy', xdsDir: 'xds' },
    xdsPort: 15010, adminPorts: DEFAULT_ADMIN_PORTS, previousAdminPorts: {},
  });
  return r.snapshots[NODE_ID]!;
}

function reviewsRoute(weights: Record<string, number>): string {
  return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
    - name: jason-canary
      match: [{ headers: { end-user: { exact: jason } } }]
      route: [{ destination: { host: reviews, subset: v2 } }]
    - route:
${Object.entries(weights).map(([v, w]) => `        - { destination: { host: reviews, subset: ${v} }, weight: ${w} }`).join('\n')}
`;
}

/** The same resources with one cluster's connect timeout changed: a cluster-only change. */
function withClusterChange(res: XdsResources, timeout = '2s'): XdsResources {
  const clusters = res.clusters.map((c) => (c.name === 'details' ? { ...c, connect_timeout: timeout } : c));
  return { ...res, clusters };
}

interface Setup {
  cache: SnapshotCache;
  server: AdsServer;
  port: number;
  events: AdsEvent[];
  client(nodeId?: string): RawAdsClient;
}

async function setup(t: { after(fn: () => unknown): void }, resources?: XdsResources): Promise<Setup> {
  const cache = new SnapshotCache();
  const set = cache.setSnapshot(NODE_ID, resources ?? (await sidecarResources()));
  assert.ok(set.ok, JSON.stringify(set));
  const server = new AdsServer({ cache });
  const port = await server.start(0);
  const events: AdsEvent[] = [];
  server.on((e) => events.push(e));
  const clients: RawAdsClient[] = [];
  t.after(async () => {
    for (const c of clients) {
      assert.deepEqual(c.violations, [], `protocol invariants (${c.nodeId})`);
      c.close();
    }
    await server.stop();
  });
  return {
    cache, server, port, events,
    client(nodeId = NODE_ID) {
      const c = new RawAdsClient(port, nodeId);
      clients.push(c);
      return c;
    },
  };
}

interface Fetched {
  cds: RawResponse;
  eds: RawResponse;
  lds: RawResponse;
  rds: RawResponse;
}

/** What Envoy does at start: CDS and LDS by wildcard, EDS and RDS by the names they need; everything ACKed. */
async function fetchAll(c: RawAdsClient): Promise<Fetched> {
  c.send({ type_url: TYPE.cluster });
  const cds = await c.next();
  assert.equal(cds.type_url, TYPE.cluster);
  assert.deepEqual(resourceNames(cds), CLUSTERS);
  c.ack(cds);
  c.send({ type_url: TYPE.endpoint, resource_names: CLUSTERS });
  const eds = await c.next();
  assert.equal(eds.type_url, TYPE.endpoint);
  assert.deepEqual(resourceNames(eds), CLUSTERS);
  c.ack(eds, CLUSTERS);
  c.send({ type_url: TYPE.listener });
  const lds = await c.next();
  assert.deepEqual(resourceNames(lds), LISTENERS);
  c.ack(lds);
  c.send({ type_url: TYPE.route, resource_names: ROUTES });
  const rds = await c.next();
  assert.deepEqual(resourceNames(rds), ROUTES);
  c.ack(rds, ROUTES);
  await c.none(300); // ACKs get no reply
  return { cds, eds, lds, rds };
}

/** Responses arriving within `ms` (after the first one). */
async function collect(c: RawAdsClient, ms = 300): Promise<RawResponse[]> {
  const first = await c.next();
  await new Promise((r) => setTimeout(r, ms));
  return [first, ...c.pending()];
}

test('initial fetch: each subscription answered once, ACKs get no reply, status shows the ACKed versions', async (t) => {
  const s = await setup(t);
  const c = s.client();
  const f = await fetchAll(c);
  const status = s.server.clients()[NODE_ID]!;
  assert.equal(status.connected, true);
  assert.deepEqual(status.acked, {
    [TYPE.cluster]: f.cds.version_info,
    [TYPE.endpoint]: f.eds.version_info,
    [TYPE.listener]: f.lds.version_info,
    [TYPE.route]: f.rds.version_info,
  });
  assert.deepEqual(status.nacked, {});
  assert.equal(s.events.filter((e) => e.kind === 'ack').length, 4);
  assert.deepEqual(s.events[0], { kind: 'connect', nodeId: NODE_ID });
  // An ACK repeated (same nonce, same version) changes nothing and gets no reply either.
  c.ack(f.rds, ROUTES);
  await c.none(300);
  c.close();
  await waitFor('disconnect', () => s.server.clients()[NODE_ID]?.connected === false, 5_000, 20);
  assert.deepEqual(s.events.at(-1), { kind: 'disconnect', nodeId: NODE_ID });
});

test('a NACKed version is recorded and not sent again; the next different snapshot is', async (t) => {
  const s = await setup(t);
  const c = s.client();
  const f = await fetchAll(c);
  const changed = await sidecarResources(bookinfo({ reviewsRoute: reviewsRoute({ v1: 50, v3: 50 }) }));
  assert.ok(s.cache.setSnapshot(NODE_ID, changed).ok);
  const pushed = await collect(c);
  assert.deepEqual(pushed.map((r) => short(r.type_url)), ['RouteConfiguration'], 'only the routes changed');
  const bad = pushed[0]!;
  c.nack(bad, f.rds.version_info, ROUTES, 'weights refused');
  await c.none(300);
  const status = s.server.clients()[NODE_ID]!;
  assert.equal(status.nacked[TYPE.route]?.version, bad.version_info);
  assert.equal(status.nacked[TYPE.route]?.message, 'weights refused');
  assert.ok(!Number.isNaN(Date.parse(status.nacked[TYPE.route]!.at)));
  assert.equal(status.acked[TYPE.route], f.rds.version_info, 'the ACKed version stays the last good one');
  assert.ok(s.events.some((e) => e.kind === 'nack' && e.version === bad.version_info));
  // Asking again (the client's retry) or republishing the same content does not bring the refused version back.
  c.nack(bad, f.rds.version_info, ROUTES, 'weights refused');
  assert.ok(s.cache.setSnapshot(NODE_ID, changed).ok);
  await c.none(300);
  // A different snapshot is pushed; ACKing it clears the NACK from the status.
  assert.ok(s.cache.setSnapshot(NODE_ID, await sidecarResources(bookinfo({ reviewsRoute: reviewsRoute({ v1: 20, v3: 80 }) }))).ok);
  const next = await c.next();
  assert.equal(next.type_url, TYPE.route);
  assert.notEqual(next.version_info, bad.version_info);
  c.ack(next, ROUTES);
  await c.none(300);
  const after = s.server.clients()[NODE_ID]!;
  assert.equal(after.acked[TYPE.route], next.version_info);
  assert.equal(after.nacked[TYPE.route], undefined);
});

test('a NACKed endpoints version is not re-sent even by the answer owed after a cluster update', async (t) => {
  const s = await setup(t);
  const c = s.client();
  const f = await fetchAll(c);
  const moved = (port: number) => INSTANCES.map((i) => (i.service === 'details' && i.node === 'node-b' ? { ...i, port } : i));
  assert.ok(s.cache.setSnapshot(NODE_ID, await sidecarResources(bookinfo(), moved(9181))).ok);
  const bad = await c.next();
  assert.equal(bad.type_url, TYPE.endpoint);
  c.nack(bad, f.eds.version_info, CLUSTERS, 'endpoint refused');
  await c.none(300);
  // A cluster update makes Envoy re-request endpoints (nonce of the NACKed response, old version).
  assert.ok(s.cache.setSnapshot(NODE_ID, withClusterChange(await sidecarResources(bookinfo(), moved(9181)))).ok);
  const cds = await c.next();
  assert.equal(cds.type_url, TYPE.cluster);
  c.ack(cds);
  c.send({ type_url: TYPE.endpoint, resource_names: CLUSTERS, version_info: f.eds.version_info, response_nonce: bad.nonce });
  await c.none(300);
  assert.equal(s.server.clients()[NODE_ID]!.nacked[TYPE.endpoint]?.version, bad.version_info);
  // New endpoint content is sent.
  assert.ok(s.cache.setSnapshot(NODE_ID, withClusterChange(await sidecarResources(bookinfo(), moved(9281)))).ok);
  const next = await c.next();
  assert.equal(next.type_url, TYPE.endpoint);
  assert.notEqual(next.version_info, bad.version_info);
});

test('a request with a stale nonce gets no reply; the same request with the latest nonce does', async (t) => {
  const s = await setup(t);
  const c = s.client();
  const f = await fetchAll(c);
  assert.ok(s.cache.setSnapshot(NODE_ID, withClusterChange(await sidecarResources())).ok);
  const cds2 = await c.next();
  assert.equal(cds2.type_url, TYPE.cluster);
  // A request still answering the first CDS response (now stale) asks for other names: ignored.
  c.send({ type_url: TYPE.cluster, resource_names: ['details'], version_info: f.cds.version_info, response_nonce: f.cds.nonce });
  await c.none(300);
  c.send({ type_url: TYPE.cluster, resource_names: ['details'], version_info: cds2.version_info, response_nonce: cds2.nonce });
  const named = await c.next();
  assert.deepEqual(resourceNames(named), ['details']);
  assert.ok(Number(named.nonce) > Number(cds2.nonce));
});

test('push order on a change: clusters, endpoints, listeners, routes, then clusters without the removed ones', async (t) => {
  const s = await setup(t);
  const c = s.client();
  await fetchAll(c);
  // ratings becomes a proxy upstream of productpage (listener, route, cluster and endpoints added),
  // reviews goes 100% to v1 (clusters reviews|v2 and |v3 removed) and reviews v1 moves (endpoints changed).
  const desired = bookinfo({
    services: (text) => text.replace('mode: naming\n      env: RATINGS_TARGET', 'mode: proxy\n      localPort: 19004'),
    reviewsRoute: 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: reviews }\nspec:\n  hosts: [reviews]\n  http:\n    - route: [{ destination: { host: reviews, subset: v1 } }]\n',
  });
  const instances = INSTANCES.map((i) => (i.service === 'reviews' && i.version === 'v1' ? { ...i, port: 9182 } : i));
  const set = s.cache.setSnapshot(NODE_ID, await sidecarResources(desired, instances));
  assert.ok(set.ok, JSON.stringify(set));
  const pushed = await collect(c, 400);
  assert.deepEqual(pushed.map((r) => short(r.type_url)), ['Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration', 'Cluster']);
  const [cds, eds, lds, rds, finalCds] = pushed as [RawResponse, RawResponse, RawResponse, RawResponse, RawResponse];
  assert.deepEqual(resourceNames(cds), ['details', 'ratings', 'reviews|v1', 'reviews|v2', 'reviews|v3'], 'removed clusters kept until the routes moved');
  assert.deepEqual(resourceNames(eds), ['details', 'reviews|v1'], 'the subscribed assignments that still exist');
  const v1 = decodeResources(eds).find((x) => x.cluster_name === 'reviews|v1') as { endpoints: { lb_endpoints: { endpoint: { address: { socket_address: { port_value: number } } } }[] }[] };
  assert.equal(v1.endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address.port_value, 9182);
  assert.deepEqual(resourceNames(lds), ['outbound_19001_details', 'outbound_19002_reviews', 'outbound_19004_ratings']);
  assert.deepEqual(resourceNames(rds), ROUTES, 'RDS carries what was asked for');
  assert.deepEqual(resourceNames(finalCds), ['details', 'ratings', 'reviews|v1']);
  // Envoy then asks for the new route and endpoints by name; each is answered.
  c.ack(rds, [...ROUTES, 'ratings']);
  const ratingsRoute = await c.next();
  assert.deepEqual(resourceNames(ratingsRoute), ['details', 'ratings', 'reviews']);
});

test('after a cluster update the endpoints re-request is answered even though nothing changed', async (t) => {
  const s = await setup(t);
  const c = s.client();
  const f = await fetchAll(c);
  // Without a cluster update, the same request is just a repeated ACK.
  c.send({ type_url: TYPE.endpoint, resource_names: CLUSTERS, version_info: f.eds.version_info, response_nonce: f.eds.nonce });
  await c.none(300);
  assert.ok(s.cache.setSnapshot(NODE_ID, withClusterChange(await sidecarResources())).ok);
  const pushed = await collect(c);
  assert.deepEqual(pushed.map((r) => short(r.type_url)), ['Cluster'], 'endpoints did not change: only CDS is pushed');
  c.ack(pushed[0]!);
  c.send({ type_url: TYPE.endpoint, resource_names: CLUSTERS, version_info: f.eds.version_info, response_nonce: f.eds.nonce });
  const eds = await c.next();
  assert.equal(eds.type_url, TYPE.endpoint);
  assert.equal(eds.version_info, f.eds.version_info, 'same content, same version');
  assert.deepEqual(resourceNames(eds), CLUSTERS);
  c.ack(eds, CLUSTERS);
  await c.none(300);
});

test('wildcard and named subscriptions for listeners and clusters; no wildcard for routes and endpoints', async (t) => {
  const s = await setup(t);
  const named = s.client();
  named.send({ type_url: TYPE.cluster, resource_names: ['details', 'missing'] });
  const one = await named.next();
  assert.deepEqual(resourceNames(one), ['details'], 'a missing name is simply absent (it does not exist)');
  // An empty list after names unsubscribes everything; it is not a wildcard.
  named.send({ type_url: TYPE.cluster, resource_names: [], version_info: one.version_info, response_nonce: one.nonce });
  await named.none(300);
  assert.ok(s.cache.setSnapshot(NODE_ID, withClusterChange(await sidecarResources(), '3s')).ok);
  await named.none(300);

  const wild = s.client();
  wild.send({ type_url: TYPE.listener });
  assert.deepEqual(resourceNames(await wild.next()), LISTENERS);
  wild.send({ type_url: TYPE.route });
  wild.send({ type_url: TYPE.endpoint });
  await wild.none(300);

  const explicit = s.client();
  explicit.send({ type_url: TYPE.cluster, resource_names: ['*'] });
  assert.deepEqual(resourceNames(await explicit.next()), CLUSTERS);

  const listener = s.client();
  listener.send({ type_url: TYPE.listener, resource_names: ['outbound_19001_details'] });
  assert.deepEqual(resourceNames(await listener.next()), ['outbound_19001_details']);
});

test('a client the agent did not start is served by the fallback for the services it asks for', async (t) => {
  const s = await setup(t);
  const desired = bookinfo();
  s.cache.setFallback((_node, names) => buildProxylessResources(names, desired, INSTANCES, []));
  const c = s.client('proxyless~elsewhere~tool-v1');
  c.send({ type_url: TYPE.listener, resource_names: ['ratings', 'not-a-service'] });
  const lds = await c.next();
  assert.deepEqual(resourceNames(lds), ['ratings']);
  const hcm = decodeResources(lds)[0] as { api_listener: { api_listener: { type_url: string } } };
  assert.equal(hcm.api_listener.api_listener.type_url, TYPE.hcm);
  c.ack(lds, ['ratings', 'not-a-service']);
  c.send({ type_url: TYPE.route, resource_names: ['ratings'] });
  const rds = await c.next();
  assert.deepEqual(resourceNames(rds), ['ratings']);
  c.send({ type_url: TYPE.cluster, resource_names: ['ratings'] });
  assert.deepEqual(resourceNames(await c.next()), ['ratings']);
  c.send({ type_url: TYPE.endpoint, resource_names: ['ratings'] });
  const localities = (r: RawResponse) => (decodeResources(r)[0] as { endpoints: unknown[] }).endpoints.length;
  assert.equal(localities(await c.next()), 3);
  // A new desired state (ratings on node-c gone) reaches the watching client through a new fallback.
  s.cache.setFallback((_node, names) => buildProxylessResources(names, desired, INSTANCES.filter((i) => i.node !== 'node-c'), []));
  const pushed = await c.next();
  assert.equal(pushed.type_url, TYPE.endpoint);
  assert.equal(localities(pushed), 2);
});

test('a client that connects before its snapshot exists is answered when the snapshot is set', async (t) => {
  const s = await setup(t);
  const early = 'sidecar~node-a~reviews-v1';
  const c = s.client(early);
  c.send({ type_url: TYPE.cluster });
  c.send({ type_url: TYPE.listener });
  await c.none(200);
  assert.equal(s.server.clients()[early]?.connected, true);
  assert.ok(s.cache.setSnapshot(early, await sidecarResources()).ok);
  const pushed = await collect(c);
  assert.deepEqual(pushed.map((r) => short(r.type_url)), ['Cluster', 'Listener'], 'subscribed types, in push order');
});

test('a stream whose first request has no node id is refused', async (t) => {
  const s = await setup(t);
  const c = s.client();
  c.send({ type_url: TYPE.listener, node: { id: '' } });
  await waitFor('the stream error', () => c.error, 5_000, 20);
  assert.equal(c.error!.code, 3); // INVALID_ARGUMENT
});
