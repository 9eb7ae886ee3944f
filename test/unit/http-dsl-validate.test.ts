// Issue 14 items 2 and 3: every new http match and route action field, written wrong, is refused with its
// path and what was expected; written right, it is accepted; set-level refusals (port, sourceLabels,
// delegate, proxyless callers) name the rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadDesired } from '../../agent/core/documents/desired.js';
import { formatIssue } from '../../agent/core/model/issues.js';

const MESH = { xdsPort: 15010 };
const SERVICES = `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: web }
spec:
  port: 8000
  versions: { v1: { image: web:1, nodes: [node-a] }, v2: { image: web:2, port: 8001, nodes: [node-a] } }
  upstreams: [{ service: api, localPort: 9001 }, { service: greeter, mode: xds }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: api }
spec:
  port: 7000
  versions: { v1: { image: api:1, nodes: [node-b] }, v2: { image: api:2, port: 7001, nodes: [node-b] } }
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: greeter }
spec:
  protocol: grpc
  port: 7100
  versions: { v1: { image: g:1, nodes: [node-b] } }
`;
const vs = (http: string, name = 'api', hosts = '[api]') => `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name} }
spec:
  hosts: ${hosts}
  http:
${http}
`;
const ROUTE = 'route: [{ destination: { host: api, subset: v1 } }]';

/** The problems of the Services plus `docs`, as `<path>: <message>` (the document part dropped). */
function problems(docs: string): string[] {
  return loadDesired([{ source: 'f.yaml', text: SERVICES + docs }], MESH).issues.map((i) => `${i.path}: ${i.message}`);
}
function refuses(docs: string, path: string, ...says: string[]): void {
  const got = problems(docs);
  const hit = got.find((p) => p.startsWith(`${path}: `) && says.every((s) => p.includes(s)));
  assert.ok(hit, `expected ${path} to say ${says.join(' … ')}; got:\n${got.join('\n')}`);
}
const accepts = (docs: string) => assert.deepEqual(problems(docs), []);

test('matches: every new field written right is accepted', () => {
  accepts(vs(`    - match:
        - name: m1
          scheme: { exact: http }
          authority: { prefix: api }
          uri: { prefix: /A }
          ignoreUriCase: true
          queryParams: { q: { regex: "[0-9]+" } }
          withoutHeaders: { x-skip: { exact: "yes" } }
          port: 7000
          sourceLabels: { app: web, version: v2 }
          sourceNamespace: default
          gateways: [mesh]
          statPrefix: a
      ${ROUTE}`));
});

test('matches: `{}` and `regex: "*"` on a header or query parameter mean "present", as in Istio; not on uri', () => {
  accepts(vs(`    - match: [{ headers: { x-a: {} }, withoutHeaders: { x-b: { regex: "*" } }, queryParams: { q: {} } }]\n      ${ROUTE}`));
  refuses(vs(`    - match: [{ uri: {} }]\n      ${ROUTE}`), 'spec.http[0].match[0].uri', 'expected exactly one of exact | prefix | regex, got none');
  refuses(vs(`    - match: [{ uri: { regex: "*" } }]\n      ${ROUTE}`), 'spec.http[0].match[0].uri.regex', 'RE2');
});

test('matches: bad values are refused by path', () => {
  const m = (field: string) => vs(`    - match: [{ ${field} }]\n      ${ROUTE}`);
  refuses(m('scheme: { exact: http, prefix: h }'), 'spec.http[0].match[0].scheme', 'expected exactly one of exact | prefix | regex');
  refuses(m('authority: { regex: "(?=a)" }'), 'spec.http[0].match[0].authority.regex', 'RE2');
  refuses(m('queryParams: { q: { prefix: "" } }'), 'spec.http[0].match[0].queryParams.q.prefix', 'expected a non-empty prefix');
  refuses(m('withoutHeaders: { "bad name": { exact: x } }'), 'spec.http[0].match[0].withoutHeaders["bad name"]', 'expected a header or parameter name');
  refuses(m('ignoreUriCase: "yes"'), 'spec.http[0].match[0].ignoreUriCase', 'expected true or false');
  refuses(m('port: 70000'), 'spec.http[0].match[0].port', 'expected a port from 1 to 65535');
  refuses(m('port: 7001'), 'spec.http[0].match[0].port', 'Service api has the one port 7000: a match on port 7001 never matches');
  refuses(m('sourceLabels: { team: blue }'), 'spec.http[0].match[0].sourceLabels.team', 'carries only the labels app and version');
  refuses(m('sourceLabels: { app: webb }'), 'spec.http[0].match[0].sourceLabels.app', 'no Service named webb', 'did you mean');
  refuses(m('sourceLabels: { app: web, version: v9 }'), 'spec.http[0].match[0].sourceLabels.version', 'Service web has no version v9');
  refuses(m('sourceLabels: { app: 7 }'), 'spec.http[0].match[0].sourceLabels.app', 'expected a label value');
  refuses(m('sourceLabels: [web]'), 'spec.http[0].match[0].sourceLabels', 'expected a mapping');
  refuses(m('sourceNamespace: "Not_A_Label"'), 'spec.http[0].match[0].sourceNamespace', 'expected a namespace name');
  refuses(m('gateways: [my-gateway]'), 'spec.http[0].match[0].gateways', 'gateways other than "mesh" is not supported');
  refuses(m('name: 3'), 'spec.http[0].match[0].name', 'expected a string');
  refuses(m('statPrefix: ""'), 'spec.http[0].match[0].statPrefix', 'expected a stats prefix');
  refuses(m('sourcelabels: {}'), 'spec.http[0].match[0].sourcelabels', 'unknown field', 'sourceLabels');
});

test('a rule needs exactly one action', () => {
  refuses(vs('    - match: [{ uri: { prefix: /a } }]'), 'spec.http[0]', 'expected one of route | redirect | directResponse | delegate, got none');
  refuses(vs(`    - redirect: { uri: /b }\n      ${ROUTE}`), 'spec.http[0]', 'got route and redirect');
  refuses(vs('    - redirect: { uri: /b }\n      directResponse: { status: 204 }'), 'spec.http[0]', 'got redirect and directResponse');
  refuses(vs('    - redirect: { uri: /b }\n      timeout: 1s'), 'spec.http[0].timeout', 'has no effect with redirect');
  refuses(vs('    - directResponse: { status: 204 }\n      rewrite: { uri: /x }'), 'spec.http[0].rewrite', 'has no effect with directResponse');
  refuses(vs('    - directResponse: { status: 204 }\n      mirror: { host: api }'), 'spec.http[0].mirror', 'has no effect with directResponse');
});

test('redirect: accepted as Istio writes it, bad values refused by path', () => {
  accepts(vs('    - redirect: { uri: /new, authority: a.example, scheme: https, port: 8443, redirectCode: 308 }'));
  accepts(vs('    - redirect: { scheme: https, derivePort: FROM_PROTOCOL_DEFAULT }'));
  const r = (body: string) => vs(`    - redirect: { ${body} }`);
  refuses(r('uri: new'), 'spec.http[0].redirect.uri', 'expected a path starting with "/"');
  refuses(r('redirectCode: 304'), 'spec.http[0].redirect.redirectCode', 'expected one of 301 | 302 | 303 | 307 | 308');
  refuses(r('redirectCode: "301"'), 'spec.http[0].redirect.redirectCode', 'got the string "301"');
  refuses(r('port: 0'), 'spec.http[0].redirect.port', 'expected a port from 1 to 65535');
  refuses(r('port: 80, derivePort: FROM_REQUEST_PORT'), 'spec.http[0].redirect', 'expected port or derivePort, not both');
  refuses(r('derivePort: FROM_PORT'), 'spec.http[0].redirect.derivePort', 'expected one of FROM_PROTOCOL_DEFAULT | FROM_REQUEST_PORT');
  refuses(r('scheme: "ht tp"'), 'spec.http[0].redirect.scheme', 'expected a URI scheme');
  refuses(r('authority: ""'), 'spec.http[0].redirect.authority', 'expected a host name');
  refuses(r('authority: "a\\nb"'), 'spec.http[0].redirect.authority', 'no NUL, CR or LF');
  refuses(r('url: /x'), 'spec.http[0].redirect.url', 'unknown field', 'uri');
});

test('directResponse: status and string or bytes body', () => {
  accepts(vs('    - directResponse: { status: 503, body: { string: "down" } }'));
  accepts(vs('    - directResponse: { status: 200, body: { bytes: "aGk=" } }'));
  accepts(vs('    - directResponse: { status: 204 }'));
  const d = (body: string) => vs(`    - directResponse: { ${body} }`);
  refuses(d('body: { string: x }'), 'spec.http[0].directResponse.status', 'expected an HTTP status from 200 to 599, got nothing');
  refuses(d('status: 199'), 'spec.http[0].directResponse.status', 'expected an HTTP status from 200 to 599');
  refuses(d('status: 200, body: { string: a, bytes: YQ== }'), 'spec.http[0].directResponse.body', 'expected exactly one of string | bytes');
  refuses(d('status: 200, body: { bytes: "not base64!" }'), 'spec.http[0].directResponse.body.bytes', 'expected base64-encoded bytes');
  refuses(d('status: 200, body: { bytes: "abc" }'), 'spec.http[0].directResponse.body.bytes', 'a multiple of 4');
  refuses(d(`status: 200, body: { string: "${'x'.repeat(4097)}" }`), 'spec.http[0].directResponse.body.string', 'at most 4096 bytes');
  refuses(d('status: 200, body: "text"'), 'spec.http[0].directResponse.body', 'expected a mapping');
});

test('rewrite: uriRegexRewrite, and not together with uri', () => {
  accepts(vs(`    - rewrite: { uriRegexRewrite: { match: "^/a/(.*)", rewrite: "/b/\\\\1" }, authority: x }\n      ${ROUTE}`));
  refuses(vs(`    - rewrite: { uri: /x, uriRegexRewrite: { match: a, rewrite: b } }\n      ${ROUTE}`), 'spec.http[0].rewrite', 'expected uri or uriRegexRewrite, not both');
  refuses(vs(`    - rewrite: { uriRegexRewrite: { match: "(?<=a)b", rewrite: c } }\n      ${ROUTE}`), 'spec.http[0].rewrite.uriRegexRewrite.match', 'RE2');
  refuses(vs(`    - rewrite: { uriRegexRewrite: { match: a } }\n      ${ROUTE}`), 'spec.http[0].rewrite.uriRegexRewrite.rewrite', 'expected a header value');
  refuses(vs(`    - rewrite: { uriRegexRewrite: { match: "", rewrite: b } }\n      ${ROUTE}`), 'spec.http[0].rewrite.uriRegexRewrite.match', 'expected a non-empty regex');
});

test('headers at destination level: accepted, and checked like the route\'s', () => {
  accepts(vs(`    - route:
        - { destination: { host: api, subset: v1 }, weight: 50, headers: { request: { set: { x-a: "1" } }, response: { remove: [x-b] } } }
        - { destination: { host: api, subset: v2 }, weight: 50 }`));
  refuses(vs(`    - route: [{ destination: { host: api }, headers: { request: { set: { "bad name": x } } } }]`), 'spec.http[0].route[0].headers.request.set["bad name"]', 'expected a header name');
  refuses(vs(`    - route: [{ destination: { host: api }, headers: { request: { append: {} } } }]`), 'spec.http[0].route[0].headers.request.append', 'unknown field');
  // Envoy refuses to touch Host in header operations; setting it is Istio's authority rewrite.
  accepts(vs(`    - headers: { request: { set: { Host: a.example } } }\n      ${ROUTE}`));
  refuses(vs(`    - headers: { request: { add: { host: a.example } } }\n      ${ROUTE}`), 'spec.http[0].headers.request.add.host', 'the Host header cannot be added');
  refuses(vs(`    - route: [{ destination: { host: api }, headers: { request: { remove: [Host] } } }]`), 'spec.http[0].route[0].headers.request.remove', 'the Host header cannot be removed');
});

test('headers on a tcp route destination are refused (there are no headers to change)', () => {
  const tcp = `---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: db }
spec:
  protocol: tcp
  port: 5432
  versions: { v1: { image: db:1, nodes: [node-b] } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db }
spec:
  hosts: [db]
  tcp:
    - route: [{ destination: { host: db }, headers: { request: { set: { x-a: b } } } }]
`;
  refuses(tcp, 'spec.tcp[0].route[0].headers', 'header operations apply to http routes only');
});

test('corsPolicy: every field, the deprecated allowOrigin, and bad values by path', () => {
  accepts(vs(`    - corsPolicy:
        allowOrigins: [{ exact: "https://a.example" }, { prefix: "https://b." }, { regex: ".*\\\\.test" }]
        allowMethods: [GET, POST]
        allowHeaders: [x-token]
        exposeHeaders: [x-version]
        maxAge: 24h
        allowCredentials: false
        unmatchedPreflights: FORWARD
      ${ROUTE}`));
  accepts(vs(`    - corsPolicy: { allowOrigin: ["*", "https://a.example"] }\n      ${ROUTE}`));
  const c = (body: string) => vs(`    - corsPolicy: { ${body} }\n      ${ROUTE}`);
  refuses(c('allowOrigins: [{ exact: a }], allowOrigin: [b]'), 'spec.http[0].corsPolicy', 'expected allowOrigins or the deprecated allowOrigin, not both');
  refuses(c('allowOrigins: [{ prefix: "" }]'), 'spec.http[0].corsPolicy.allowOrigins[0].prefix', 'expected a non-empty prefix');
  refuses(c('allowOrigins: ["https://a.example"]'), 'spec.http[0].corsPolicy.allowOrigins[0]', 'expected a mapping');
  refuses(c('allowOrigin: [""]'), 'spec.http[0].corsPolicy.allowOrigin[0]', 'expected an origin');
  refuses(c('allowMethods: ["GET POST"]'), 'spec.http[0].corsPolicy.allowMethods[0]', 'expected an HTTP method');
  refuses(c('allowHeaders: "x-a"'), 'spec.http[0].corsPolicy.allowHeaders', 'expected a list');
  refuses(c('exposeHeaders: ["a b"]'), 'spec.http[0].corsPolicy.exposeHeaders[0]', 'expected a header name');
  refuses(c('maxAge: 1500ms'), 'spec.http[0].corsPolicy.maxAge', 'expected whole seconds');
  refuses(c('maxAge: soon'), 'spec.http[0].corsPolicy.maxAge', 'expected a duration');
  refuses(c('allowCredentials: "true"'), 'spec.http[0].corsPolicy.allowCredentials', 'expected true or false');
  refuses(c('unmatchedPreflights: DROP'), 'spec.http[0].corsPolicy.unmatchedPreflights', 'expected one of UNSPECIFIED | FORWARD | IGNORE');
});

test('retries: retryOn conditions Istio knows and status codes; retryRemoteLocalities', () => {
  accepts(vs(`    - retries: { attempts: 2, retryOn: "5xx,gateway-error,reset,connect-failure,retriable-4xx,refused-stream,retriable-status-codes,cancelled,deadline-exceeded,internal,resource-exhausted,unavailable,503", retryRemoteLocalities: true }\n      ${ROUTE}`));
  accepts(vs(`    - retries: { attempts: 2, retryOn: "5xx, connect-failure" }\n      ${ROUTE}`));
  refuses(vs(`    - retries: { attempts: 2, retryOn: "5xx,on-failure,99" }\n      ${ROUTE}`), 'spec.http[0].retries.retryOn', 'expected retry conditions from 5xx', 'got the string "on-failure", the string "99"');
  refuses(vs(`    - retries: { attempts: 2, retryOn: 5 }\n      ${ROUTE}`), 'spec.http[0].retries.retryOn', 'expected a comma-separated list');
  refuses(vs(`    - retries: { attempts: 2, retryRemoteLocalities: 1 }\n      ${ROUTE}`), 'spec.http[0].retries.retryRemoteLocalities', 'expected true or false');
  accepts(vs(`    - retries: { attempts: 2, retryIgnorePreviousHosts: false, backoff: 50ms }\n      ${ROUTE}`));
  refuses(vs(`    - retries: { attempts: 2, retryIgnorePreviousHosts: "no" }\n      ${ROUTE}`), 'spec.http[0].retries.retryIgnorePreviousHosts', 'expected true or false');
  refuses(vs(`    - retries: { attempts: 2, backoff: 0s }\n      ${ROUTE}`), 'spec.http[0].retries.backoff', 'expected a duration from 1ms');
});

test('delegate: accepted when the delegate exists, has no hosts and narrows the match; refused by path otherwise', () => {
  const leaf = (http: string, hosts = '') => `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: leaf }
spec:
${hosts}  http:
${http}
`;
  const root = vs('    - match: [{ uri: { prefix: /team } }]\n      delegate: { name: leaf }');
  accepts(root + leaf(`    - match: [{ uri: { prefix: /team/a } }]\n      ${ROUTE}\n    - ${ROUTE}`));
  accepts(vs('    - match: [{ uri: { prefix: /team } }]\n      delegate: { name: leaf, namespace: default }') + leaf(`    - ${ROUTE}`));
  refuses(root, 'spec.http[0].delegate.name', 'no VirtualService named leaf in namespace default');
  refuses(vs('    - delegate: { name: leaf, namespace: other }') + leaf(`    - ${ROUTE}`), 'spec.http[0].delegate.name', 'no VirtualService named leaf in namespace other');
  refuses(root + leaf(`    - ${ROUTE}`, '  hosts: [web]\n'), 'spec.http[0].delegate', 'VirtualService leaf has hosts (web); a delegate has none');
  refuses(root + leaf(`    - match: [{ uri: { prefix: /other } }]\n      ${ROUTE}`), 'spec.http[0].delegate', 'rule spec.http[0] of VirtualService leaf cannot apply under this rule', 'uri: prefix /other is not within prefix /team');
  refuses(root + leaf('    - delegate: { name: api }'), 'spec.http[0].delegate', 'delegates again');
  refuses(vs('    - delegate: { name: api }'), 'spec.http[0].delegate', 'cannot delegate to itself');
  refuses(vs('    - delegate: { name: Leaf }'), 'spec.http[0].delegate.name', 'expected the name of a VirtualService');
  refuses(vs('    - delegate: { name: leaf, namespace: "" }') + leaf(`    - ${ROUTE}`), 'spec.http[0].delegate.namespace', 'expected a namespace name');
});

test('proxyless callers: what gRPC\'s xDS client cannot do is refused by path, naming the caller', () => {
  const g = (http: string) => vs(http, 'greeter', '[greeter]');
  const GROUTE = 'route: [{ destination: { host: greeter } }]';
  accepts(g(`    - match: [{ headers: { x-a: { exact: "1" } }, sourceLabels: { app: web }, withoutHeaders: { x-b: { exact: "2" } } }]\n      retries: { attempts: 2, retryOn: "unavailable,cancelled" }\n      ${GROUTE}`));
  refuses(g('    - redirect: { uri: /x }'), 'spec.http[0].redirect', 'not supported for proxyless gRPC callers: Service web calls greeter with mode xds');
  refuses(g('    - directResponse: { status: 503 }'), 'spec.http[0].directResponse', 'not supported for proxyless gRPC callers');
  refuses(g(`    - corsPolicy: { allowOrigin: ["*"] }\n      ${GROUTE}`), 'spec.http[0].corsPolicy', 'not supported for proxyless gRPC callers');
  refuses(g(`    - rewrite: { uriRegexRewrite: { match: a, rewrite: b } }\n      ${GROUTE}`), 'spec.http[0].rewrite.uriRegexRewrite', 'not supported for proxyless gRPC callers');
  // The same rules for api, which only sidecars call, are accepted.
  accepts(vs('    - redirect: { uri: /x }'));
});

test('every problem of one rule is listed, not the first only', () => {
  const got = problems(vs('    - match: [{ port: 1, sourceLabels: { team: a } }]\n      redirect: { redirectCode: 299 }\n      corsPolicy: { maxAge: 1 }'));
  for (const p of ['spec.http[0].match[0].port', 'spec.http[0].match[0].sourceLabels.team', 'spec.http[0].redirect.redirectCode', 'spec.http[0].corsPolicy.maxAge']) {
    assert.ok(got.some((g) => g.startsWith(`${p}: `)), `${p} in:\n${got.join('\n')}`);
  }
});

// Keep formatIssue in use: the full line names the file and document too.
test('a refusal names the file and the document', () => {
  const issues = loadDesired([{ source: 'f.yaml', text: SERVICES + vs('    - redirect: { redirectCode: 1 }') }], MESH).issues;
  assert.equal(formatIssue(issues[0]!).split(': ')[0], 'f.yaml');
  assert.match(formatIssue(issues[0]!), /VirtualService "api" \(document 4\): spec\.http\[0\]\.redirect\.redirectCode: expected one of 301/);
});
