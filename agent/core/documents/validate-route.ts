// Validates an Istio VirtualService (networking.istio.io v1, v1beta1, v1alpha3) into meshlet's route model.
import type { IssueSink } from '../model/issues.js';
import { quote } from '../model/issues.js';
import type { Destination, HeaderOps, HttpMatch, HttpRoute, StringMatch, VirtualService } from '../model/model.js';
import { SERVICE_NAME, SUBSET_NAME } from '../model/model.js';
import type { Obj } from './reader.js';
import { at, describe, readDuration, readInt, readList, readMapping, readNumber, readObject, readString, readStringList } from './reader.js';
import { readHost, readHosts } from './host-names.js';
import { REMOVED_HTTP_ROUTE_FIELDS, oldMirrorPercentKey } from './deprecated-fields.js';
import { readTcpRoute, readTlsRoute } from './validate-l4-route.js';
import type { Draft } from './draft.js';
import { UNREAD } from './draft.js';
import { HEADER_NAME, NOT_SUPPORTED, readHeaderValue, readStringMatch } from './http-fields.js';
import { readCorsPolicy, readDirectResponse, readNamespace, readRedirect, readRetryOn, readRewrite, readSourceLabels } from './validate-http-actions.js';

const SUBSET = { pattern: SUBSET_NAME, expected: 'a subset name (lower-case letters, digits, ".", "_" and "-")' };

/** The VirtualService as far as it could be read; the caller accepts it only if no issue was added. */
export function validateVirtualService(sink: IssueSink, body: Obj, name: string | undefined): Draft<VirtualService> | undefined {
  const before = sink.out.length;
  const spec = readObject(sink, body.spec, 'spec', ['hosts', 'http', 'tcp', 'tls', 'gateways', 'exportTo']);
  if (!spec) return undefined;
  // Hosts stay in the order written (set-level messages name their index); one that cannot be read is UNREAD.
  // A VirtualService without hosts is a delegate: only another one's `delegate` rule uses its routes.
  const hosts = spec.hosts === undefined ? [] : readHosts(sink, spec.hosts, 'spec.hosts') ?? [];
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
    ['name', 'match', 'route', 'redirect', 'directResponse', 'delegate', 'timeout', 'retries', 'fault', 'mirror', 'mirrors', 'mirrorPercent', 'mirror_percent', 'mirrorPercentage', 'rewrite', 'headers', 'corsPolicy'],
    REMOVED_HTTP_ROUTE_FIELDS,
  );
  if (!r) return undefined;
  const route: HttpRoute = { match: [], route: [], mirrors: [] };
  if (r.name !== undefined) route.name = readString(sink, r.name, at(path, 'name'));
  if (r.match !== undefined) route.match = (readList(sink, r.match, at(path, 'match')) ?? []).map((m, i) => readMatch(sink, m, at(at(path, 'match'), i))).filter((m): m is HttpMatch => !!m);
  // Exactly one action, as Istio's validation has it.
  const actions = (['route', 'redirect', 'directResponse', 'delegate'] as const).filter((k) => r[k] !== undefined);
  if (actions.length === 0) sink.add(path, 'expected one of route | redirect | directResponse | delegate, got none');
  if (actions.length > 1) sink.add(path, `expected one of route | redirect | directResponse | delegate, got ${actions.join(' and ')}`);
  if (r.route !== undefined) route.route = readDestinations(sink, r.route, at(path, 'route'));
  if (r.redirect !== undefined) route.redirect = readRedirect(sink, r.redirect, at(path, 'redirect'));
  if (r.directResponse !== undefined) route.directResponse = readDirectResponse(sink, r.directResponse, at(path, 'directResponse'));
  if (r.delegate !== undefined) route.delegate = readDelegate(sink, r.delegate, at(path, 'delegate'));
  // Envoy answers a redirect or direct response itself: nothing goes upstream, so these could not apply.
  const answered = r.redirect !== undefined ? 'redirect' : r.directResponse !== undefined ? 'directResponse' : undefined;
  if (answered) {
    for (const k of ['timeout', 'retries', 'fault', 'mirror', 'mirrors', 'rewrite'] as const) {
      if (r[k] !== undefined) sink.add(at(path, k), `has no effect with ${answered} (nothing is sent upstream); leave it out`);
    }
  }
  if (r.timeout !== undefined) route.timeoutMs = readDuration(sink, r.timeout, at(path, 'timeout'));
  if (r.retries !== undefined) route.retries = readRetries(sink, r.retries, at(path, 'retries'));
  if (r.fault !== undefined) route.fault = readFault(sink, r.fault, at(path, 'fault'));
  route.mirrors = readMirrors(sink, r, path);
  if (r.rewrite !== undefined) route.rewrite = readRewrite(sink, r.rewrite, at(path, 'rewrite'));
  if (r.headers !== undefined) route.headers = readHeaderOps(sink, r.headers, at(path, 'headers'));
  if (r.corsPolicy !== undefined) route.corsPolicy = readCorsPolicy(sink, r.corsPolicy, at(path, 'corsPolicy'));
  return route;
}

function readDelegate(sink: IssueSink, value: unknown, path: string): HttpRoute['delegate'] {
  const d = readObject(sink, value, path, ['name', 'namespace']);
  if (!d) return undefined;
  const name = readString(sink, d.name, at(path, 'name'), { pattern: SERVICE_NAME, expected: 'the name of a VirtualService' });
  const namespace = d.namespace === undefined ? undefined : readNamespace(sink, d.namespace, at(path, 'namespace'));
  return name === undefined ? undefined : { name, ...(namespace !== undefined ? { namespace } : {}) };
}

function readMatch(sink: IssueSink, value: unknown, path: string): HttpMatch | undefined {
  const m = readObject(
    sink, value, path,
    ['name', 'uri', 'scheme', 'method', 'authority', 'headers', 'withoutHeaders', 'queryParams', 'ignoreUriCase', 'port', 'sourceLabels', 'sourceNamespace', 'gateways', 'statPrefix'],
  );
  if (!m) return undefined;
  const out: HttpMatch = { headers: [], withoutHeaders: [], queryParams: [], ignoreUriCase: false };
  if (m.name !== undefined) out.name = readString(sink, m.name, at(path, 'name'));
  if (m.uri !== undefined) out.uri = readStringMatch(sink, m.uri, at(path, 'uri'), true);
  if (m.scheme !== undefined) out.scheme = readStringMatch(sink, m.scheme, at(path, 'scheme'));
  if (m.method !== undefined) out.method = readStringMatch(sink, m.method, at(path, 'method'));
  if (m.authority !== undefined) out.authority = readStringMatch(sink, m.authority, at(path, 'authority'));
  out.headers = readNamedMatches(sink, m.headers, at(path, 'headers'));
  out.withoutHeaders = readNamedMatches(sink, m.withoutHeaders, at(path, 'withoutHeaders'));
  out.queryParams = readNamedMatches(sink, m.queryParams, at(path, 'queryParams'));
  if (m.ignoreUriCase !== undefined) {
    if (typeof m.ignoreUriCase !== 'boolean') sink.add(at(path, 'ignoreUriCase'), `expected true or false, got ${describe(m.ignoreUriCase)}`);
    else out.ignoreUriCase = m.ignoreUriCase;
  }
  if (m.port !== undefined) out.port = readInt(sink, m.port, at(path, 'port'), 1, 65535, 'a port');
  if (m.sourceLabels !== undefined) out.sourceLabels = readSourceLabels(sink, m.sourceLabels, at(path, 'sourceLabels'));
  if (m.sourceNamespace !== undefined) out.sourceNamespace = readNamespace(sink, m.sourceNamespace, at(path, 'sourceNamespace'));
  if (m.gateways !== undefined) {
    const gw = readStringList(sink, m.gateways, at(path, 'gateways'));
    if (gw && gw.some((g) => g !== 'mesh')) sink.add(at(path, 'gateways'), NOT_SUPPORTED('gateways other than "mesh"', 'meshlet has no gateways'));
  }
  if (m.statPrefix !== undefined) out.statPrefix = readString(sink, m.statPrefix, at(path, 'statPrefix'), { pattern: /^[^\0\r\n]+$/, expected: 'a stats prefix' });
  return out;
}

function readNamedMatches(sink: IssueSink, value: unknown, path: string): { name: string; match: StringMatch }[] {
  if (value === undefined) return [];
  const obj = readMapping(sink, value, path);
  if (!obj) return [];
  return Object.keys(obj).sort().flatMap((name) => {
    const p = at(path, name);
    if (!HEADER_NAME.pattern.test(name)) { sink.add(p, `expected a header or parameter name, got ${describe(name)}`); return []; }
    const match = readStringMatch(sink, obj[name], p, false, true);
    return match ? [{ name: name.toLowerCase(), match }] : [];
  });
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
    const d = readObject(sink, item, p, ['destination', 'weight', 'headers']);
    if (!d) { complete = false; return { host: UNREAD, weight: 0 }; }
    const dest = readDestination(sink, d.destination, at(p, 'destination'));
    const weight = d.weight === undefined ? (list.length === 1 ? 100 : undefined) : readInt(sink, d.weight, at(p, 'weight'), 0, 100, 'a weight');
    if (d.weight === undefined && list.length > 1) sink.add(at(p, 'weight'), 'expected a weight: a route with several destinations needs one on each');
    if (!dest || weight === undefined) complete = false;
    const headers = d.headers === undefined ? undefined : readHeaderOps(sink, d.headers, at(p, 'headers'));
    return { ...(dest ?? { host: UNREAD }), weight: weight ?? 0, ...(headers ? { headers } : {}) };
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
  const r = readObject(sink, value, path, ['attempts', 'perTryTimeout', 'retryOn', 'retryRemoteLocalities', 'retryIgnorePreviousHosts', 'backoff']);
  if (!r) return undefined;
  const attempts = readInt(sink, r.attempts, at(path, 'attempts'), 0, 100, 'a number of attempts');
  const out: NonNullable<HttpRoute['retries']> = { attempts: attempts ?? 0 };
  if (r.perTryTimeout !== undefined) out.perTryTimeoutMs = readDuration(sink, r.perTryTimeout, at(path, 'perTryTimeout'), 1);
  if (r.retryOn !== undefined) out.retryOn = readRetryOn(sink, r.retryOn, at(path, 'retryOn'));
  if (r.retryRemoteLocalities !== undefined) {
    if (typeof r.retryRemoteLocalities !== 'boolean') sink.add(at(path, 'retryRemoteLocalities'), `expected true or false, got ${describe(r.retryRemoteLocalities)}`);
    else out.retryRemoteLocalities = r.retryRemoteLocalities;
  }
  if (r.retryIgnorePreviousHosts !== undefined) {
    if (typeof r.retryIgnorePreviousHosts !== 'boolean') sink.add(at(path, 'retryIgnorePreviousHosts'), `expected true or false, got ${describe(r.retryIgnorePreviousHosts)}`);
    else out.retryIgnorePreviousHosts = r.retryIgnorePreviousHosts;
  }
  // Envoy's retry_back_off.base_interval must be above 0.
  if (r.backoff !== undefined) out.backoffMs = readDuration(sink, r.backoff, at(path, 'backoff'), 1);
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
  const request = side(h.request, at(path, 'request'));
  const out: HeaderOps = { request, response: side(h.response, at(path, 'response')) };
  // Envoy refuses to add or remove Host ("host headers may not be modified"); Istio turns a set Host into
  // an authority rewrite, and so does meshlet. Adding or removing it has no such meaning: refused.
  if (request.set.host !== undefined) {
    out.authority = request.set.host;
    delete request.set.host;
  }
  const reqPath = at(path, 'request');
  if (request.add.host !== undefined) sink.add(at(at(reqPath, 'add'), 'host'), 'the Host header cannot be added (Envoy refuses it); set it to rewrite the authority');
  if (request.remove.includes('host')) sink.add(at(reqPath, 'remove'), 'the Host header cannot be removed (Envoy refuses it); set it to rewrite the authority');
  return out;
}
