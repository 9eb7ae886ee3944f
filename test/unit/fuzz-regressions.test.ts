// Inputs the document fuzzing (fuzz-documents.test.ts) found, each kept as a plain example.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadDesired } from '../../agent/core/documents/desired.js';
import { formatIssue } from '../../agent/core/model/issues.js';
import { re2SyntaxError } from '../../agent/core/documents/re2-syntax.js';
import { toYaml } from '../../agent/core/render/yaml-emit.js';
import { parse } from 'yaml';

const SERVICES = `apiVersion: meshlet.dev/v1
kind: Service
metadata: {name: web}
spec:
  port: 9000
  versions: {v1: {image: web, nodes: [node-a]}}
  upstreams: [{service: api, localPort: 19001}]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: {name: api}
spec: {port: 9001, versions: {v1: {image: api, nodes: [node-a]}}}
---
`;

function issuesOf(text: string): string[] {
  return loadDesired([{ source: 'f.yaml', text: SERVICES + text }], { xdsPort: 15010 }).issues.map(formatIssue);
}

const route = (http: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: [api]
  http:
  - route: [{destination: {host: api}}]
    ${http}
`;

test('header operations and rewrites that Envoy would refuse are refused by path (they passed validation, then failed the strict check)', () => {
  const issues = issuesOf(route(String.raw`rewrite: {uri: "/a\0", authority: "x\ny"}
    headers: {request: {set: {a: "\0", "b c": "x"}, remove: [":path"]}, response: {add: {x: "a\rb"}}}`));
  const at = (p: string) => issues.find((l) => l.includes(`(document 3): ${p}: `));
  assert.match(at('spec.http[0].rewrite.uri') ?? '', /expected a header value \(no NUL, CR or LF\), got the string "\/a\\u0000"/);
  assert.match(at('spec.http[0].rewrite.authority') ?? '', /expected a header value/);
  assert.match(at('spec.http[0].headers.request.set.a') ?? '', /expected a header value/);
  assert.match(at('spec.http[0].headers.request.set["b c"]') ?? '', /expected a header name/);
  assert.match(at('spec.http[0].headers.request.remove[0]') ?? '', /expected a header name.*":path"/);
  assert.match(at('spec.http[0].headers.response.add.x') ?? '', /expected a header value/);
  assert.equal(issues.length, 6, issues.join('\n'));
  assert.deepEqual(issuesOf(route('headers: {request: {set: {x-env: "prod $1 é"}, remove: [x-debug]}}')), []);
  assert.deepEqual(issuesOf(route(`headers: {response: {set: {x-big: "${'é'.repeat(8193)}"}}}`)), ['f.yaml: VirtualService "api" (document 3): spec.http[0].headers.response.set.x-big: expected at most 16384 bytes, got 16386']);
});

test('an empty prefix or regex is refused where Envoy refuses it; an empty uri prefix is taken', () => {
  const issues = issuesOf(route('').replace('- route:', `- match: [{uri: {prefix: ""}, headers: {a: {prefix: ""}}, queryParams: {q: {regex: ""}}}]
    route:`));
  assert.deepEqual(issues, [
    'f.yaml: VirtualService "api" (document 3): spec.http[0].match[0].headers.a.prefix: expected a non-empty prefix (to match any value, leave the match out)',
    'f.yaml: VirtualService "api" (document 3): spec.http[0].match[0].queryParams.q.regex: expected a non-empty regex',
  ]);
});

test('a destination subset that is no subset name is refused as such, and the message stays on one line', () => {
  const issues = issuesOf(route('').replace('{host: api}', '{host: api, subset: "v1\\nv2"}'));
  assert.deepEqual(issues, ['f.yaml: VirtualService "api" (document 3): spec.http[0].route[0].destination.subset: expected a subset name (lower-case letters, digits, ".", "_" and "-"), got the string "v1\\nv2"']);
});

test('an unsupported TLS mode with a line break is quoted in the message', () => {
  const issues = issuesOf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api}
spec: {host: api, trafficPolicy: {tls: {mode: "SIMPLE\\nx"}}}
`);
  assert.equal(issues.length, 1);
  assert.ok(!issues[0]!.includes('\n'), issues[0]);
  assert.match(issues[0]!, /spec\.trafficPolicy\.tls\.mode: the string "SIMPLE\\nx" is not supported/);
  assert.match(issuesOf(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: api}
spec: {host: api, trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}}
`)[0]!, /tls\.mode: ISTIO_MUTUAL is not supported/);
});

test('checking regexes does not fill re2-wasm\'s heap: after 10,000 checks ".*" still compiles; a huge pattern is refused in one line', () => {
  // Before: the RE2 class's handle was never freed; after about 6,200 checks every regex was refused.
  for (let i = 0; i < 10_000; i++) assert.equal(re2SyntaxError(`^/api/v[0-9]+/(users|orders)/${i}$`), undefined);
  assert.equal(re2SyntaxError('.*'), undefined);
  assert.match(re2SyntaxError('(?P<a>x)(?P<a>y)') ?? '', /^RE2: Duplicate capture group name$/);
  assert.equal(re2SyntaxError('a'.repeat(400_000)), 'at most 16384 characters, got 400000');
  assert.equal(re2SyntaxError('(?=x)'), 'RE2: invalid perl operator: (?=');
});

test('an unknown field named like an Object.prototype member is reported as unknown, with a string message', () => {
  const issues = loadDesired([{ source: 'f.yaml', text: SERVICES + route('rewrite: {uri: /x, constructor: 1, toString: 2}') }], { xdsPort: 15010 }).issues;
  assert.deepEqual(issues.map((i) => [i.path, typeof i.message, i.message.startsWith('unknown field')]), [
    ['spec.http[0].rewrite.constructor', 'string', true],
    ['spec.http[0].rewrite.toString', 'string', true],
  ]);
});

test('YAML output: a string ending with ":" (an IPv6 address such as fd00::) is quoted and reads back as itself', () => {
  const value = { address: 'fd00::', env: { A: 'redis:', B: 'a::b' }, list: ['x:', ':'] };
  const text = toYaml(value);
  assert.match(text, /address: "fd00::"/);
  assert.deepEqual(parse(text), value);
});

test('U+2028 and U+2029 in a value, a key or a name are escaped in the message, so that it stays one line', () => {
  const lines = issuesOf(`apiVersion: meshlet.dev/v1
kind: Service
metadata: {name: "a\\u2029b"}
spec:
  port: 9002
  versions: "\\u2028"
  "x\\u2028": 1
`);
  assert.deepEqual(lines, [
    'f.yaml: Service "a\\u2029b" (document 3): metadata.name: expected a DNS label (lower-case letters, digits and "-", starting with a letter, at most 63 characters), got the string "a\\u2029b"',
    'f.yaml: Service "a\\u2029b" (document 3): spec["x\\u2028"]: unknown field; expected one of: protocol, port, versions, upstreams, sidecar',
    'f.yaml: Service "a\\u2029b" (document 3): spec.versions: expected a mapping of one or more versions (e.g. v1: {image: …}), got the string "\\u2028"',
  ]);
});
