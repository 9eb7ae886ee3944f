// tcp and tls routes (issue 14, item 4): validation by path, and what each caller's sidecar gets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadDesired } from '../../agent/core/documents/desired.js';
import { formatIssue } from '../../agent/core/model/issues.js';
import { workloadsOn } from '../../agent/core/render/placement.js';
import { buildSidecarResources } from '../../agent/core/xds/build-xds.js';
import { matchesSource } from '../../agent/core/xds/source-labels.js';
import { validateEnvoy } from '../../agent/envoy-proto/envoy-validator.js';

type Json = Record<string, any>;
const docs = (...texts: string[]) => texts.join('---\n');
const tcpService = (name: string, port: number, versions: string[]) => `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: ${name} }
spec:
  protocol: tcp
  port: ${port}
  versions:
${versions.map((v, i) => `    ${v}: { image: x:${v}, port: ${port + i}, nodes: [node-a] }`).join('\n')}
`;
const client = `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: client, namespace: apps }
spec:
  port: 9000
  versions:
    v1: { image: c:1, nodes: [node-a] }
    v2: { image: c:2, port: 9001, nodes: [node-a] }
  upstreams: [{ service: db, localPort: 19100 }]
`;
const vs = (spec: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db }
spec:
  hosts: [db]
${spec}
`;
const load = (text: string) => loadDesired([{ source: 'f.yaml', text }], { xdsPort: 15010 });
const problems = (text: string) => load(text).issues.map(formatIssue);

/** The db listener of each client version's sidecar, strict-checked: [server_names or null, cluster(s)] per chain. */
function chains(text: string): Record<string, unknown[]> {
  const { desired, issues } = load(text);
  assert.deepEqual(issues.map(formatIssue), []);
  const out: Record<string, unknown[]> = {};
  for (const w of workloadsOn(desired, 'node-a').filter((x) => x.service.name === 'client')) {
    const l = buildSidecarResources(w, desired, [], []).listeners.find((x) => (x as Json).name === 'outbound_19100_db') as Json;
    assert.deepEqual(validateEnvoy('envoy.config.listener.v3.Listener', l), []);
    out[w.version.name] = l.filter_chains.map((c: Json) => {
      const t = c.filters[0].typed_config;
      return [c.filter_chain_match?.server_names ?? null, t.cluster ?? t.weighted_clusters.clusters.map((x: Json) => `${x.name}=${x.weight}`)];
    });
  }
  return out;
}

test('matchesSource: every label given must be the caller\'s; app and version are the only labels a workload has', () => {
  const caller = { service: 'client', version: 'v2', namespace: 'default' };
  assert.equal(matchesSource(undefined, caller), true);
  assert.equal(matchesSource({}, caller), true);
  assert.equal(matchesSource({ app: 'client' }, caller), true);
  assert.equal(matchesSource({ app: 'client', version: 'v2' }, caller), true);
  assert.equal(matchesSource({ app: 'client', version: 'v1' }, caller), false);
  assert.equal(matchesSource({ app: 'other' }, caller), false);
  assert.equal(matchesSource({ tier: 'web' }, caller), false);
  assert.equal(matchesSource({ constructor: 'x' } as Record<string, string>, caller), false);
});

test('tcp routes: the first whose match applies to the caller; sourceLabels and sourceNamespace pick the caller, port the Service\'s', () => {
  const text = docs(tcpService('db', 5432, ['v1', 'v2']), client, vs(`  tcp:
    - match: [{ sourceLabels: { version: v2 } }]
      route: [{ destination: { host: db, subset: v2 } }]
    - match: [{ sourceNamespace: other }]
      route: [{ destination: { host: db, subset: v2 } }]
    - match: [{ port: 5432, sourceNamespace: apps }]
      route:
        - { destination: { host: db, subset: v1 }, weight: 70 }
        - { destination: { host: db, subset: v2 }, weight: 30 }`));
  assert.deepEqual(chains(text), {
    v1: [[null, ['db|v1=70', 'db|v2=30']]],
    v2: [[null, 'db|v2']],
  });
});

test('tcp routes that match no caller leave it the Service itself', () => {
  const text = docs(tcpService('db', 5432, ['v1', 'v2']), client, vs(`  tcp:
    - match: [{ sourceLabels: { app: someone-else } }]
      route: [{ destination: { host: db, subset: v2 } }]`));
  assert.deepEqual(chains(text), { v1: [[null, 'db']], v2: [[null, 'db']] });
});

test('tls routes: one chain per route by SNI behind tls_inspector, a name taken once (first route wins), plain TCP to the tcp route', () => {
  const text = docs(tcpService('db', 5432, ['v1', 'v2']), client, vs(`  tls:
    - match: [{ sniHosts: [one.db.test, "*.wild.db.test"] }]
      route: [{ destination: { host: db, subset: v1 } }]
    - match: [{ sniHosts: [one.db.test, two.db.test] }]
      route:
        - { destination: { host: db, subset: v1 }, weight: 50 }
        - { destination: { host: db, subset: v2 }, weight: 50 }
    - match: [{ sniHosts: [three.db.test], sourceLabels: { version: v2 } }]
      route: [{ destination: { host: db, subset: v2 } }]
  tcp:
    - route: [{ destination: { host: db, subset: v2 } }]`));
  assert.deepEqual(chains(text), {
    v1: [[['*.wild.db.test', 'one.db.test'], 'db|v1'], [['two.db.test'], ['db|v1=50', 'db|v2=50']], [null, 'db|v2']],
    v2: [[['*.wild.db.test', 'one.db.test'], 'db|v1'], [['two.db.test'], ['db|v1=50', 'db|v2=50']], [['three.db.test'], 'db|v2'], [null, 'db|v2']],
  });
  const { desired } = load(text);
  const w = workloadsOn(desired, 'node-a').find((x) => x.name === 'client-v1')!;
  const l = buildSidecarResources(w, desired, [], []).listeners[0] as Json;
  assert.deepEqual(l.listener_filters.map((f: Json) => f.name), ['envoy.filters.listener.tls_inspector']);
  assert.equal(l.continue_on_listener_filters_timeout, true);
});

test('tcp and tls routes: what cannot be honoured is refused by path with the reason', () => {
  const text = docs(tcpService('db', 5432, ['v1', 'v2']), client, vs(`  tcp:
    - match:
        - { port: 5433, sourceLabels: { tier: backend, version: v1 }, destinationSubnets: [10.0.0.0/8] }
        - { sniHosts: [a.test], gateways: [my-gateway] }
      route: [{ destination: { host: db, subset: v1 }, weight: 0 }]
  tls:
    - route: [{ destination: { host: db } }]
    - match: [{ sniHosts: [] }, { port: 5432 }, { sniHosts: ["*"] }]
      route: [{ destination: { host: db, subset: v9 } }]`));
  assert.deepEqual(problems(text), [
    'f.yaml: VirtualService "db" (document 3): spec.tcp[0].match[0].destinationSubnets: destinationSubnets is not supported (a sidecar listens on 127.0.0.1 for each upstream; match on port or sniHosts)',
    'f.yaml: VirtualService "db" (document 3): spec.tcp[0].match[0].sourceLabels.tier: selecting callers by the label "tier" is not supported (a meshlet workload carries the labels app and version)',
    'f.yaml: VirtualService "db" (document 3): spec.tcp[0].match[1].sniHosts: sniHosts is a tls route match; move this route to spec.tls',
    'f.yaml: VirtualService "db" (document 3): spec.tcp[0].match[1].gateways[0]: gateway "my-gateway" is not supported (meshlet has no gateways yet; only "mesh", the sidecars)',
    'f.yaml: VirtualService "db" (document 3): spec.tcp[0].route: expected weights adding up to 100, got 0 = 0',
    'f.yaml: VirtualService "db" (document 3): spec.tls[0].match: expected matches with sniHosts: a tls route is chosen by the SNI (for any TCP connection, use spec.tcp)',
    'f.yaml: VirtualService "db" (document 3): spec.tls[1].match[0].sniHosts: expected at least 1 item, got 0',
    'f.yaml: VirtualService "db" (document 3): spec.tls[1].match[1].sniHosts: expected a list, got nothing',
    'f.yaml: VirtualService "db" (document 3): spec.tls[1].match[2].sniHosts[0]: expected a server name (lower-case DNS name, optionally starting with "*."), got the string "*"',
    'f.yaml: VirtualService "db" (document 3): spec.tcp[0].match[0].port: Service db has one port, 5432; a match on port 5433 would never be taken',
    'f.yaml: VirtualService "db" (document 3): spec.tls[1].route[0].destination.subset: Service db has no subset v9 (did you mean "v1"?); known subsets: v1, v2',
  ]);
});

test('tls routes on an http Service are refused: passthrough needs protocol tcp', () => {
  const http = `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: db }
spec:
  port: 8080
  versions: { v1: { image: x:1, nodes: [node-a] } }
`;
  assert.deepEqual(problems(docs(http, vs('  tls: [{ match: [{ sniHosts: [a.test] }], route: [{ destination: { host: db } }] }]'))), [
    'f.yaml: VirtualService "db" (document 2): spec.tls: Service db has protocol http; tls (passthrough) routes need a Service with protocol tcp',
  ]);
});
