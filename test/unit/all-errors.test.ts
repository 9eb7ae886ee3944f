// All errors together (issue 10): the set-level checks also run when documents have problems of their own,
// on the documents that passed and on what could be read of the others; each problem once, in document
// order, and a reference to a refused document says so once instead of a chain of follow-on errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadDesired, acceptValid } from '../../agent/core/documents/desired.js';
import { checkDocuments } from '../../agent/core/documents/documents.js';
import type { Issue } from '../../agent/core/model/issues.js';
import { formatIssue } from '../../agent/core/model/issues.js';
import { fixture } from '../helpers/paths.js';

const MESH = { xdsPort: 15010 };

const service = (name: string, spec: string) => `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: ${name} }
spec:
${spec}
`;
const reviews = service('reviews', '  port: 9082\n  versions:\n    v1: { image: r:1, nodes: [node-a] }\n    v2: { image: r:2, port: 9083, nodes: [node-a] }');
const route = (name: string, spec: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name} }
spec:
${spec}
`;
const docs = (...texts: string[]) => texts.join('---\n');

function problems(...files: { source: string; text: string }[]): string[] {
  return loadDesired(files, MESH).issues.map(formatIssue);
}
const one = (text: string) => problems({ source: 'f.yaml', text });

test('issue 10: weights adding up to 90 and a missing subset in one VirtualService are both reported', () => {
  const text = docs(reviews, route('reviews', `  hosts: [reviews]
  http:
    - route:
        - { destination: { host: reviews, subset: v1 }, weight: 80 }
        - { destination: { host: reviews, subset: v3 }, weight: 10 }`));
  assert.deepEqual(one(text), [
    'f.yaml: VirtualService "reviews" (document 2): spec.http[0].route: expected weights adding up to 100, got 80 + 10 = 90',
    'f.yaml: VirtualService "reviews" (document 2): spec.http[0].route[1].destination.subset: Service reviews has no subset v3 (did you mean "v1"?); known subsets: v1, v2',
  ]);
});

test('an unknown field and an unknown upstream in one Service are both reported', () => {
  const text = docs(reviews, service('productpage', `  prot: http
  port: 9080
  versions: { v1: { image: p:1, nodes: [node-a] } }
  upstreams: [{ service: reviewz, localPort: 19002 }]`));
  assert.deepEqual(one(text), [
    'f.yaml: Service "productpage" (document 2): spec.prot: unknown field (did you mean "protocol"?); expected one of: protocol, port, versions, upstreams, sidecar',
    'f.yaml: Service "productpage" (document 2): spec.upstreams[0].service: no Service named reviewz (did you mean "reviews"?)',
  ]);
});

test('two documents with one problem each, in two files: both are reported, in the order the files were given', () => {
  const ratings = { source: 'ratings.yaml', text: service('ratings', '  port: 9081\n  versions: { v1: { image: "bad image", nodes: [node-a] } }') };
  const routes = { source: 'routes.yaml', text: docs(reviews, route('reviews', '  hosts: [reviews]\n  http: [{ route: [{ destination: { host: reviews, subset: v9 } }] }]')) };
  const expected = [
    'routes.yaml: VirtualService "reviews" (document 2): spec.http[0].route[0].destination.subset: Service reviews has no subset v9 (did you mean "v1"?); known subsets: v1, v2',
    'ratings.yaml: Service "ratings" (document 1): spec.versions.v1.image: expected an image reference such as registry.local/app:1.0, got the string "bad image"',
  ];
  assert.deepEqual(problems(routes, ratings), expected);
  assert.deepEqual(problems(ratings, routes), [expected[1], expected[0]]);
});

test('a Service with a bad port and a route to it: said once, the route\'s own problem still found, the unread port not compared', () => {
  const text = docs(service('reviews', '  port: 70000\n  versions:\n    v1: { image: r:1, nodes: [node-a] }\n    v2: { image: r:2, port: 9083, nodes: [node-a] }'),
    route('reviews', `  hosts: [reviews]
  http:
    - route:
        - { destination: { host: reviews, subset: v1, port: { number: 9082 } }, weight: 50 }
        - { destination: { host: reviews, subset: v2, port: { number: 9082 } }, weight: 40 }
        - { destination: { host: reviews, subset: v3 }, weight: 10 }
    - route:
        - destination: { host: reviews, subset: v2 }`),
    // A second document that refers to reviews says so once too.
    service('productpage', '  port: 9080\n  versions: { v1: { image: p:1, nodes: [node-a] } }\n  upstreams: [{ service: reviews, localPort: 19002 }]'));
  assert.deepEqual(one(text), [
    'f.yaml: Service "reviews" (document 1): spec.port: expected a port (an integer) from 1 to 65535, got 70000',
    'f.yaml: VirtualService "reviews" (document 2): spec.hosts[0]: Service reviews is not valid: see the problems listed for f.yaml: Service "reviews" (document 1)',
    'f.yaml: VirtualService "reviews" (document 2): spec.http[0].route[2].destination.subset: Service reviews has no subset v3 (did you mean "v1"?); known subsets: v1, v2',
    'f.yaml: Service "productpage" (document 3): spec.upstreams[0].service: Service reviews is not valid: see the problems listed for f.yaml: Service "reviews" (document 1)',
  ]);
});

test('parts of a refused document that could not be read are skipped, never guessed', () => {
  // An unreadable protocol: no "use tcp routes"; unreadable versions: no "no subset"; an unreadable subset name
  // in a DestinationRule: no "no subset" for routes to that service either.
  const text = docs(
    service('db', '  protocol: tcpp\n  port: 5432\n  versions: { v1: { image: d:1, nodes: [node-a] } }'),
    route('db', '  hosts: [db]\n  tcp: [{ route: [{ destination: { host: db, subset: v1 } }] }]'),
    service('cache', '  port: 6379\n  versions: [v1]'),
    route('cache', '  hosts: [cache]\n  http: [{ route: [{ destination: { host: cache, subset: anything } }] }]'),
    reviews,
    `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews }
spec:
  host: reviews
  subsets: [{ name: stable, labels: { version: v1 } }, { name: "Not A Name", labels: { version: v2 } }]
`,
    route('reviews', '  hosts: [reviews]\n  http: [{ route: [{ destination: { host: reviews, subset: canary } }] }]'),
  );
  const out = one(text);
  assert.deepEqual(out.filter((l) => !/is not valid|come from a DestinationRule/.test(l)), [
    'f.yaml: Service "db" (document 1): spec.protocol: expected one of http | http2 | grpc | tcp, got the string "tcpp" (did you mean "tcp"?)',
    'f.yaml: Service "cache" (document 3): spec.versions: expected a mapping of one or more versions (e.g. v1: {image: …}), got a list',
    'f.yaml: DestinationRule "reviews" (document 6): spec.subsets[1].name: expected a subset name (lower-case letters, digits, ".", "_" and "-"), got the string "Not A Name"',
  ]);
  // Each route says once that what it depends on is not valid (the agent rejects it for that), nothing more.
  assert.deepEqual(out.filter((l) => /is not valid|come from a DestinationRule/.test(l)).map((l) => l.split(': see ')[0]), [
    'f.yaml: VirtualService "db" (document 2): spec.hosts[0]: Service db is not valid',
    'f.yaml: VirtualService "cache" (document 4): spec.hosts[0]: Service cache is not valid',
    'f.yaml: VirtualService "reviews" (document 7): spec.http[0].route[0].destination.subset: the subsets of Service reviews come from a DestinationRule that is not valid',
  ]);
});

test('a refused document still claims the host ports it names, after the valid ones: the clash is reported on it', () => {
  // The refused Service comes first in the file and would claim first; it has a bad image but a readable port.
  const text = docs(
    service('extra', '  port: 9082\n  versions: { v1: { image: "bad image", nodes: [node-a] } }'),
    reviews,
    // A version whose nodes cannot be read claims nothing, so no clash is guessed for it.
    service('other', '  port: 9083\n  versions: { v1: { image: o:1, nodes: "node-a" } }'),
  );
  assert.deepEqual(one(text), [
    'f.yaml: Service "extra" (document 1): spec.versions.v1.image: expected an image reference such as registry.local/app:1.0, got the string "bad image"',
    'f.yaml: Service "extra" (document 1): spec.versions.v1.port: port 9082 on node node-a is already taken by Service reviews version v1 (app port); this version uses spec.port',
    'f.yaml: Service "other" (document 3): spec.versions.v1.nodes: expected a list, got the string "node-a"',
  ]);
});

test('set-level paths name the index as written (upstreams and hosts are not reordered first)', () => {
  const text = docs(
    service('productpage', '  port: 9080\n  versions: { v1: { image: p:1, nodes: [node-a] } }\n  upstreams: [{ service: zeta, localPort: 19002 }, { service: alpha, localPort: 19003 }]'),
    route('r', '  hosts: [zz, productpage]\n  http: [{ route: [{ destination: { host: productpage } }] }]'),
  );
  assert.deepEqual(one(text), [
    'f.yaml: Service "productpage" (document 1): spec.upstreams[0].service: no Service named zeta',
    'f.yaml: Service "productpage" (document 1): spec.upstreams[1].service: no Service named alpha',
    'f.yaml: VirtualService "r" (document 2): spec.hosts[0]: no Service named zz',
  ]);
});

test('the same input gives the same list; the fixtures each give every problem once', () => {
  for (const name of ['weights-and-missing-subset.yaml', 'bad-port-and-route.yaml', 'bad-rule-and-route.yaml', 'several-errors.yaml', 'two-bad-documents.yaml']) {
    const files = [{ source: name, text: readFileSync(fixture('bad', name), 'utf8') }];
    const a = problems(...files);
    assert.deepEqual(problems(...files), a, name);
    assert.equal(new Set(a).size, a.length, `${name}: no line twice:\n${a.join('\n')}`);
    assert.ok(a.length >= 2, `${name}: several problems:\n${a.join('\n')}`);
  }
});

// The agent's stance: what is bad is rejected alone, the rest applies; every problem of a rejected document is listed.
function agentView(text: string) {
  const issues: Issue[] = [];
  const checked = checkDocuments([{ source: 'etcd', text }], issues);
  const { desired, rejected } = acceptValid(checked.filter((c) => c.ok).map((c) => c.doc), MESH, checked.filter((c) => !c.ok));
  return { desired, own: issues.map(formatIssue), rejected: rejected.map(formatIssue) };
}

test('agent: a refused document\'s problems with the set are listed too, and a route to a refused service is rejected with why', () => {
  const v = agentView(docs(
    route('reviews', `  hosts: [reviews]
  http:
    - route:
        - { destination: { host: reviews, subset: v1 }, weight: 80 }
        - { destination: { host: reviews, subset: v3 }, weight: 10 }`),
    reviews,
    service('ratings', '  port: 70000\n  versions: { v1: { image: ra:1, nodes: [node-a] } }'),
    route('ratings', '  hosts: [ratings]\n  http: [{ route: [{ destination: { host: ratings } }] }]'),
  ));
  assert.deepEqual(v.own, [
    'etcd: VirtualService "reviews" (document 1): spec.http[0].route: expected weights adding up to 100, got 80 + 10 = 90',
    'etcd: Service "ratings" (document 3): spec.port: expected a port (an integer) from 1 to 65535, got 70000',
  ]);
  assert.deepEqual(v.rejected, [
    'etcd: VirtualService "reviews" (document 1): spec.http[0].route[1].destination.subset: Service reviews has no subset v3 (did you mean "v1"?); known subsets: v1, v2',
    'etcd: VirtualService "ratings" (document 4): spec.hosts[0]: Service ratings is not valid: see the problems listed for etcd: Service "ratings" (document 3)',
  ]);
  assert.deepEqual(v.desired.services.map((s) => s.name), ['reviews']);
  assert.deepEqual(v.desired.routes, []);
});

test('agent: what depends on a document rejected for the set says so once, not "no Service named", and nothing is rejected twice', () => {
  const v = agentView(docs(
    reviews,
    // clash takes reviews' port: rejected in the first round …
    service('clash', '  port: 9082\n  versions: { v1: { image: c:1, nodes: [node-a] } }'),
    // … and then what refers to it, in the next: a route (three times over) and an upstream.
    route('clash', '  hosts: [clash]\n  http: [{ route: [{ destination: { host: clash, subset: v1 }, weight: 50 }, { destination: { host: clash }, weight: 50 }] }]'),
    service('front', '  port: 9000\n  versions: { v1: { image: f:1, nodes: [node-a] } }\n  upstreams: [{ service: clash, localPort: 19100 }]'),
  ));
  assert.deepEqual(v.own, []);
  const notValid = 'Service clash is not valid: see the problems listed for etcd: Service "clash" (document 2)';
  assert.deepEqual(v.rejected, [
    'etcd: Service "clash" (document 2): spec.versions.v1.port: port 9082 on node node-a is already taken by Service reviews version v1 (app port); this version uses spec.port',
    `etcd: VirtualService "clash" (document 3): spec.hosts[0]: ${notValid}`,
    `etcd: Service "front" (document 4): spec.upstreams[0].service: ${notValid}`,
  ]);
  assert.deepEqual(v.desired.services.map((s) => s.name), ['reviews']);
});

test('agent: a valid document keeps its host port against a refused one, whichever is older', () => {
  const checked = checkDocuments([{ source: 'etcd', text: docs(service('extra', '  port: 9082\n  versions: { v1: { image: "bad image", nodes: [node-a] } }'), reviews) }], []);
  // The refused document is the older one in etcd: it still claims after the valid one.
  const [extra, ok] = [checked[0]!, checked[1]!];
  extra.doc.ref = { ...extra.doc.ref, revision: 1 };
  ok.doc.ref = { ...ok.doc.ref, revision: 2 };
  const { desired, rejected } = acceptValid([ok.doc], { xdsPort: 15010, nodes: ['node-a'] }, [extra]);
  assert.deepEqual(desired.services.map((s) => s.name), ['reviews']);
  assert.deepEqual(rejected.map((i) => `${i.doc.name}: ${i.path}`), ['extra: spec.versions.v1.port']);
});
