// Validates an Istio VirtualService (networking.istio.io v1, v1beta1, v1alpha3) into meshlet's route model.
import type { IssueSink } from '../model/issues.js';
import { quote } from '../model/issues.js';
import type { Destination, HeaderOps, HttpMatch, HttpRoute, StringMatch, VirtualService } from '../model/model.js';
import { SUBSET_NAME } from '../model/model.js';
import type { Obj } from './reader.js';
import { at, describe, readDuration, readInt, readList, readMapping, readNumber, readObject, readString, readStringList } from './reader.js';
import { re2SyntaxError } from './re2-syntax.js';
import { readHost, readHosts } from './host-names.js';
import { REMOVED_HTTP_ROUTE_FIELDS, oldMirrorPercentKey } from './deprecated-fields.js';
import { readTcpRoute, readTlsRoute } from './validate-l4-route.js';
import type { Draft } from './draft.js';
import { UNREAD } from './draft.js';

const NOT_SUPPORTED = (what: string, why = '') => `${what} is not supported${why ? ` (${why})` : ''}`;
const SUBSET = { pattern: SUBSET_NAME, expected: 'a subset name (lower-case letters, digits, ".", "_" and "-")' };
// RFC 7230 token. Envoy's own rule (no NUL, CR, LF) is looser, but a name outside it cannot be sent on HTTP/1.
const HEADER_NAME = { pattern: /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, expected: 'a header name (letters, digits and !#$%&\'*+.^_`|~-)' };
// Envoy refuses a header value (and prefix_rewrite, host_rewrite_literal) holding NUL, CR or LF.
const HEADER_VALUE = { pattern: /^[^\0\r\n]*$/, expected: 'a header value (no NUL, CR or LF)' };
const MAX_HEADER_BYTES = 16384; // Envoy's HeaderValue.value max_bytes

function readHeaderValue(sink: IssueSink, value: unknown, path: string): string | undefined {
  const s = readString(sink, value, path, HEADER_VALUE);
  if (s === undefined || Buffer.byteLength(s) <= MAX_HEADER_BYTES) return s;
  sink.add(path, `expected at most ${MAX_HEADER_BYTES} bytes, got ${Buffer.byteLength(s)}`);
  return undefined;
}

/** The VirtualService as far as it could be read; the caller accepts it only if no issue was added. */
export function validateVirtualService(sink: IssueSink, body: Obj, name: string | undefined): Draft<VirtualService> | undefined {
  const before = sink.out.length;
  const spec = readObject(sink, body.spec, 'spec', ['hosts', 'http', 'tcp', 'tls', 'gateways', 'exportTo']);
  if (!spec) return undefined;
  // Hosts stay in the order written (set-level messages name their index); one that cannot be read is UNREAD.
  const hosts = readHosts(sink, spec.hosts, 'spec.hosts') ?? [];
  if (spec.gateways !== undefined) readGateways(sink, spec.gateways, 'spec.gateways');
  const exportTo = spec.exportTo === undefined ? undefined : readExportTo(sink, spec.exportTo, 'spec.exportTo');
  const http = spec.http === undefined ? [] : (readList(sink, spec.http, 'spec.http') ?? []).map((r, i) => readHttpRoute(sink, r, at('spec.http', i)));
  const tcp = spec.tcp === undefined ? [] : (readList(sink, spec.tcp, 'spec.tcp') ?? []).map((r, i) => readTcpRoute(sink, r, at('spec.tcp', i)));
  const tls = spec.tls === undefined ? [] : (readList(sink, spec.tls, 'spec.tls') ?? []).map((r, i) => readTlsRoute(sink, r, at('spec.tls', i)));
  if (http.length === 0 && tcp.length === 0 && tls.length === 0 && sink.out.length === before) sink.add('spec', 'expected http, tcp or tls routes');
  // A route that cannot be read keeps its place with no destination, so that later indexes stay right.
  return {
    doc: {
      kind: 'VirtualService', name: name ?? UNREAD, namespace: sink.namespace, hosts,
      http: http.map((r) => r ?? { match: [], route: [], mirrors: [] }), tcp: tcp.map((r) => r ?? { match: [], route: [] }),
      tls: tls.map((r) => r ?? { match: [], route: [] }), ...(exportTo ? { exportTo } : {}), hostRefs: sink.hosts, ref: sink.doc,
    },
    gaps: new Set(name === undefined ? ['name'] : []),
  };
}

/**
 * `exportTo`: `*` (every namespace, the default) or `.` (the document's own namespace). A list naming
 * other namespaces is refused: meshlet honours only these two.
 */
export function readExportTo(sink: IssueSink, value: unknown, path: string): string[] | undefined {
  const list = readStringList(sink, value, path);
  if (!list) return undefined;
  let ok = true;
  list.forEach((e, i) => {
    if (e === '*' || e === '.') return;
    ok = false;
    sink.add(at(path, i), NOT_SUPPORTED(`exporting to ${quote(e)}`, 'meshlet honours "." (this namespace) and "*" (every namespace)'));
  });
  return ok ? list : undefined;
}

/** `gateways: [mesh]` is what Istio means by default (the sidecars); meshlet has no other gateway yet. */
export function readGateways(sink: IssueSink, value: unknown, path: string): void {
  (readStringList(sink, value, path) ?? []).forEach((g, i) => {
    if (g !== 'mesh') sink.add(at(path, i), NOT_SUPPORTED(`gateway ${quote(g)}`, 'meshlet has no gateways yet; only "mesh", the sidecars'));
  });
}

function readHttpRoute(sink: IssueSink, value: unknown, path: string): HttpRoute | undefined {
  const r = readObject(
    sink, value, path,
    ['name', 'match', 'route', 'timeout', 'retries', 'fault', 'mirror', 'mirrors', 'mirrorPercent', 'mirror_percent', 'mirrorPercentage', 'rewrite', 'headers'],
    {
      ...REMOVED_HTTP_ROUTE_FIELDS,
      redirect: NOT_SUPPORTED('redirect'),
      directResponse: NOT_SUPPORTED('directResponse'),
      delegate: NOT_SUPPORTED('delegate'),
      corsPolicy: NOT_SUPPORTED('corsPolicy'),
    },
  );
  if (!r) return undefined;
  const route: HttpRoute = { match: [], route: [], mirrors: [] };
  if (r.name !== undefined) route.name = readString(sink, r.name, at(path, 'name'));
  if (r.match !== undefined) route.match = (readList(sink, r.match, at(path, 'match')) ?? []).map((m, i) => readMatch(sink, m, at(at(path, 'match'), i))).filter((m): m is HttpMatch => !!m);
  route.route = readDestinations(sink, r.route, at(path, 'route'));
  if (r.timeout !== undefined) route.timeoutMs = readDuration(sink, r.timeout, at(path, 'timeout'));
  if (r.retries !== undefined) route.retries = readRetries(sink, r.retries, at(path, 'retries'));
  if (r.fault !== undefined) route.fault = readFault(sink, r.fault, at(path, 'fault'));
  route.mirrors = readMirrors(sink, r, path);
  if (r.rewrite !== undefined) {
    const rw = readObject(sink, r.rewrite, at(path, 'rewrite'), ['uri', 'authority'], { uriRegexRewrite: NOT_SUPPORTED('uriRegexRewrite') });
    if (rw) {
      route.rewrite = {};
      if (rw.uri !== undefined) route.rewrite.uri = readHeaderValue(sink, rw.uri, at(at(path, 'rewrite'), 'uri'));
      if (rw.authority !== undefined) route.rewrite.authority = readHeaderValue(sink, rw.authority, at(at(path, 'rewrite'), 'authority'));
    }
  }
  if (r.headers !== undefined) route.headers = readHeaderOps(sink, r.headers, at(path, 'headers'));
  return route;
}

function readMatch(sink: IssueSink, value: unknown, path: string): HttpMatch | undefined {
  const m = readObject(sink, value, path, ['name', 'uri', 'method', 'authority', 'headers', 'withoutHeaders', 'queryParams', 'ignoreUriCase'], {
    scheme: NOT_SUPPORTED('matching on scheme'),
    port: NOT_SUPPORTED('matching on port', 'a meshlet Service has one port'),
    sourceLabels: NOT_SUPPORTED('sourceLabels'),
    sourceNamespace: NOT_SUPPORTED('sourceNamespace'),
    gateways: NOT_SUPPORTED('gateways'),
    statPrefix: NOT_SUPPORTED('statPrefix'),
  });
  if (!m) return undefined;
  const out: HttpMatch = { headers: [], withoutHeaders: [], queryParams: [], ignoreUriCase: false };
  if (m.name !== undefined) readString(sink, m.name, at(path, 'name'));
  if (m.uri !== undefined) out.uri = readStringMatch(sink, m.uri, at(path, 'uri'), true);
  if (m.method !== undefined) out.method = readStringMatch(sink, m.method, at(path, 'method'));
  if (m.authority !== undefined) out.authority = readStringMatch(sink, m.authority, at(path, 'authority'));
  out.headers = readNamedMatches(sink, m.headers, at(path, 'headers'));
  out.withoutHeaders = readNamedMatches(sink, m.withoutHeaders, at(path, 'withoutHeaders'));
  out.queryParams = readNamedMatches(sink, m.queryParams, at(path, 'queryParams'));
  if (m.ignoreUriCase !== undefined) {
    if (typeof m.ignoreUriCase !== 'boolean') sink.add(at(path, 'ignoreUriCase'), `expected true or false, got ${describe(m.ignoreUriCase)}`);
    else out.ignoreUriCase = m.ignoreUriCase;
  }
  return out;
}

function readNamedMatches(sink: IssueSink, value: unknown, path: string): { name: string; match: StringMatch }[] {
  if (value === undefined) return [];
  const obj = readMapping(sink, value, path);
  if (!obj) return [];
  return Object.keys(obj).sort().flatMap((name) => {
    const p = at(path, name);
    if (!HEADER_NAME.pattern.test(name)) { sink.add(p, `expected a header or parameter name, got ${describe(name)}`); return []; }
    const match = readStringMatch(sink, obj[name], p);
    return match ? [{ name: name.toLowerCase(), match }] : [];
  });
}

/** `uri`: a route's path match, where Envoy takes an empty prefix (its StringMatcher elsewhere does not). */
function readStringMatch(sink: IssueSink, value: unknown, path: string, uri = false): StringMatch | undefined {
  const m = readObject(sink, value, path, ['exact', 'prefix', 'regex']);
  if (!m) return undefined;
  const set = (['exact', 'prefix', 'regex'] as const).filter((k) => m[k] !== undefined);
  if (set.length !== 1) {
    sink.add(path, `expected exactly one of exact | prefix | regex, got ${set.length === 0 ? 'none' : set.join(' and ')}`);
    return undefined;
  }
  const kind = set[0]!;
  const text = readString(sink, m[kind], at(path, kind));
  if (text === undefined) return undefined;
  if (text === '' && (kind === 'regex' || (kind === 'prefix' && !uri))) {
    sink.add(at(path, kind), `expected a non-empty ${kind}${kind === 'prefix' ? ' (to match any value, leave the match out)' : ''}`);
    return undefined;
  }
  if (kind === 'regex') {
    const re2 = re2SyntaxError(text);
    if (re2) {
      sink.add(at(path, 'regex'), `expected a regular expression (RE2 syntax), got ${describe(text)}: ${re2}`);
      return undefined;
    }
  }
  return { [kind]: text };
}

/**
 * Every destination keeps its place: one whose host cannot be read is UNREAD, one whose weight cannot be
 * read has weight 0, so that a refused document's destinations are still checked against the set.
 */
export function readDestinations(sink: IssueSink, value: unknown, path: string): Destination[] {
  const list = readList(sink, value, path, 1);
  if (!list) return [];
  let complete = true;
  const dests = list.map((item, i): Destination => {
    const p = at(path, i);
    const d = readObject(sink, item, p, ['destination', 'weight'], { headers: NOT_SUPPORTED('per-destination headers', 'use the route\'s headers') });
    if (!d) { complete = false; return { host: UNREAD, weight: 0 }; }
    const dest = readDestination(sink, d.destination, at(p, 'destination'));
    const weight = d.weight === undefined ? (list.length === 1 ? 100 : undefined) : readInt(sink, d.weight, at(p, 'weight'), 0, 100, 'a weight');
    if (d.weight === undefined && list.length > 1) sink.add(at(p, 'weight'), 'expected a weight: a route with several destinations needs one on each');
    if (!dest || weight === undefined) complete = false;
    return { ...(dest ?? { host: UNREAD }), weight: weight ?? 0 };
  });
  if (!complete) return dests;
  const sum = dests.reduce((s, d) => s + d.weight, 0);
  if (sum !== 100) sink.add(path, `expected weights adding up to 100, got ${dests.map((d) => d.weight).join(' + ')} = ${sum}`);
  return dests;
}

function readDestination(sink: IssueSink, value: unknown, path: string): { host: string; subset?: string; port?: number } | undefined {
  const d = readObject(sink, value, path, ['host', 'subset', 'port']);
  if (!d) return undefined;
  const host = readHost(sink, d.host, at(path, 'host'));
  const subset = d.subset === undefined ? undefined : readString(sink, d.subset, at(path, 'subset'), SUBSET);
  let port: number | undefined;
  if (d.port !== undefined) {
    const p = readObject(sink, d.port, at(path, 'port'), ['number']);
    if (p) port = readInt(sink, p.number, at(at(path, 'port'), 'number'), 1, 65535, 'a port');
  }
  if (!host) return undefined;
  return { host, ...(subset !== undefined ? { subset } : {}), ...(port !== undefined ? { port } : {}) };
}

function readRetries(sink: IssueSink, value: unknown, path: string): HttpRoute['retries'] {
  const r = readObject(sink, value, path, ['attempts', 'perTryTimeout', 'retryOn'], {
    retryRemoteLocalities: NOT_SUPPORTED('retryRemoteLocalities'),
    retryIgnorePreviousHosts: NOT_SUPPORTED('retryIgnorePreviousHosts'),
    backoff: NOT_SUPPORTED('backoff'),
  });
  if (!r) return undefined;
  const attempts = readInt(sink, r.attempts, at(path, 'attempts'), 0, 100, 'a number of attempts');
  const out: NonNullable<HttpRoute['retries']> = { attempts: attempts ?? 0 };
  if (r.perTryTimeout !== undefined) out.perTryTimeoutMs = readDuration(sink, r.perTryTimeout, at(path, 'perTryTimeout'), 1);
  if (r.retryOn !== undefined) out.retryOn = readString(sink, r.retryOn, at(path, 'retryOn'), { pattern: /^[a-z0-9-]+(,[a-z0-9-]+)*$/, expected: 'a comma-separated list of retry conditions such as "5xx,connect-failure"' });
  return out;
}

/** `percentage: {value: 12.5}` or the older integer `percent: 12`; both mean 0–100, default 100. */
function readPercent(sink: IssueSink, obj: Obj, path: string): number {
  if (obj.percentage !== undefined && obj.percent !== undefined) {
    sink.add(path, 'expected percentage or percent, not both');
    return 100;
  }
  if (obj.percent !== undefined) return readInt(sink, obj.percent, at(path, 'percent'), 0, 100, 'a percentage') ?? 100;
  if (obj.percentage === undefined) return 100;
  const p = readObject(sink, obj.percentage, at(path, 'percentage'), ['value']);
  return p ? readNumber(sink, p.value, at(at(path, 'percentage'), 'value'), 0, 100) ?? 100 : 100;
}

function readFault(sink: IssueSink, value: unknown, path: string): HttpRoute['fault'] {
  const f = readObject(sink, value, path, ['delay', 'abort']);
  if (!f) return undefined;
  const out: NonNullable<HttpRoute['fault']> = {};
  if (f.delay !== undefined) {
    const p = at(path, 'delay');
    const d = readObject(sink, f.delay, p, ['fixedDelay', 'percentage', 'percent'], { exponentialDelay: NOT_SUPPORTED('exponentialDelay') });
    if (d) {
      const fixedDelayMs = readDuration(sink, d.fixedDelay, at(p, 'fixedDelay'), 1);
      const percent = readPercent(sink, d, p);
      if (fixedDelayMs !== undefined) out.delay = { fixedDelayMs, percent };
    }
  }
  if (f.abort !== undefined) {
    const p = at(path, 'abort');
    const a = readObject(sink, f.abort, p, ['httpStatus', 'grpcStatus', 'percentage', 'percent'], { http2Error: NOT_SUPPORTED('http2Error') });
    if (a) {
      const percent = readPercent(sink, a, p);
      if ((a.httpStatus === undefined) === (a.grpcStatus === undefined)) sink.add(p, 'expected exactly one of httpStatus | grpcStatus');
      else if (a.httpStatus !== undefined) {
        const httpStatus = readInt(sink, a.httpStatus, at(p, 'httpStatus'), 200, 599, 'an HTTP status');
        if (httpStatus !== undefined) out.abort = { httpStatus, percent };
      } else {
        const grpcStatus = readString(sink, a.grpcStatus, at(p, 'grpcStatus'), { oneOf: GRPC_STATUS_NAMES });
        if (grpcStatus !== undefined) out.abort = { grpcStatus, percent };
      }
    }
  }
  return out;
}

export const GRPC_STATUS_NAMES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
] as const;

function readMirrors(sink: IssueSink, r: Obj, path: string): HttpRoute['mirrors'] {
  const out: HttpRoute['mirrors'] = [];
  const oldKey = oldMirrorPercentKey(sink, r, path);
  if (r.mirror !== undefined) {
    if (r[oldKey] !== undefined && r.mirrorPercentage !== undefined) sink.add(at(path, 'mirrorPercentage'), `expected mirrorPercentage or ${oldKey}, not both`);
    let percent = 100;
    if (r[oldKey] !== undefined) percent = readInt(sink, r[oldKey], at(path, oldKey), 0, 100, 'a percentage') ?? 100;
    if (r.mirrorPercentage !== undefined) {
      const p = readObject(sink, r.mirrorPercentage, at(path, 'mirrorPercentage'), ['value']);
      if (p) percent = readNumber(sink, p.value, at(at(path, 'mirrorPercentage'), 'value'), 0, 100) ?? 100;
    }
    const d = readDestination(sink, r.mirror, at(path, 'mirror'));
    if (d) out.push({ host: d.host, ...(d.subset ? { subset: d.subset } : {}), percent });
  } else if (r[oldKey] !== undefined || r.mirrorPercentage !== undefined) {
    sink.add(at(path, r[oldKey] !== undefined ? oldKey : 'mirrorPercentage'), 'is only used with mirror');
  }
  if (r.mirrors !== undefined) {
    (readList(sink, r.mirrors, at(path, 'mirrors')) ?? []).forEach((m, i) => {
      const p = at(at(path, 'mirrors'), i);
      const o = readObject(sink, m, p, ['destination', 'percentage']);
      if (!o) return;
      const d = readDestination(sink, o.destination, at(p, 'destination'));
      let percent = 100;
      if (o.percentage !== undefined) {
        const pc = readObject(sink, o.percentage, at(p, 'percentage'), ['value']);
        if (pc) percent = readNumber(sink, pc.value, at(at(p, 'percentage'), 'value'), 0, 100) ?? 100;
      }
      if (d) out.push({ host: d.host, ...(d.subset ? { subset: d.subset } : {}), percent });
    });
  }
  return out;
}

function readHeaderOps(sink: IssueSink, value: unknown, path: string): HeaderOps | undefined {
  const h = readObject(sink, value, path, ['request', 'response']);
  if (!h) return undefined;
  const side = (v: unknown, p: string): HeaderOps['request'] => {
    const empty = { set: {}, add: {}, remove: [] as string[] };
    if (v === undefined) return empty;
    const o = readObject(sink, v, p, ['set', 'add', 'remove']);
    if (!o) return empty;
    const kv = (x: unknown, pp: string): Record<string, string> => {
      if (x === undefined) return {};
      const m = readMapping(sink, x, pp);
      const out: Record<string, string> = {};
      for (const k of Object.keys(m ?? {}).sort()) {
        if (readString(sink, k, at(pp, k), HEADER_NAME) === undefined) continue;
        const s = readHeaderValue(sink, m![k], at(pp, k));
        if (s !== undefined) out[k.toLowerCase()] = s;
      }
      return out;
    };
    return { set: kv(o.set, at(p, 'set')), add: kv(o.add, at(p, 'add')), remove: o.remove === undefined ? [] : (readStringList(sink, o.remove, at(p, 'remove'), HEADER_NAME) ?? []).map((s) => s.toLowerCase()).sort() };
  };
  return { request: side(h.request, at(path, 'request')), response: side(h.response, at(path, 'response')) };
}
