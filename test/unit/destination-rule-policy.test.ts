// DestinationRule traffic policies: every new field refused by path when bad; a fixture using them all
// rendered to the expected files (golden, UPDATE_GOLDEN=1 rewrites fixtures/destination-rule/expected/),
// passing the strict check, and accepted by the real Envoy (`envoy --mode validate`, TLS files present).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadDesired } from '../../agent/core/documents/desired.js';
import { readInstance } from '../../agent/core/documents/instances.js';
import { IssueSink, type Issue } from '../../agent/core/model/issues.js';
import type { Instance } from '../../agent/core/model/model.js';
import { renderNode } from '../../agent/core/render/render-node.js';
import { toYaml } from '../../agent/core/render/yaml-emit.js';
import { loadTemplates } from '../../agent/adapters/files/templates.js';
import { checkNodeEnvoy } from '../../agent/envoy-proto/check-envoy.js';
import { parse } from 'yaml';
import { ROOT, fixture, tempDir } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';
import { staticBootstrap } from '../helpers/fuzz-checks.js';
import { validateBootstrap } from '../helpers/envoy.js';
import { makeTestCerts } from '../helpers/test-certs.js';
import type { Json } from '../../agent/core/xds/envoy-types.js';

process.chdir(ROOT);

const SERVICE = `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: api }
spec:
  port: 9080
  versions: { v1: { image: api:1, nodes: [node-a] } }
`;
const rule = (policy: string) => `${SERVICE}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api }
spec:
  host: api
  trafficPolicy: ${policy}
`;

function issuesOf(text: string): Issue[] {
  return loadDesired([{ source: 'dr.yaml', text }], { xdsPort: 15010, nodes: ['node-a'] }).issues;
}

const P = 'spec.trafficPolicy';
/** Bad value → the one path it is refused at and what the message says. */
const BAD: [string, string, RegExp][] = [
  ['{ loadBalancer: { simple: PASSTHROUGH } }', `${P}.loadBalancer.simple`, /PASSTHROUGH is not supported \(meshlet has no original-destination clusters/],
  ['{ loadBalancer: { simple: ROUND_ROBIN, consistentHash: { httpHeaderName: x } } }', `${P}.loadBalancer.consistentHash`, /either simple or consistentHash/],
  ['{ loadBalancer: { simple: FASTEST } }', `${P}.loadBalancer.simple`, /expected one of ROUND_ROBIN \| UNSPECIFIED \| LEAST_REQUEST \| LEAST_CONN \| RANDOM/],
  ['{ loadBalancer: { consistentHash: {} } }', `${P}.loadBalancer.consistentHash`, /expected one of httpHeaderName, httpCookie, useSourceIp, httpQueryParameterName/],
  ['{ loadBalancer: { consistentHash: { httpHeaderName: x, useSourceIp: true } } }', `${P}.loadBalancer.consistentHash.useSourceIp`, /give one hash key; httpHeaderName is given too/],
  ['{ loadBalancer: { consistentHash: { httpHeaderName: "a b" } } }', `${P}.loadBalancer.consistentHash.httpHeaderName`, /expected an HTTP header name/],
  ['{ loadBalancer: { consistentHash: { httpCookie: { ttl: 10s } } } }', `${P}.loadBalancer.consistentHash.httpCookie.name`, /expected a cookie name, got nothing/],
  ['{ loadBalancer: { consistentHash: { httpCookie: { name: s, ttl: ten } } } }', `${P}.loadBalancer.consistentHash.httpCookie.ttl`, /expected a duration/],
  ['{ loadBalancer: { consistentHash: { httpCookie: { name: s, path: "no-slash" } } } }', `${P}.loadBalancer.consistentHash.httpCookie.path`, /expected a cookie path starting with "\/"/],
  ['{ loadBalancer: { consistentHash: { httpCookie: { name: s, attributes: [] } } } }', `${P}.loadBalancer.consistentHash.httpCookie.attributes`, /attributes is not supported/],
  ['{ loadBalancer: { consistentHash: { useSourceIp: false } } }', `${P}.loadBalancer.consistentHash.useSourceIp`, /expected true/],
  ['{ loadBalancer: { consistentHash: { useSourceIp: "yes" } } }', `${P}.loadBalancer.consistentHash.useSourceIp`, /expected true or false/],
  ['{ loadBalancer: { consistentHash: { httpQueryParameterName: "a=b" } } }', `${P}.loadBalancer.consistentHash.httpQueryParameterName`, /expected a query parameter name/],
  ['{ loadBalancer: { consistentHash: { httpHeaderName: x, ringHash: { minimumRingSize: 0 } } } }', `${P}.loadBalancer.consistentHash.ringHash.minimumRingSize`, /from 1 to 8388608/],
  ['{ loadBalancer: { consistentHash: { httpHeaderName: x, maglev: { tableSize: 65536 } } } }', `${P}.loadBalancer.consistentHash.maglev.tableSize`, /expected a prime number .* got 65536/],
  ['{ loadBalancer: { consistentHash: { httpHeaderName: x, ringHash: {}, maglev: {} } } }', `${P}.loadBalancer.consistentHash.maglev`, /either ringHash or maglev/],
  ['{ loadBalancer: { consistentHash: { httpHeaderName: x, minimumRingSize: 9000000 } } }', `${P}.loadBalancer.consistentHash.minimumRingSize`, /from 1 to 8388608/],
  ['{ loadBalancer: { consistentHash: { httpHeaderName: x, minimumRingSize: 10, ringHash: {} } } }', `${P}.loadBalancer.consistentHash.minimumRingSize`, /deprecated .* use ringHash.minimumRingSize/],
  ['{ loadBalancer: { simple: RANDOM, warmupDurationSecs: 10s } }', `${P}.loadBalancer.warmupDurationSecs`, /needs simple ROUND_ROBIN or LEAST_REQUEST/],
  ['{ loadBalancer: { warmupDurationSecs: 10 } }', `${P}.loadBalancer.warmupDurationSecs`, /expected a duration/],
  ['{ loadBalancer: { warmup: { minimumPercent: 10 } } }', `${P}.loadBalancer.warmup.duration`, /required/],
  ['{ loadBalancer: { warmup: { duration: 10s, aggression: 0.5 } } }', `${P}.loadBalancer.warmup.aggression`, /from 1 to 1000/],
  ['{ loadBalancer: { warmup: { duration: 10s }, warmupDurationSecs: 10s } }', `${P}.loadBalancer.warmupDurationSecs`, /either warmupDurationSecs or warmup/],
  ['{ loadBalancer: { localityLbSetting: { enabled: 1 } } }', `${P}.loadBalancer.localityLbSetting.enabled`, /expected true or false/],
  ['{ loadBalancer: { localityLbSetting: { distribute: [{ from: "eu/*", to: { "eu/*": 60, "us/*": 30 } }] } } }', `${P}.loadBalancer.localityLbSetting.distribute[0].to`, /add up to 100, got 90/],
  ['{ loadBalancer: { localityLbSetting: { distribute: [{ from: "*/eu-1", to: { "eu/*": 100 } }] } } }', `${P}.loadBalancer.localityLbSetting.distribute[0].from`, /"\*" only as a whole last part/],
  ['{ loadBalancer: { localityLbSetting: { distribute: [{ from: "eu", to: { "eu/*": 0, "us": 100 } }] } } }', `${P}.loadBalancer.localityLbSetting.distribute[0].to["eu/*"]`, /expected a weight from 1 to 100/],
  ['{ loadBalancer: { localityLbSetting: { distribute: [{ from: eu, to: { eu: 100 } }], failover: [{ from: eu, to: us }] } } }', `${P}.loadBalancer.localityLbSetting.failover`, /either distribute or failover/],
  ['{ loadBalancer: { localityLbSetting: { failover: [{ from: eu, to: eu }] } } }', `${P}.loadBalancer.localityLbSetting.failover[0].to`, /another region than "from"/],
  ['{ loadBalancer: { localityLbSetting: { failover: [{ from: "eu/eu-1", to: us }] } } }', `${P}.loadBalancer.localityLbSetting.failover[0].from`, /expected a region name/],
  ['{ loadBalancer: { localityLbSetting: { failoverPriority: [app] } } }', `${P}.loadBalancer.localityLbSetting.failoverPriority[0]`, /the label "app" is not supported .*topology.kubernetes.io\/region/],
  ['{ loadBalancer: { localityLbSetting: { failover: [{ from: eu, to: us }], failoverPriority: [topology.kubernetes.io/region] } } }', `${P}.loadBalancer.localityLbSetting.failoverPriority`, /together with failover is not supported/],
  ['{ connectionPool: { tcp: { maxConnections: 0 } } }', `${P}.connectionPool.tcp.maxConnections`, /from 1 to/],
  ['{ connectionPool: { tcp: { connectTimeout: 0s } } }', `${P}.connectionPool.tcp.connectTimeout`, /from 1ms/],
  ['{ connectionPool: { tcp: { tcpKeepalive: { probes: 0 } } } }', `${P}.connectionPool.tcp.tcpKeepalive.probes`, /from 1 to/],
  ['{ connectionPool: { tcp: { tcpKeepalive: { time: 500ms } } } }', `${P}.connectionPool.tcp.tcpKeepalive.time`, /from 1000ms/],
  ['{ connectionPool: { tcp: { tcpKeepalive: { interval: soon } } } }', `${P}.connectionPool.tcp.tcpKeepalive.interval`, /expected a duration/],
  ['{ connectionPool: { tcp: { tcpKeepalive: { count: 3 } } } }', `${P}.connectionPool.tcp.tcpKeepalive.count`, /unknown field/],
  ['{ connectionPool: { tcp: { maxConnectionDuration: 0s } } }', `${P}.connectionPool.tcp.maxConnectionDuration`, /from 1ms/],
  ['{ connectionPool: { tcp: { idleTimeout: forever } } }', `${P}.connectionPool.tcp.idleTimeout`, /expected a duration/],
  ['{ connectionPool: { http: { http1MaxPendingRequests: -1 } } }', `${P}.connectionPool.http.http1MaxPendingRequests`, /from 1 to/],
  ['{ connectionPool: { http: { http2MaxRequests: 1.5 } } }', `${P}.connectionPool.http.http2MaxRequests`, /an integer/],
  ['{ connectionPool: { http: { maxRequestsPerConnection: -1 } } }', `${P}.connectionPool.http.maxRequestsPerConnection`, /from 0 to/],
  ['{ connectionPool: { http: { maxRetries: x } } }', `${P}.connectionPool.http.maxRetries`, /an integer/],
  ['{ connectionPool: { http: { idleTimeout: 0s } } }', `${P}.connectionPool.http.idleTimeout`, /from 1ms/],
  ['{ connectionPool: { http: { h2UpgradePolicy: ALWAYS } } }', `${P}.connectionPool.http.h2UpgradePolicy`, /expected one of DEFAULT \| DO_NOT_UPGRADE \| UPGRADE/],
  ['{ connectionPool: { http: { useClientProtocol: "true" } } }', `${P}.connectionPool.http.useClientProtocol`, /expected true or false/],
  ['{ connectionPool: { http: { useClientProtocol: true, h2UpgradePolicy: UPGRADE } } }', `${P}.connectionPool.http.h2UpgradePolicy`, /cannot be combined with useClientProtocol/],
  ['{ connectionPool: { http: { maxConcurrentStreams: 0 } } }', `${P}.connectionPool.http.maxConcurrentStreams`, /from 1 to 2147483647/],
  ['{ outlierDetection: { consecutiveGatewayErrors: -1 } }', `${P}.outlierDetection.consecutiveGatewayErrors`, /from 0 to/],
  ['{ outlierDetection: { consecutive5xxErrors: "5" } }', `${P}.outlierDetection.consecutive5xxErrors`, /an integer/],
  ['{ outlierDetection: { consecutiveErrors: 1.5 } }', `${P}.outlierDetection.consecutiveErrors`, /an integer/],
  ['{ outlierDetection: { consecutiveErrors: 5, consecutive5xxErrors: 5 } }', `${P}.outlierDetection.consecutiveErrors`, /deprecated .* use consecutiveGatewayErrors/],
  ['{ outlierDetection: { consecutiveLocalOriginFailures: 3 } }', `${P}.outlierDetection.consecutiveLocalOriginFailures`, /needs splitExternalLocalOriginErrors: true/],
  ['{ outlierDetection: { splitExternalLocalOriginErrors: 1 } }', `${P}.outlierDetection.splitExternalLocalOriginErrors`, /expected true or false/],
  ['{ outlierDetection: { interval: 0s } }', `${P}.outlierDetection.interval`, /from 1ms/],
  ['{ outlierDetection: { baseEjectionTime: x } }', `${P}.outlierDetection.baseEjectionTime`, /expected a duration/],
  ['{ outlierDetection: { maxEjectionPercent: 101 } }', `${P}.outlierDetection.maxEjectionPercent`, /a percentage from 0 to 100/],
  ['{ outlierDetection: { minHealthPercent: -1 } }', `${P}.outlierDetection.minHealthPercent`, /a percentage from 0 to 100/],
  ['{ portLevelSettings: [{ port: { number: 8080 }, loadBalancer: { simple: RANDOM } }] }', `${P}.portLevelSettings[0].port.number`, /expected 9080, the one port of Service api .* got 8080/],
  ['{ portLevelSettings: [{ loadBalancer: { simple: RANDOM } }] }', `${P}.portLevelSettings[0].port`, /expected a mapping, got nothing/],
  ['{ portLevelSettings: [{ port: { number: 9080 }, tls: { mode: SIMPLE, credentialName: x } }] }', `${P}.portLevelSettings[0].tls.credentialName`, /Kubernetes secret/],
  ['{ portLevelSettings: [{ port: { number: 9080 } }, { port: { number: 9080 } }] }', `${P}.portLevelSettings[1].port.number`, /port 9080 has settings twice/],
  ['{ tls: { mode: ISTIO_MUTUAL } }', `${P}.tls.mode`, /^ISTIO_MUTUAL is not supported/],
  ['{ tls: { mode: STRICT } }', `${P}.tls.mode`, /STRICT is not supported; expected DISABLE, SIMPLE or MUTUAL/],
  ['{ tls: { sni: a } }', `${P}.tls.mode`, /required/],
  ['{ tls: { mode: SIMPLE, credentialName: api-cert } }', `${P}.tls.credentialName`, /is not supported \(it names a Kubernetes secret/],
  ['{ tls: { mode: SIMPLE, caCertificates: certs/ca.pem } }', `${P}.tls.caCertificates`, /expected an absolute path/],
  ['{ tls: { mode: SIMPLE, caCertificates: /etc/certs/../shadow } }', `${P}.tls.caCertificates`, /without "\." or "\.\." parts/],
  ['{ tls: { mode: SIMPLE, caCertificates: "/etc/ca\\0.pem" } }', `${P}.tls.caCertificates`, /without control characters/],
  ['{ tls: { mode: SIMPLE, caCertificates: "/etc/a:b.pem" } }', `${P}.tls.caCertificates`, /without ":" or ","/],
  ['{ tls: { mode: SIMPLE, caCertificates: /etc/certs/ } }', `${P}.tls.caCertificates`, /the path of a file/],
  ['{ tls: { mode: SIMPLE, caCertificates: 7 } }', `${P}.tls.caCertificates`, /expected the absolute path of a file on the host, got 7/],
  ['{ tls: { mode: MUTUAL, privateKey: /k.pem } }', `${P}.tls.clientCertificate`, /required with mode MUTUAL/],
  ['{ tls: { mode: SIMPLE, clientCertificate: /c.pem } }', `${P}.tls.clientCertificate`, /only used with mode MUTUAL/],
  ['{ tls: { mode: DISABLE, sni: a.test } }', `${P}.tls.sni`, /only used with mode SIMPLE or MUTUAL/],
  ['{ tls: { mode: SIMPLE, sni: "a b" } }', `${P}.tls.sni`, /expected a server name/],
  ['{ tls: { mode: SIMPLE, subjectAltNames: a.test } }', `${P}.tls.subjectAltNames`, /expected a list/],
  ['{ tls: { mode: SIMPLE, insecureSkipVerify: yes } }', `${P}.tls.insecureSkipVerify`, /expected true or false/],
  ['{ tls: { mode: SIMPLE, insecureSkipVerify: true, caCertificates: /ca.pem } }', `${P}.tls.insecureSkipVerify`, /cannot be combined with caCertificates/],
  ['{ tls: { mode: SIMPLE, caCrl: /crl.pem } }', `${P}.tls.caCrl`, /is not supported/],
  ['{ tunnel: {} }', `${P}.tunnel`, /tunnel is not supported/],
];

for (const [policy, path, says] of BAD) {
  test(`refused at ${path}: ${policy}`, () => {
    const issues = issuesOf(rule(policy));
    assert.equal(issues.length, 1, issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
    assert.equal(issues[0]!.path, path);
    assert.match(issues[0]!.message, says);
    assert.equal(issues[0]!.doc.kind, 'DestinationRule');
  });
}

test('a subset\'s trafficPolicy is checked the same way, at its own path', () => {
  const text = `${SERVICE}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api }
spec:
  host: api
  subsets:
    - name: v1
      labels: { version: v1 }
      trafficPolicy:
        loadBalancer: { consistentHash: { httpCookie: { name: "bad name" } } }
        portLevelSettings: [{ port: { number: 1 } }]
`;
  assert.deepEqual(issuesOf(text).map((i) => i.path), [
    'spec.subsets[0].trafficPolicy.loadBalancer.consistentHash.httpCookie.name',
    'spec.subsets[0].trafficPolicy.portLevelSettings[0].port.number',
  ]);
});

test('upstream TLS for a host that a proxyless gRPC client calls (mode xds) is refused at the mode, naming the caller', () => {
  const text = `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: api }
spec:
  protocol: grpc
  port: 9080
  versions: { v1: { image: api:1, nodes: [node-a] } }
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: caller }
spec:
  protocol: grpc
  port: 9090
  versions: { v1: { image: caller:1, nodes: [node-a] } }
  upstreams: [{ service: api, mode: xds }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api }
spec:
  host: api
  trafficPolicy: { tls: { mode: SIMPLE, caCertificates: /etc/ca.pem } }
  subsets: [{ name: v1, labels: { version: v1 }, trafficPolicy: { tls: { mode: DISABLE } } }]
`;
  const issues = issuesOf(text);
  assert.deepEqual(issues.map((i) => [i.doc.kind, i.path]), [['DestinationRule', 'spec.trafficPolicy.tls.mode']]);
  assert.match(issues[0]!.message, /SIMPLE is not supported for proxyless gRPC clients \(Service caller calls api with mode xds\)/);
});

test('every new field with a good value is accepted (the fixture) and a registry Instance carries region and zone', () => {
  const { issues } = loadDesired([{ source: 'mesh.yaml', text: readFileSync(fixture('destination-rule', 'mesh.yaml'), 'utf8') }], { xdsPort: 15010, nodes: ['node-a'] });
  assert.deepEqual(issues, []);
  const out: Issue[] = [];
  const sink = new IssueSink({ source: 'registry', index: 0 }, out);
  assert.deepEqual(readInstance(sink, { service: 'a', version: 'v1', node: 'n', address: '10.0.0.1', port: 1, region: 'eu', zone: 'eu-1' }, ''), { service: 'a', version: 'v1', node: 'n', address: '10.0.0.1', port: 1, region: 'eu', zone: 'eu-1' });
  readInstance(sink, { service: 'a', version: 'v1', node: 'n', address: '10.0.0.1', port: 1, zone: 'eu 1' }, '');
  assert.deepEqual(out.map((i) => [i.path, i.message]), [['zone', 'expected a zone name, got the string "eu 1"']]);
});

function listFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => (statSync(join(dir, name)).isDirectory() ? listFiles(join(dir, name)) : [join(dir, name)])).sort();
}

const RENDER = ['render', '-f', 'fixtures/destination-rule/mesh.yaml', '--instances', 'fixtures/destination-rule/instances.yaml', '--node', 'node-a', '--region', 'eu', '--zone', 'eu-1'];

test('the fixture renders the expected files for node-a (eu/eu-1): clusters, endpoints by locality, hash policies, TLS mounts', async () => {
  const out = join(tempDir(), 'out');
  const r = await runCli([...RENDER, '--out', out]);
  assert.equal(r.code, 0, r.err);
  const expected = fixture('destination-rule', 'expected');
  if (process.env.UPDATE_GOLDEN === '1') {
    rmSync(expected, { recursive: true, force: true });
    cpSync(out, expected, { recursive: true });
  }
  const got = listFiles(out).map((p) => relative(out, p));
  assert.deepEqual(got, listFiles(expected).map((p) => relative(expected, p)), 'the set of files');
  for (const f of got) assert.equal(readFileSync(join(out, f), 'utf8'), readFileSync(join(expected, f), 'utf8'), f);
});

/** The fixture's sidecar resources of web-v1, rendered with the TLS files under `tlsRoot`. */
async function renderWeb(tlsRoot: string, hostFiles?: ReadonlySet<string>) {
  const text = readFileSync(fixture('destination-rule', 'mesh.yaml'), 'utf8');
  const { desired, issues } = loadDesired([{ source: 'mesh.yaml', text }], { xdsPort: 15010, nodes: ['node-a'] });
  assert.deepEqual(issues, []);
  const instances = (parse(readFileSync(fixture('destination-rule', 'instances.yaml'), 'utf8')) as Instance[]);
  const render = renderNode(desired, instances, await loadTemplates(), {
    node: 'node-a', region: 'eu', zone: 'eu-1', advertiseAddress: '127.0.0.1', prefix: '/meshlet', sidecarImage: 'envoy', paths: { envoyDir: './envoy', xdsDir: './xds' },
    xdsPort: 15010, adminPorts: { from: 20000, to: 20100 }, previousAdminPorts: {}, upstreamTlsRoot: tlsRoot, ...(hostFiles ? { hostFiles } : {}),
  });
  if (hostFiles) return render;
  assert.deepEqual(render.issues, []);
  assert.deepEqual(checkNodeEnvoy(render), [], 'the strict check');
  return render;
}

test('the real Envoy builds every cluster of the fixture (envoy --mode validate on a static bootstrap, TLS files in place)', async () => {
  const root = tempDir('meshlet-dr-tls-');
  const certs = makeTestCerts(join(root, 'made'));
  mkdirSync(join(root, 'etc', 'meshlet-test'), { recursive: true });
  for (const [from, to] of [[certs.ca, 'ca.pem'], [certs.clientCert, 'client.pem'], [certs.clientKey, 'client-key.pem']] as const) {
    writeFileSync(join(root, 'etc', 'meshlet-test', to), readFileSync(from));
  }
  const render = await renderWeb(root);
  const res = render.snapshots['sidecar~node-a~web-v1']!;
  const tls = res.clusters.filter((c) => c.transport_socket);
  assert.deepEqual(tls.map((c) => c.name), ['mtls', 'tlsapi']);
  const file = join(root, 'static.yaml');
  writeFileSync(file, toYaml(staticBootstrap(render.bootstraps['web-v1'] as Json, res)));
  const v = await validateBootstrap(file);
  assert.ok(v.ok, v.output.slice(0, 3000));
  // Control: the same bootstrap with a TLS file missing is refused, so the check above can fail.
  rmSync(join(root, 'etc', 'meshlet-test', 'ca.pem'));
  const missing = await validateBootstrap(file);
  assert.equal(missing.ok, false);
  assert.match(missing.output, /ca\.pem/);
});

test('the compose project mounts each TLS file read-only into the sidecars that use it, and nowhere else', async () => {
  const render = await renderWeb('/etc/meshlet/upstream-tls');
  const volumes = (name: string) => (render.compose.services[name]!.volumes as string[]).slice(1);
  assert.deepEqual(volumes('web-v1-envoy'), [
    '/etc/meshlet-test/ca.pem:/etc/meshlet/upstream-tls/etc/meshlet-test/ca.pem:ro',
    '/etc/meshlet-test/client-key.pem:/etc/meshlet/upstream-tls/etc/meshlet-test/client-key.pem:ro',
    '/etc/meshlet-test/client.pem:/etc/meshlet/upstream-tls/etc/meshlet-test/client.pem:ro',
  ]);
  assert.deepEqual(volumes('geo-v1-envoy'), []);
  assert.equal(render.compose.services['web-v1']!.volumes, undefined, 'the app itself mounts nothing');
});

test('a TLS file missing on the host (the agent looks): an issue on the DestinationRule field naming it, and it is not mounted', async () => {
  const present = new Set(['/etc/meshlet-test/ca.pem', '/etc/meshlet-test/client.pem']);
  const render = await renderWeb('/etc/meshlet/upstream-tls', present);
  assert.deepEqual(render.issues.map((i) => [i.doc.name, i.path, i.message]), [
    ['mtls', 'spec.trafficPolicy.tls.privateKey', 'the file "/etc/meshlet-test/client-key.pem" is not on node node-a (or is not a regular file); the sidecars there cannot load this TLS setting'],
  ]);
  assert.deepEqual((render.compose.services['web-v1-envoy']!.volumes as string[]).slice(1), [
    '/etc/meshlet-test/ca.pem:/etc/meshlet/upstream-tls/etc/meshlet-test/ca.pem:ro',
    '/etc/meshlet-test/client.pem:/etc/meshlet/upstream-tls/etc/meshlet-test/client.pem:ro',
  ]);
  // Every file there: no issue.
  const all = await renderWeb('/etc/meshlet/upstream-tls', new Set([...present, '/etc/meshlet-test/client-key.pem']));
  assert.deepEqual(all.issues, []);
});

test('a tcp Service: consistentHash useSourceIp becomes the tcp_proxy\'s hash policy (RING_HASH cluster); HTTP hash keys are refused by path', async () => {
  const services = `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: db }
spec:
  protocol: tcp
  port: 5432
  versions: { v1: { image: db:1, nodes: [node-b] } }
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: app }
spec:
  port: 8080
  versions: { v1: { image: app:1, nodes: [node-a] } }
  upstreams: [{ service: db, localPort: 15432 }]
---
`;
  const dr = (hash: string) => `${services}apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: db }
spec: { host: db, trafficPolicy: { loadBalancer: { consistentHash: ${hash} } } }
`;
  const refused = issuesOf(dr('{ httpHeaderName: x-user }'));
  assert.deepEqual(refused.map((i) => [i.path, i.message]), [['spec.trafficPolicy.loadBalancer.consistentHash', 'only useSourceIp can be hashed for Service db, which is tcp (headers, cookies and query parameters are HTTP)']]);
  const { desired, issues } = loadDesired([{ source: 'db.yaml', text: dr('{ useSourceIp: true }') }], { xdsPort: 15010, nodes: ['node-a'] });
  assert.deepEqual(issues, []);
  const render = renderNode(desired, [], await loadTemplates(), {
    node: 'node-a', advertiseAddress: '127.0.0.1', prefix: '/meshlet', sidecarImage: 'envoy', paths: { envoyDir: './envoy', xdsDir: './xds' },
    xdsPort: 15010, adminPorts: { from: 20000, to: 20100 }, previousAdminPorts: {},
  });
  assert.deepEqual(checkNodeEnvoy(render), []);
  const res = render.snapshots['sidecar~node-a~app-v1']!;
  const proxy = ((res.listeners[0]!.filter_chains as Json[])[0]!.filters as Json[])[0]!.typed_config as Json;
  assert.deepEqual(proxy.hash_policy, [{ source_ip: {} }]);
  assert.equal(res.clusters[0]!.lb_policy, 'RING_HASH');
});
