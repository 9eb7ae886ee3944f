// Namespaces and host names (issue 14, item 1): every Istio spelling of a host resolves relative to the
// document's namespace; what cannot name a meshlet Service is refused by path with the reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadDesired } from '../../agent/core/documents/desired.js';
import { formatIssue } from '../../agent/core/model/issues.js';
import type { MeshOptions } from '../../agent/core/documents/validate-mesh.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const MESH: MeshOptions = { xdsPort: 15010 };
const docs = (...texts: string[]) => texts.join('---\n');
const meta = (name: string, ns?: string) => `metadata: { name: ${name}${ns ? `, namespace: ${ns}` : ''} }`;
const service = (name: string, ns?: string, port = 9082) => `apiVersion: meshlet.dev/v1
kind: Service
${meta(name, ns)}
spec:
  port: ${port}
  versions:
    v1: { image: r:1, nodes: [node-a] }
    v2: { image: r:2, port: ${port + 1}, nodes: [node-a] }
`;
const vs = (name: string, ns: string | undefined, spec: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
${meta(name, ns)}
spec:
${spec}
`;
const dr = (name: string, ns: string | undefined, host: string) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
${meta(name, ns)}
spec:
  host: ${host}
  subsets: [{ name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } }]
`;
const load = (text: string, mesh = MESH) => loadDesired([{ source: 'f.yaml', text }], mesh);
const problems = (text: string, mesh = MESH) => load(text, mesh).issues.map(formatIssue);

test('every spelling of a host names the Service in its namespace, and the model keeps the Service name', () => {
  const { desired, issues } = load(docs(service('reviews', 'prod'), vs('reviews', 'prod', `  hosts: [reviews]
  http:
    - route:
        - { destination: { host: reviews, subset: v1 }, weight: 25 }
        - { destination: { host: reviews.prod, subset: v2 }, weight: 25 }
        - { destination: { host: reviews.prod.svc, subset: v1 }, weight: 25 }
        - { destination: { host: reviews.prod.svc.cluster.local, subset: v2 }, weight: 25 }`), dr('reviews', 'prod', 'reviews.prod.svc.cluster.local')));
  assert.deepEqual(issues.map(formatIssue), []);
  assert.equal(desired.services[0]!.namespace, 'prod');
  assert.equal(desired.routes[0]!.namespace, 'prod');
  assert.deepEqual(desired.routes[0]!.hosts, ['reviews']);
  assert.deepEqual(desired.routes[0]!.http[0]!.route.map((d) => d.host), ['reviews', 'reviews', 'reviews', 'reviews']);
  assert.deepEqual(desired.routes[0]!.hostRefs.map((r) => `${r.path}=${r.name}.${r.namespace}${r.domain ? `@${r.domain}` : ''}`), [
    'spec.hosts[0]=reviews.prod',
    'spec.http[0].route[0].destination.host=reviews.prod',
    'spec.http[0].route[1].destination.host=reviews.prod',
    'spec.http[0].route[2].destination.host=reviews.prod',
    'spec.http[0].route[3].destination.host=reviews.prod@cluster.local',
  ]);
  assert.equal(desired.subsets[0]!.host, 'reviews');
});

test('a Service without metadata.namespace is in namespace default, and short hosts of a document without one too', () => {
  const { desired, issues } = load(docs(service('reviews'), vs('reviews', undefined, '  hosts: [reviews.default.svc.cluster.local]\n  http: [{ route: [{ destination: { host: reviews } }] }]')));
  assert.deepEqual(issues, []);
  assert.equal(desired.services[0]!.namespace, 'default');
  assert.equal(desired.routes[0]!.namespace, 'default');
});

test('a host resolving to another namespace than its Service\'s is refused by path, naming what was looked for', () => {
  const text = docs(service('reviews', 'prod'), vs('reviews', 'web', `  hosts: [reviews]
  http:
    - route:
        - destination: { host: reviews.default.svc.cluster.local }`), dr('reviews', 'prod', 'reviews.staging'));
  assert.deepEqual(problems(text), [
    'f.yaml: VirtualService "reviews" (document 2): spec.hosts[0]: host reviews looks for Service reviews in namespace web, but Service reviews is in namespace prod (a short name is relative to the document\'s namespace, web; write reviews.prod)',
    'f.yaml: VirtualService "reviews" (document 2): spec.http[0].route[0].destination.host: host reviews.default.svc.cluster.local looks for Service reviews in namespace default, but Service reviews is in namespace prod',
    'f.yaml: DestinationRule "reviews" (document 3): spec.host: host reviews.staging looks for Service reviews in namespace staging, but Service reviews is in namespace prod',
  ]);
});

test('the cluster domain is configurable; a host in another domain names no meshlet Service', () => {
  const text = docs(service('reviews', 'prod'), vs('reviews', 'prod', '  hosts: [reviews.prod.svc.corp.internal]\n  http: [{ route: [{ destination: { host: reviews.prod.svc.cluster.local } }] }]'));
  assert.deepEqual(problems(text, { ...MESH, clusterDomain: 'corp.internal' }), [
    'f.yaml: VirtualService "reviews" (document 2): spec.http[0].route[0].destination.host: host reviews.prod.svc.cluster.local names the cluster domain cluster.local, but the mesh\'s is corp.internal (--cluster-domain); a host outside it names no meshlet Service',
  ]);
  assert.deepEqual(problems(text), [
    'f.yaml: VirtualService "reviews" (document 2): spec.hosts[0]: host reviews.prod.svc.corp.internal names the cluster domain corp.internal, but the mesh\'s is cluster.local (--cluster-domain); a host outside it names no meshlet Service',
  ]);
});

test('wildcard and external hosts, other gateways and exportTo to a named namespace: refused by path with the reason', () => {
  const text = docs(service('reviews'), vs('reviews', undefined, `  hosts: ["*.example.com", www.example.com, "*", reviews]
  gateways: [mesh, istio-system/ingressgateway]
  exportTo: [".", istio-system]
  http:
    - route:
        - destination: { host: httpbin.org }`));
  const expected = '(<service>, <service>.<namespace>, <service>.<namespace>.svc or <service>.<namespace>.svc.<cluster domain>)';
  assert.deepEqual(problems(text), [
    `f.yaml: VirtualService "reviews" (document 2): spec.hosts[0]: expected the name of a meshlet Service ${expected}, got the string "*.example.com": wildcard hosts are not supported: a meshlet host names one Service`,
    `f.yaml: VirtualService "reviews" (document 2): spec.hosts[1]: expected the name of a meshlet Service ${expected}, got the string "www.example.com": external hosts are not supported: a meshlet host names a Service of the mesh (meshlet has no ServiceEntry)`,
    `f.yaml: VirtualService "reviews" (document 2): spec.hosts[2]: expected the name of a meshlet Service ${expected}, got the string "*": wildcard hosts are not supported: a meshlet host names one Service`,
    'f.yaml: VirtualService "reviews" (document 2): spec.gateways[1]: gateway "istio-system/ingressgateway" is not supported (meshlet has no gateways yet; only "mesh", the sidecars)',
    'f.yaml: VirtualService "reviews" (document 2): spec.exportTo[1]: exporting to "istio-system" is not supported (meshlet honours "." (this namespace) and "*" (every namespace))',
    // Two labels are <service>.<namespace>: httpbin.org looks for Service httpbin in namespace org.
    'f.yaml: VirtualService "reviews" (document 2): spec.http[0].route[0].destination.host: no Service named httpbin',
  ]);
});

test('a bad namespace is refused by path', () => {
  assert.deepEqual(problems(service('reviews', 'Prod_1')), [
    'f.yaml: Service "reviews" (document 1): metadata.namespace: expected a namespace (a DNS label: lower-case letters, digits and "-", starting with a letter), got the string "Prod_1"',
  ]);
});

test('names are unique per kind across namespaces (etcd keys have none): a second reviews in another namespace is refused', () => {
  const text = docs(service('reviews', 'prod'), service('reviews', 'default', 9100), dr('reviews', 'prod', 'reviews'), dr('reviews', 'web', 'reviews.prod'));
  assert.deepEqual(problems(text), [
    'f.yaml: Service "reviews" (document 2): metadata.name: Service reviews is also defined in namespace prod (f.yaml (document 1)); meshlet keys documents by kind and name only (<prefix>/desired/services/reviews), so a name is unique across namespaces: rename one',
    'f.yaml: DestinationRule "reviews" (document 4): metadata.name: DestinationRule reviews is also defined in namespace prod (f.yaml (document 3)); meshlet keys documents by kind and name only (<prefix>/desired/subsets/reviews), so a name is unique across namespaces: rename one',
    'f.yaml: DestinationRule "reviews" (document 4): spec.host: host reviews already has DestinationRule "reviews"; one DestinationRule per host',
  ]);
});

test('meshlet validate --cluster-domain: FQDN hosts in that domain are accepted, the default domain then refused', async () => {
  const file = join(tempDir(), 'mesh.yaml');
  writeFileSync(file, docs(service('reviews', 'prod'), vs('reviews', 'prod', '  hosts: [reviews.prod.svc.corp.internal]\n  http: [{ route: [{ destination: { host: reviews } }] }]')));
  const ok = await runCli(['validate', '-f', file, '--cluster-domain', 'corp.internal']);
  assert.equal(ok.code, 0, ok.err);
  const bad = await runCli(['validate', '-f', file]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /spec\.hosts\[0\]: host reviews\.prod\.svc\.corp\.internal names the cluster domain corp\.internal, but the mesh's is cluster\.local/);
  // Refused by the flag parser (commander prints its own message).
  assert.equal((await runCli(['validate', '-f', file, '--cluster-domain', 'Not A Domain'])).code, 2);
});

test('two documents with hosts that cannot be read clash on nothing: each says only what is wrong with its own', () => {
  const text = docs(service('reviews'), vs('a', undefined, '  hosts: ["*.a.test"]\n  http: [{ route: [{ destination: { host: reviews } }] }]'),
    vs('b', undefined, '  hosts: ["*.b.test"]\n  http: [{ route: [{ destination: { host: reviews } }] }]'));
  assert.deepEqual(problems(text).map((l) => l.replace(/: expected the name of a meshlet Service.*/, '')), [
    'f.yaml: VirtualService "a" (document 2): spec.hosts[0]',
    'f.yaml: VirtualService "b" (document 3): spec.hosts[0]',
  ]);
});
