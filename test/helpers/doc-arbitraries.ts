// fast-check generators of desired-state sets that the validator must accept: Services, VirtualServices,
// DestinationRules and registered instances, consistent with each other (ports, subsets, upstream modes).
import fc from 'fast-check';
import { stringify } from 'yaml';
import type { Instance, Protocol } from '../../agent/core/model/model.js';
import { NODE_NAME, SERVICE_NAME, VERSION_NAME } from '../../agent/core/model/model.js';

export const XDS_PORT = 15010;
type Obj = Record<string, unknown>;

/** A generated set: raw documents (as an operator writes them), the instances, and the node to render. */
export interface MeshCase {
  docs: Obj[];
  instances: Instance[];
  node: string;
}

const dnsLabel = fc.stringMatching(SERVICE_NAME);
const versionKey = fc.stringMatching(VERSION_NAME);
const nodeName = fc.stringMatching(NODE_NAME);
const envKey = fc.stringMatching(/^e[a-z0-9_]{0,12}$/); // lower-case: never an upstream's default *_ADDR nor its u<i>_*

/** Strings that break naive code: `$` (compose interpolation), newlines, NUL, unicode, `../`, quotes. */
export const hostile: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('$', '$$', '${HOME}', '$(id)', '\n', 'a\r\nb', '\0', '../../etc/passwd', 'é', '😀', '\u2028', '"\'`', '\\', '- x', '{a: b}', '*a', '&a', '#', ' '),
  fc.string({ unit: fc.constantFrom('$', '{', '}', '\n', '\0', '/', '.', ' ', '"', "'", '\\', ':', '#', '&', '*', 'é', '😀', 'a') }),
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: 'binary' }),
);
/** Mostly ordinary text, sometimes hostile: for fields that take any string. */
const freeText = fc.oneof({ arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 20 }), weight: 3 }, { arbitrary: hostile, weight: 1 });
const duration = fc.oneof(fc.integer({ min: 1, max: 5000 }).map((n) => `${n}ms`), fc.integer({ min: 1, max: 600 }).map((n) => `${n}s`), fc.constantFrom('1m30s', '1.5s', '2h'));
const image = fc.stringMatching(/^[a-z0-9][a-z0-9._/-]{0,30}(:[a-z0-9.]{1,8})?$/);
const ipv4 = fc.ipV4();
const hostPort = fc.tuple(fc.oneof(ipv4, dnsLabel, fc.ipV6().filter((a) => !a.includes('.')).map((a) => `[${a}]`)), fc.integer({ min: 1, max: 65535 })).map(([h, p]) => `${h}:${p}`);
const absPath = fc.array(fc.stringMatching(/^[A-Za-z0-9_.-]{1,8}$/).filter((s) => s !== '..'), { minLength: 1, maxLength: 3 }).map((p) => `/${p.join('/')}`);
const headerValue = freeText.filter((s) => !/[\0\r\n]/.test(s));
const stringMatch = fc.oneof(
  freeText.map((exact) => ({ exact })),
  freeText.filter((s) => s !== '').map((prefix) => ({ prefix })),
  fc.constantFrom('^/api/.*', '(?i)/v[0-9]+', '.*', 'a|b', '[a-z]+\\d*').map((regex) => ({ regex })),
);
const headerName = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/);
const percent = fc.oneof(fc.double({ min: 0, max: 100, noNaN: true }).map((value) => ({ percentage: { value } })), fc.integer({ min: 0, max: 100 }).map((percent) => ({ percent })), fc.constant({}));

/** Weights of `n` destinations adding up to 100 (zeros allowed, not all zero). */
function weights(n: number): fc.Arbitrary<number[]> {
  if (n === 1) return fc.constant([100]);
  return fc.array(fc.integer({ min: 0, max: 100 }), { minLength: n - 1, maxLength: n - 1 }).map((cuts) => {
    const c = [0, ...cuts.sort((a, b) => a - b), 100];
    return c.slice(1).map((x, i) => x - c[i]!);
  });
}

const healthDuration = fc.oneof(fc.integer({ min: 100, max: 60_000 }).map((n) => `${n}ms`), fc.integer({ min: 1, max: 3600 }).map((n) => `${n}s`), fc.constantFrom('1m30s', '1.5s', '1h'));
const health = fc.oneof(
  fc.record({ http: fc.stringMatching(/^\/[\x21-\x7e]{0,20}$/) }),
  fc.constant({ tcp: true }),
  fc.record({ grpc: fc.oneof(fc.constant(true), freeText) }),
  fc.record({ exec: fc.oneof(fc.array(freeText, { minLength: 1, maxLength: 3 }), fc.constant('wget -q -O- http://127.0.0.1/ || exit 1')) }),
).chain((kind) => fc.record({ interval: healthDuration, timeout: healthDuration, retries: fc.integer({ min: 1, max: 100 }), startPeriod: healthDuration }, { requiredKeys: [] }).map((t) => ({ ...kind, ...t })));

interface Skeleton { name: string; protocol: Protocol; versions: string[] }

function versionDoc(nodes: string[]) {
  return fc.record({
    image,
    command: fc.array(freeText, { minLength: 1, maxLength: 3 }),
    env: fc.dictionary(envKey, freeText, { maxKeys: 3 }),
    nodes: fc.oneof(fc.constant(['*']), fc.subarray(nodes, { minLength: 1 })),
    health,
    resources: fc.record({ cpus: fc.double({ min: 0.01, max: 64, noNaN: true }), memory: fc.constantFrom('256m', '1g', '512', 1048576) }, { requiredKeys: [] }),
    volumes: fc.array(fc.tuple(absPath, absPath, fc.constantFrom('', ':ro', ':rw')).map(([a, b, m]) => `${a}:${b}${m}`), { maxLength: 2 }),
  }, { requiredKeys: ['image', 'nodes'] });
}

function upstreamDoc(target: Skeleton, index: number) {
  const modes = ['proxy', 'direct', 'naming', ...(target.protocol === 'grpc' ? ['xds'] : [])] as const;
  return fc.record({ mode: fc.constantFrom(...modes, undefined), env: fc.option(fc.stringMatching(/^[A-Z0-9_]{0,10}$/).map((s) => `u${index}_${s}`), { nil: undefined }), address: hostPort })
    .map(({ mode, env, address }) => ({
      service: target.name,
      ...(mode ? { mode } : {}),
      ...(env ? { env } : {}),
      ...(mode === 'direct' ? { address } : {}),
    }));
}

/** Subsets of a DestinationRule (names unique, each selecting a version), or none. */
function subsetsFor(s: Skeleton) {
  return fc.uniqueArray(fc.record({ name: fc.stringMatching(/^[a-z0-9]([a-z0-9._-]{0,10}[a-z0-9])?$/), version: fc.constantFrom(...s.versions) }), { selector: (x) => x.name, minLength: 1, maxLength: 3 });
}

const trafficPolicy = fc.record({
  loadBalancer: fc.record({ simple: fc.constantFrom('ROUND_ROBIN', 'LEAST_REQUEST', 'LEAST_CONN', 'RANDOM', 'UNSPECIFIED') }),
  connectionPool: fc.record({
    tcp: fc.record({ maxConnections: fc.integer({ min: 1, max: 4294967295 }), connectTimeout: duration }, { requiredKeys: [] }),
    http: fc.record({ http1MaxPendingRequests: fc.integer({ min: 1, max: 100000 }), http2MaxRequests: fc.integer({ min: 1, max: 100000 }), maxRequestsPerConnection: fc.integer({ min: 1, max: 1000 }), maxRetries: fc.integer({ min: 0, max: 100 }), idleTimeout: duration }, { requiredKeys: [] }),
  }, { requiredKeys: [] }),
  outlierDetection: fc.record({ consecutive5xxErrors: fc.integer({ min: 0, max: 100 }), consecutiveGatewayErrors: fc.integer({ min: 0, max: 100 }), interval: duration, baseEjectionTime: duration, maxEjectionPercent: fc.integer({ min: 0, max: 100 }), minHealthPercent: fc.integer({ min: 0, max: 100 }) }, { requiredKeys: [] }),
  tls: fc.constant({ mode: 'DISABLE' }),
}, { requiredKeys: [] });

/** Destinations of one route: hosts among the services, subsets among each host's subsets. */
function destinations(all: Skeleton[], subsetNames: Map<string, string[]>, port: Map<string, number>) {
  const dest = fc.constantFrom(...all).chain((s) => fc.record({ subset: fc.option(fc.constantFrom(...subsetNames.get(s.name)!), { nil: undefined }), withPort: fc.boolean() })
    .map(({ subset, withPort }) => ({ host: s.name, ...(subset ? { subset } : {}), ...(withPort ? { port: { number: port.get(s.name)! } } : {}) })));
  return fc.array(dest, { minLength: 1, maxLength: 3 }).chain((ds) => weights(ds.length).map((w) => ds.map((destination, i) => ({ destination, ...(ds.length > 1 ? { weight: w[i] } : {}) }))));
}

function httpRoute(all: Skeleton[], subsetNames: Map<string, string[]>, port: Map<string, number>) {
  const match = fc.record({
    uri: fc.oneof(stringMatch, fc.constant({ prefix: '' })), method: fc.constantFrom({ exact: 'GET' }, { prefix: 'P' }, { regex: 'GET|HEAD' }), authority: stringMatch,
    headers: fc.dictionary(headerName, stringMatch, { maxKeys: 2 }), withoutHeaders: fc.dictionary(headerName, stringMatch, { maxKeys: 1 }),
    queryParams: fc.dictionary(headerName, stringMatch, { maxKeys: 1 }), ignoreUriCase: fc.boolean(),
  }, { requiredKeys: [] });
  const mirror = fc.constantFrom(...all).map((s) => ({ host: s.name }));
  return fc.record({
    name: freeText,
    match: fc.array(match, { maxLength: 2 }),
    route: destinations(all, subsetNames, port),
    timeout: duration,
    retries: fc.record({ attempts: fc.integer({ min: 0, max: 10 }), perTryTimeout: duration, retryOn: fc.constantFrom('5xx', '5xx,connect-failure', 'gateway-error,503', 'reset') }, { requiredKeys: ['attempts'] }),
    fault: fc.record({ delay: fc.tuple(duration, percent).map(([fixedDelay, p]) => ({ fixedDelay, ...p })), abort: fc.tuple(fc.oneof(fc.integer({ min: 200, max: 599 }).map((httpStatus) => ({ httpStatus })), fc.constantFrom('UNAVAILABLE', 'INTERNAL', 'OK').map((grpcStatus) => ({ grpcStatus }))), percent).map(([a, p]) => ({ ...a, ...p })) }, { requiredKeys: [] }),
    mirror,
    mirrorPercentage: fc.double({ min: 0, max: 100, noNaN: true }).map((value) => ({ value })),
    rewrite: fc.record({ uri: fc.constantFrom('/', '/v2/', '/x'), authority: dnsLabel }, { requiredKeys: [] }),
    headers: fc.record({ request: fc.record({ set: fc.dictionary(headerName, headerValue, { maxKeys: 2 }), add: fc.dictionary(headerName, headerValue, { maxKeys: 2 }), remove: fc.array(headerName, { maxLength: 2 }) }, { requiredKeys: [] }) }, { requiredKeys: [] }),
  }, { requiredKeys: ['route'] }).map((r) => ('mirrorPercentage' in r && !('mirror' in r) ? { ...r, mirror: { host: r.route[0]!.destination.host } } : r));
}

const meta = (name: string) => fc.record({ labels: fc.dictionary(dnsLabel, freeText, { maxKeys: 2 }), annotations: fc.dictionary(fc.stringMatching(/^[a-z.\/]{1,20}$/), freeText, { maxKeys: 2 }) }, { requiredKeys: [] }).map((m) => ({ name, ...m }));
const istioApi = fc.constantFrom('networking.istio.io/v1', 'networking.istio.io/v1beta1', 'networking.istio.io/v1alpha3');

/** A whole accepted set: 1–4 services on 1–3 nodes, optional rules and routes per service, and instances. */
export const meshCase: fc.Arbitrary<MeshCase> = fc.record({
  skel: fc.uniqueArray(fc.record({ name: dnsLabel, protocol: fc.constantFrom<Protocol>('http', 'http2', 'grpc', 'tcp'), versions: fc.uniqueArray(versionKey, { minLength: 1, maxLength: 3 }) }), { selector: (s) => s.name, minLength: 1, maxLength: 4 }),
  nodes: fc.uniqueArray(nodeName, { minLength: 1, maxLength: 3 }),
  ports: fc.uniqueArray(fc.integer({ min: 1, max: 65535 }).filter((p) => p !== XDS_PORT && (p < 15100 || p > 15999)), { minLength: 32, maxLength: 32 }),
  inheritPort: fc.boolean(),
}).chain(({ skel, nodes, ports, inheritPort }) => {
  // Ports are handed out here, once, from the unique pool: app ports never clash, and the sidecars that
  // proxy one upstream share its localPort (allowed: SO_REUSEPORT).
  let next = 0;
  const take = () => ports[next++]!;
  const port = new Map(skel.map((s) => [s.name, take()]));
  const localPort = new Map(skel.map((s) => [s.name, take()]));
  const versionPort = new Map(skel.flatMap((s) => s.versions.map((v, i) => [`${s.name}/${v}`, i === 0 && inheritPort ? undefined : take()] as const)));
  const withRule = fc.array(fc.boolean(), { minLength: skel.length, maxLength: skel.length });
  return withRule.chain((hasRule) => fc.tuple(...skel.map((s, i) => (hasRule[i] ? subsetsFor(s) : fc.constant(undefined)))).chain((subsets) => {
    const subsetNames = new Map(skel.map((s, i) => [s.name, subsets[i] ? subsets[i]!.map((x) => x.name) : s.versions]));
    const services = skel.map((s) => fc.record({
      versions: fc.tuple(...s.versions.map(() => versionDoc(nodes))),
      upstreams: fc.subarray(skel).chain((ts) => fc.tuple(...ts.map((t, i) => upstreamDoc(t, i)))),
      meta: meta(s.name),
      sidecar: fc.option(image.map((i) => ({ image: i })), { nil: undefined }),
    }).map(({ versions, upstreams, meta: metadata, sidecar }) => ({
      apiVersion: 'meshlet.dev/v1', kind: 'Service', metadata,
      spec: {
        ...(s.protocol === 'http' ? {} : { protocol: s.protocol }), port: port.get(s.name),
        versions: Object.fromEntries(s.versions.map((v, i) => [v, { ...versions[i], ...(versionPort.get(`${s.name}/${v}`) === undefined ? {} : { port: versionPort.get(`${s.name}/${v}`) }) }])),
        ...(upstreams.length > 0 ? { upstreams: upstreams.map((u) => ((u.mode ?? 'proxy') === 'proxy' ? { ...u, localPort: localPort.get(u.service) } : u)) } : {}),
        ...(sidecar ? { sidecar } : {}),
      },
    })));
    const rules = skel.flatMap((s, i) => (subsets[i] ? [fc.tuple(istioApi, fc.option(trafficPolicy, { nil: undefined }), fc.tuple(...subsets[i]!.map(() => fc.option(trafficPolicy, { nil: undefined }))))
      .map(([apiVersion, tp, sub]) => ({ apiVersion, kind: 'DestinationRule', metadata: { name: `${s.name.slice(0, 50)}-r${i}` }, spec: { host: s.name, ...(tp ? { trafficPolicy: tp } : {}), subsets: subsets[i]!.map((x, j) => ({ name: x.name, labels: { version: x.version }, ...(sub[j] ? { trafficPolicy: sub[j] } : {}) })) } }))] : []));
    const routes = skel.map((s, i) => fc.option(fc.tuple(istioApi, s.protocol === 'tcp'
      ? fc.array(destinations(skel.filter((t) => t.protocol === 'tcp'), subsetNames, port).map((route) => ({ route })), { minLength: 1, maxLength: 2 }).map((tcp) => ({ tcp }))
      : fc.array(httpRoute(skel, subsetNames, port), { minLength: 1, maxLength: 3 }).map((http) => ({ http })))
      .map(([apiVersion, spec]) => ({ apiVersion, kind: 'VirtualService', metadata: { name: `${s.name.slice(0, 50)}-vs${i}` }, spec: { hosts: [s.name], ...spec } })), { nil: undefined }));
    const instances = fc.array(fc.record({ s: fc.constantFrom(...skel), node: fc.constantFrom(...nodes), address: fc.oneof({ arbitrary: ipv4, weight: 4 }, fc.ipV6(), fc.constant('not-an-ip')), port: fc.integer({ min: 1, max: 65535 }), v: fc.nat() })
      .map(({ s, node, address, port: p, v }) => ({ service: s.name, version: s.versions[v % s.versions.length]!, node, address, port: p })), { maxLength: 8 });
    return fc.record({ services: fc.tuple(...services), rules: fc.tuple(...rules), routes: fc.tuple(...routes), instances, node: fc.constantFrom(...nodes) })
      .map(({ services: sv, rules: dr, routes: vs, instances: inst, node }) => ({ docs: [...sv, ...dr, ...vs.filter((x) => x !== undefined)] as Obj[], instances: inst, node }));
  }));
});

/** The documents as one multi-document YAML file. */
export function toYamlText(docs: unknown[]): string {
  return docs.map((d) => stringify(d, { lineWidth: 0 })).join('---\n');
}

// ---- Mutations: the same sets, broken on purpose ----

type Path = (string | number)[];

function pathsOf(value: unknown, path: Path = [], out: Path[] = []): Path[] {
  out.push(path);
  if (Array.isArray(value)) value.forEach((v, i) => pathsOf(v, [...path, i], out));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) pathsOf(v, [...path, k], out);
  return out;
}

function nest(depth: number, leaf: unknown, asList: boolean): unknown {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = asList ? [v] : { a: v };
  return v;
}

const strangeValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: fc.oneof(fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.string(), fc.array(fc.integer(), { maxLength: 3 }), fc.dictionary(fc.string(), fc.integer(), { maxKeys: 2 })), weight: 10 },
  { arbitrary: fc.constantFrom(-1, 0, 65536, 4294967296, 1e308, -1e308, 1.5, 2 ** 53 + 2, Number.NaN, Number.POSITIVE_INFINITY, -0), weight: 10 },
  { arbitrary: hostile, weight: 10 },
  { arbitrary: fc.tuple(fc.integer({ min: 10, max: 400 }), fc.boolean()).map(([d, l]) => nest(d, 'x', l)), weight: 3 },
  { arbitrary: fc.constantFrom('a', '$', 'é\n').map((c) => c.repeat(Math.ceil((1 << 20) / c.length))), weight: 1 }, // ~1 MB
);

type Edit = { kind: 'set'; value: unknown } | { kind: 'delete' } | { kind: 'addKey'; key: string; value: unknown };
const edit: fc.Arbitrary<Edit> = fc.oneof(
  { arbitrary: strangeValue.map((value) => ({ kind: 'set' as const, value })), weight: 4 },
  fc.constant({ kind: 'delete' as const }),
  fc.record({ kind: fc.constant('addKey' as const), key: fc.oneof(fc.string(), fc.constantFrom('status', 'namespace', 'tls', 'redirect', '__proto__', 'constructor', '<<')), value: strangeValue }),
);

function applyEdit(docs: Obj[], path: Path, e: Edit): unknown[] {
  const out = structuredClone(docs) as unknown[];
  if (path.length === 0) return out;
  const parent = path.slice(0, -1).reduce<any>((o, k) => o[k], out); // eslint-disable-line @typescript-eslint/no-explicit-any
  const key = path[path.length - 1]!;
  if (e.kind === 'delete') Array.isArray(parent) ? parent.splice(key as number, 1) : delete parent[key];
  else if (e.kind === 'set') parent[key] = e.value;
  else {
    const target = parent[key];
    if (target !== null && typeof target === 'object' && !Array.isArray(target)) Object.defineProperty(target, e.key, { value: e.value, enumerable: true, writable: true, configurable: true });
    else parent[key] = { [e.key]: e.value };
  }
  return out;
}

/** Text edits that values cannot express: duplicate keys, anchors and aliases (also a bomb), stray bytes, cuts. */
const textEdit = fc.oneof(
  fc.nat().map((n) => (t: string) => {
    const lines = t.split('\n');
    const keyed = lines.map((l, i) => [l, i] as const).filter(([l]) => /^\s*[A-Za-z"][^:]*:/.test(l));
    const [line, i] = keyed[n % keyed.length]!;
    lines.splice(i + 1, 0, line.replace(/:.*/, ': dup'));
    return lines.join('\n');
  }),
  fc.nat().map((n) => (t: string) => {
    const lines = t.split('\n');
    const i = n % lines.length;
    lines[i] = lines[i]!.replace(/^(\s*[^:#-][^:]*:) (\S.*)$/, '$1 &x $2');
    return `${lines.join('\n')}\n---\nalias: *x\nmissing: *nope\n`;
  }),
  fc.constant((t: string) => `${t}\n---\n${['a: &a [x, x, x, x, x, x, x, x, x]', ...'bcdefghij'.split('').map((c, i) => `${c}: &${c} [${Array(9).fill(`*${'abcdefghij'[i]}`).join(', ')}]`)].join('\n')}\n`),
  fc.tuple(fc.nat(), hostile).map(([n, s]) => (t: string) => t.slice(0, n % (t.length + 1)) + s + t.slice(n % (t.length + 1))),
  fc.nat().map((n) => (t: string) => t.slice(0, n % (t.length + 1))),
  fc.tuple(fc.nat(), fc.constantFrom('\0', '\t', '\r', '\uFEFF', '%YAML 1.1\n', '!!binary ', '? ', '|')).map(([n, c]) => (t: string) => t.slice(0, n % t.length) + c + t.slice((n % t.length) + 1)),
);

export interface TextCase {
  files: { source: string; text: string }[];
  node: string;
}

/** A generated set with one value edit or one text edit: usually rejected, sometimes still valid. */
export const mutatedCase: fc.Arbitrary<TextCase> = meshCase.chain((c) => {
  const paths = pathsOf(c.docs);
  const byValue = fc.tuple(fc.constantFrom(...paths), edit).map(([p, e]) => toYamlText(applyEdit(c.docs, p, e)));
  const byText = textEdit.map((f) => f(toYamlText(c.docs)));
  return fc.oneof(byValue, byText).map((text) => ({ files: [{ source: 'fuzz.yaml', text }], node: c.node }));
});
