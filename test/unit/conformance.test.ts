// Istio conformance: every real Bookinfo sample in ../shared/conformance/istio/ is accepted and becomes
// the equivalent Envoy routes, or is refused naming the unsupported field (mutual TLS).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDesired } from '../../agent/core/documents/desired.js';
import type { SourceText } from '../../agent/core/documents/documents.js';
import type { Desired } from '../../agent/core/model/model.js';
import { workloadsOn } from '../../agent/core/render/placement.js';
import type { XdsResources } from '../../agent/core/xds/build-xds.js';
import { buildSidecarResources } from '../../agent/core/xds/build-xds.js';
import { buildCluster, resolveCluster } from '../../agent/core/xds/build-clusters.js';
import type { EndpointWarning } from '../../agent/core/xds/build-clusters.js';
import { validateEnvoy } from '../../agent/envoy-proto/envoy-validator.js';

// dist/test/unit/ → the repo root → its sibling shared/ (CI clones the repo with shared/ beside it).
const SAMPLES = fileURLToPath(new URL('../../../../shared/conformance/istio/', import.meta.url));
const SERVICES = fileURLToPath(new URL('../../../fixtures/conformance/bookinfo-services.yaml', import.meta.url));
const HOSTS = ['details', 'productpage', 'ratings', 'reviews'];
const MESH = { xdsPort: 15010, nodes: ['node-a'] };
const FAULT = 'envoy.filters.http.fault';
const FAULT_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';
const HUNDRED = (n: number) => ({ numerator: n, denominator: 'HUNDRED' });

const source = (path: string): SourceText => ({ source: path, text: readFileSync(path, 'utf8') });
const sample = (name: string) => join(SAMPLES, name);

type Json = Record<string, any>;

/** The parts of an Envoy route that carry the Istio rule: match, destination(s) and fault. */
function essentials(route: Json): Json {
  const out: Json = { match: route.match };
  if (route.route.cluster !== undefined) out.cluster = route.route.cluster;
  if (route.route.weighted_clusters !== undefined) out.weighted_clusters = route.route.weighted_clusters.clusters;
  if (route.typed_per_filter_config !== undefined) out.fault = route.typed_per_filter_config[FAULT];
  return out;
}

/** The xDS resources of the consumer's sidecar on node-a (proxying to all four Bookinfo hosts). */
function sidecar(desired: Desired): XdsResources {
  const w = workloadsOn(desired, 'node-a').find((x) => x.name === 'client-v1');
  assert.ok(w, 'the client-v1 workload is placed on node-a');
  const warnings: EndpointWarning[] = [];
  const res = buildSidecarResources(w, desired, [], warnings);
  assert.deepEqual(warnings, []);
  return res;
}

/** Routes of one host, as essentials, after checking the RouteConfiguration's frame. */
function routesOf(res: XdsResources, host: string): Json[] {
  const rc = res.routes.find((r) => r.name === host) as Json | undefined;
  assert.ok(rc, `a RouteConfiguration for ${host}`);
  assert.equal(rc.virtual_hosts.length, 1);
  assert.deepEqual(rc.virtual_hosts[0].domains, ['*']);
  return rc.virtual_hosts[0].routes.map(essentials);
}

function assertEnvoyValid(res: XdsResources): void {
  const kinds: [keyof XdsResources, string][] = [
    ['listeners', 'envoy.config.listener.v3.Listener'],
    ['routes', 'envoy.config.route.v3.RouteConfiguration'],
    ['clusters', 'envoy.config.cluster.v3.Cluster'],
    ['endpoints', 'envoy.config.endpoint.v3.ClusterLoadAssignment'],
  ];
  let count = 0;
  for (const [key, type] of kinds) {
    for (const doc of res[key]) {
      count++;
      assert.deepEqual(validateEnvoy(type, doc), [], `${type} ${String(doc.name ?? doc.cluster_name)}`);
    }
  }
  assert.ok(count > 0);
}

const catchAll = { prefix: '/' };
const jason = { prefix: '/', headers: [{ name: 'end-user', string_match: { exact: 'jason' } }] };
/** The route the sidecar builds for a host no VirtualService names: all versions. */
const whole = (host: string) => [{ match: catchAll, cluster: host }];

interface Accepted {
  /** Expected routes (essentials) per host; hosts not listed get `whole(host)`. */
  routes: Record<string, Json[]>;
  /** Expected cluster names of the sidecar. */
  clusters: string[];
}

const ACCEPTED: Record<string, Accepted> = {
  'virtual-service-reviews-90-10.yaml': {
    routes: { reviews: [{ match: catchAll, weighted_clusters: [{ name: 'reviews|v1', weight: 90 }, { name: 'reviews|v2', weight: 10 }] }] },
    clusters: ['details', 'productpage', 'ratings', 'reviews|v1', 'reviews|v2'],
  },
  'virtual-service-reviews-50-v3.yaml': {
    routes: { reviews: [{ match: catchAll, weighted_clusters: [{ name: 'reviews|v1', weight: 50 }, { name: 'reviews|v3', weight: 50 }] }] },
    clusters: ['details', 'productpage', 'ratings', 'reviews|v1', 'reviews|v3'],
  },
  'virtual-service-reviews-jason-v2-v3.yaml': {
    routes: { reviews: [{ match: jason, cluster: 'reviews|v2' }, { match: catchAll, cluster: 'reviews|v3' }] },
    clusters: ['details', 'productpage', 'ratings', 'reviews|v2', 'reviews|v3'],
  },
  'virtual-service-ratings-test-abort.yaml': {
    routes: {
      ratings: [
        { match: jason, cluster: 'ratings|v1', fault: { '@type': FAULT_TYPE, abort: { http_status: 500, percentage: HUNDRED(100) } } },
        { match: catchAll, cluster: 'ratings|v1' },
      ],
    },
    clusters: ['details', 'productpage', 'ratings|v1', 'reviews'],
  },
  'virtual-service-ratings-test-delay.yaml': {
    routes: {
      ratings: [
        { match: jason, cluster: 'ratings|v1', fault: { '@type': FAULT_TYPE, delay: { fixed_delay: '7s', percentage: HUNDRED(100) } } },
        { match: catchAll, cluster: 'ratings|v1' },
      ],
    },
    clusters: ['details', 'productpage', 'ratings|v1', 'reviews'],
  },
  'fault-injection-details-v1.yaml': {
    routes: {
      details: [
        { match: catchAll, cluster: 'details|v1', fault: { '@type': FAULT_TYPE, abort: { http_status: 555, percentage: HUNDRED(100) } } },
        { match: catchAll, cluster: 'details|v1' },
      ],
    },
    clusters: ['details|v1', 'productpage', 'ratings', 'reviews'],
  },
  'virtual-service-all-v1.yaml': {
    routes: Object.fromEntries(HOSTS.map((h) => [h, [{ match: catchAll, cluster: `${h}|v1` }]])),
    clusters: HOSTS.map((h) => `${h}|v1`),
  },
  'destination-rule-all.yaml': {
    // Subsets alone change no route: with no VirtualService traffic goes to all versions.
    routes: {},
    clusters: HOSTS,
  },
};

/** The subsets destination-rule-all.yaml (and its mTLS twin) declares, by host. */
const DR_ALL_SUBSETS: Record<string, string[]> = {
  productpage: ['v1'],
  reviews: ['v1', 'v2', 'v3'],
  ratings: ['v1', 'v2', 'v2-mysql', 'v2-mysql-vm'],
  details: ['v1', 'v2'],
};

const REFUSED = 'destination-rule-all-mtls.yaml';

describe('Istio conformance: the Bookinfo samples', () => {
  // Every test below fails (ENOENT) when the folder is missing: the samples are required, never skipped.
  test('the folder holds exactly the samples this test knows', () => {
    const files = readdirSync(SAMPLES).filter((f) => f.endsWith('.yaml')).sort();
    assert.deepEqual(files, [...Object.keys(ACCEPTED), REFUSED].sort());
  });

  test('the services fixture is valid on its own and places the consumer on node-a', () => {
    const { desired, issues } = loadDesired([source(SERVICES)], MESH);
    assert.deepEqual(issues, []);
    assert.deepEqual(desired.services.map((s) => s.name), ['client', ...HOSTS]);
    assert.deepEqual(sidecar(desired).routes.map((r) => r.name), HOSTS);
  });

  for (const [file, want] of Object.entries(ACCEPTED)) {
    test(`${file} is accepted and becomes the equivalent routes`, () => {
      const { desired, issues } = loadDesired([source(SERVICES), source(sample(file))], MESH);
      assert.deepEqual(issues, []);
      const res = sidecar(desired);
      for (const host of HOSTS) assert.deepEqual(routesOf(res, host), want.routes[host] ?? whole(host), host);
      assert.deepEqual(res.clusters.map((c) => c.name), want.clusters);
      assert.deepEqual(res.endpoints.map((e) => e.cluster_name), want.clusters);
      assertEnvoyValid(res);
    });
  }

  // Istio applies the VirtualService samples over destination-rule-all.yaml: the same routes must result.
  for (const file of Object.keys(ACCEPTED).filter((f) => f.startsWith('virtual-service-'))) {
    test(`${file} over destination-rule-all.yaml gives the same routes`, () => {
      const { desired, issues } = loadDesired([source(SERVICES), source(sample('destination-rule-all.yaml')), source(sample(file))], MESH);
      assert.deepEqual(issues, []);
      const res = sidecar(desired);
      for (const host of HOSTS) assert.deepEqual(routesOf(res, host), ACCEPTED[file]!.routes[host] ?? whole(host), host);
      assertEnvoyValid(res);
    });
  }

  test('destination-rule-all.yaml: each subset is a cluster named <host>|<subset> selecting its version', () => {
    const { desired, issues } = loadDesired([source(SERVICES), source(sample('destination-rule-all.yaml'))], MESH);
    assert.deepEqual(issues, []);
    assert.deepEqual(
      Object.fromEntries(desired.subsets.map((d) => [d.host, d.subsets.map((s) => [s.name, s.version])])),
      Object.fromEntries(Object.entries(DR_ALL_SUBSETS).map(([h, subs]) => [h, subs.map((s) => [s, s])])),
    );
    for (const [host, subsets] of Object.entries(DR_ALL_SUBSETS)) {
      for (const subset of subsets) {
        const target = resolveCluster(`${host}|${subset}`, desired);
        assert.ok(target, `${host}|${subset} resolves`);
        assert.equal(target.version, subset);
        const cluster = buildCluster(target, { proxyless: false });
        assert.equal(cluster.name, `${host}|${subset}`);
        assert.equal((cluster.eds_cluster_config as Json).service_name, `${host}|${subset}`);
        assert.deepEqual(validateEnvoy('envoy.config.cluster.v3.Cluster', cluster), []);
      }
      assert.equal(resolveCluster(`${host}|v9`, desired), undefined);
    }
  });

  test(`${REFUSED} is refused: ISTIO_MUTUAL is not supported, at spec.trafficPolicy.tls.mode of each rule`, () => {
    const { issues } = loadDesired([source(SERVICES), source(sample(REFUSED))], MESH);
    assert.equal(issues.length, 4, issues.map((i) => i.message).join('\n'));
    assert.deepEqual(issues.map((i) => [i.doc.kind, i.doc.name, i.doc.index]), [
      ['DestinationRule', 'productpage', 0],
      ['DestinationRule', 'reviews', 1],
      ['DestinationRule', 'ratings', 2],
      ['DestinationRule', 'details', 3],
    ]);
    for (const i of issues) {
      assert.equal(i.doc.source, sample(REFUSED));
      assert.equal(i.path, 'spec.trafficPolicy.tls.mode');
      assert.match(i.message, /^ISTIO_MUTUAL is not supported/);
    }
  });
});
