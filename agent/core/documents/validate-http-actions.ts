// Validates the parts of an Istio http route that are not destinations: redirect, directResponse, rewrite,
// corsPolicy, retry conditions, and the caller matches (sourceLabels).
import type { IssueSink } from '../model/issues.js';
import type { CorsPolicy, HttpRoute, Redirect, StringMatch } from '../model/model.js';
import { SERVICE_NAME } from '../model/model.js';
import { at, describe, readDuration, readInt, readList, readMapping, readObject, readString, readStringList } from './reader.js';
import { HEADER_NAME, readHeaderValue, readRegex, readStringMatch } from './http-fields.js';

/** Istio's redirectCode → Envoy's RedirectResponseCode (the only codes Envoy can send). */
export const REDIRECT_CODES: Readonly<Record<number, string>> = {
  301: 'MOVED_PERMANENTLY', 302: 'FOUND', 303: 'SEE_OTHER', 307: 'TEMPORARY_REDIRECT', 308: 'PERMANENT_REDIRECT',
};
/** Envoy's RouteConfiguration.max_direct_response_body_size_bytes default: a longer body is NACKed. */
export const MAX_DIRECT_BODY_BYTES = 4096;
/** Retry conditions Istio accepts (besides HTTP status codes): Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on. */
export const RETRY_ON = [
  '5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'envoy-ratelimited', 'retriable-4xx', 'refused-stream',
  'retriable-status-codes', 'retriable-headers', 'http3-post-connect-failure',
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
] as const;
/** The labels every meshlet sidecar carries, as Istio's workloads do: `app` (the Service) and `version`. */
export const CALLER_LABELS = ['app', 'version'] as const;

const PATH = { pattern: /^\/[^\0\r\n]*$/, expected: 'a path starting with "/" (no NUL, CR or LF)' };
const SCHEME = { pattern: /^[A-Za-z][A-Za-z0-9+.-]*$/, expected: 'a URI scheme such as "https"' };
const METHOD = { pattern: /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, expected: 'an HTTP method such as "GET"' };

export function readRedirect(sink: IssueSink, value: unknown, path: string): Redirect | undefined {
  const r = readObject(sink, value, path, ['uri', 'authority', 'scheme', 'port', 'derivePort', 'redirectCode']);
  if (!r) return undefined;
  const out: Redirect = { redirectCode: 301 };
  if (r.uri !== undefined) out.uri = readString(sink, r.uri, at(path, 'uri'), PATH);
  if (r.authority !== undefined) {
    const a = readHeaderValue(sink, r.authority, at(path, 'authority'));
    if (a === '') sink.add(at(path, 'authority'), 'expected a host name, got an empty string');
    else out.authority = a;
  }
  if (r.scheme !== undefined) out.scheme = readString(sink, r.scheme, at(path, 'scheme'), SCHEME);
  if (r.port !== undefined && r.derivePort !== undefined) sink.add(path, 'expected port or derivePort, not both');
  if (r.port !== undefined) out.port = readInt(sink, r.port, at(path, 'port'), 1, 65535, 'a port');
  if (r.derivePort !== undefined) out.derivePort = readString(sink, r.derivePort, at(path, 'derivePort'), { oneOf: ['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT'] }) as Redirect['derivePort'];
  if (r.redirectCode !== undefined) {
    const code = r.redirectCode;
    if (typeof code === 'number' && REDIRECT_CODES[code]) out.redirectCode = code;
    else sink.add(at(path, 'redirectCode'), `expected one of ${Object.keys(REDIRECT_CODES).join(' | ')} (the redirect codes Envoy sends), got ${describe(code)}`);
  }
  return out;
}

export function readDirectResponse(sink: IssueSink, value: unknown, path: string): HttpRoute['directResponse'] {
  const d = readObject(sink, value, path, ['status', 'body']);
  if (!d) return undefined;
  // Envoy's DirectResponseAction.status is 200–599.
  const status = readInt(sink, d.status, at(path, 'status'), 200, 599, 'an HTTP status');
  let body: NonNullable<HttpRoute['directResponse']>['body'];
  if (d.body !== undefined) {
    const p = at(path, 'body');
    const b = readObject(sink, d.body, p, ['string', 'bytes']);
    if (b && (b.string === undefined) === (b.bytes === undefined)) sink.add(p, 'expected exactly one of string | bytes');
    else if (b) {
      const tooLong = (n: number, k: string) => n > MAX_DIRECT_BODY_BYTES && sink.add(at(p, k), `expected at most ${MAX_DIRECT_BODY_BYTES} bytes (Envoy's limit for a direct response body), got ${n}`);
      if (b.string !== undefined) {
        const s = readString(sink, b.string, at(p, 'string'));
        if (s !== undefined && !tooLong(Buffer.byteLength(s), 'string')) body = { string: s };
      } else {
        const s = readString(sink, b.bytes, at(p, 'bytes'), { pattern: /^[A-Za-z0-9+/]*={0,2}$/, expected: 'base64-encoded bytes' });
        if (s !== undefined && s.length % 4 !== 0) sink.add(at(p, 'bytes'), `expected base64-encoded bytes (a length that is a multiple of 4), got ${s.length} characters`);
        else if (s !== undefined && !tooLong(Buffer.from(s, 'base64').length, 'bytes')) body = { bytes: s };
      }
    }
  }
  if (status === undefined) return undefined;
  return { status, ...(body ? { body } : {}) };
}

export function readRewrite(sink: IssueSink, value: unknown, path: string): HttpRoute['rewrite'] {
  const rw = readObject(sink, value, path, ['uri', 'authority', 'uriRegexRewrite']);
  if (!rw) return undefined;
  const out: NonNullable<HttpRoute['rewrite']> = {};
  if (rw.uri !== undefined && rw.uriRegexRewrite !== undefined) sink.add(path, 'expected uri or uriRegexRewrite, not both');
  if (rw.uri !== undefined) out.uri = readHeaderValue(sink, rw.uri, at(path, 'uri'));
  if (rw.authority !== undefined) out.authority = readHeaderValue(sink, rw.authority, at(path, 'authority'));
  if (rw.uriRegexRewrite !== undefined) {
    const p = at(path, 'uriRegexRewrite');
    const x = readObject(sink, rw.uriRegexRewrite, p, ['match', 'rewrite']);
    if (x) {
      const match = readRegex(sink, x.match, at(p, 'match'));
      const rewrite = readHeaderValue(sink, x.rewrite, at(p, 'rewrite'));
      if (match !== undefined && rewrite !== undefined) out.uriRegexRewrite = { match, rewrite };
    }
  }
  return out;
}

export function readCorsPolicy(sink: IssueSink, value: unknown, path: string): CorsPolicy | undefined {
  const c = readObject(sink, value, path, ['allowOrigins', 'allowOrigin', 'allowMethods', 'allowHeaders', 'exposeHeaders', 'maxAge', 'allowCredentials', 'unmatchedPreflights']);
  if (!c) return undefined;
  const out: CorsPolicy = { allowOrigins: [], allowMethods: [], allowHeaders: [], exposeHeaders: [] };
  if (c.allowOrigins !== undefined && c.allowOrigin !== undefined) sink.add(path, 'expected allowOrigins or the deprecated allowOrigin, not both');
  if (c.allowOrigins !== undefined) {
    const list = readList(sink, c.allowOrigins, at(path, 'allowOrigins')) ?? [];
    out.allowOrigins = list.map((m, i) => readStringMatch(sink, m, at(at(path, 'allowOrigins'), i))).filter((m): m is StringMatch => !!m);
  }
  // The deprecated list of exact origins ("*" allows every origin, as Envoy's CORS filter reads it).
  if (c.allowOrigin !== undefined) out.allowOrigins = (readStringList(sink, c.allowOrigin, at(path, 'allowOrigin'), { pattern: /^[^\0\r\n]+$/, expected: 'an origin such as "https://example.com"' }) ?? []).map((exact) => ({ exact }));
  if (c.allowMethods !== undefined) out.allowMethods = readStringList(sink, c.allowMethods, at(path, 'allowMethods'), METHOD) ?? [];
  if (c.allowHeaders !== undefined) out.allowHeaders = readStringList(sink, c.allowHeaders, at(path, 'allowHeaders'), HEADER_NAME) ?? [];
  if (c.exposeHeaders !== undefined) out.exposeHeaders = readStringList(sink, c.exposeHeaders, at(path, 'exposeHeaders'), HEADER_NAME) ?? [];
  if (c.maxAge !== undefined) {
    // Access-Control-Max-Age is whole seconds.
    const ms = readDuration(sink, c.maxAge, at(path, 'maxAge'));
    if (ms !== undefined && ms % 1000 !== 0) sink.add(at(path, 'maxAge'), `expected whole seconds (Access-Control-Max-Age), got ${describe(c.maxAge)}`);
    else if (ms !== undefined) out.maxAgeMs = ms;
  }
  if (c.allowCredentials !== undefined) {
    if (typeof c.allowCredentials !== 'boolean') sink.add(at(path, 'allowCredentials'), `expected true or false, got ${describe(c.allowCredentials)}`);
    else out.allowCredentials = c.allowCredentials;
  }
  if (c.unmatchedPreflights !== undefined) {
    const u = readString(sink, c.unmatchedPreflights, at(path, 'unmatchedPreflights'), { oneOf: ['UNSPECIFIED', 'FORWARD', 'IGNORE'] });
    if (u === 'FORWARD' || u === 'IGNORE') out.unmatchedPreflights = u;
  }
  return out;
}

/** `"5xx,connect-failure,503"`: each condition Istio knows, or an HTTP status (Envoy's retriable_status_codes). */
export function readRetryOn(sink: IssueSink, value: unknown, path: string): string | undefined {
  const s = readString(sink, value, path, { expected: 'a comma-separated list of retry conditions such as "5xx,connect-failure"' });
  if (s === undefined) return undefined;
  const tokens = s.split(',').map((t) => t.trim());
  const bad = tokens.filter((t) => !(RETRY_ON as readonly string[]).includes(t) && !(/^[1-5]\d\d$/.test(t)));
  if (bad.length === 0) return tokens.join(',');
  sink.add(path, `expected retry conditions from ${RETRY_ON.join(', ')} or HTTP status codes (100-599), got ${bad.map((b) => describe(b)).join(', ')}`);
  return undefined;
}

/** Istio's sourceLabels; meshlet sidecars carry only `app` and `version`, so another label could never match. */
export function readSourceLabels(sink: IssueSink, value: unknown, path: string): Record<string, string> | undefined {
  const m = readMapping(sink, value, path);
  if (!m) return undefined;
  const out: Record<string, string> = {};
  let ok = true;
  for (const key of Object.keys(m).sort()) {
    if (!(CALLER_LABELS as readonly string[]).includes(key)) {
      sink.add(at(path, key), `a meshlet sidecar carries only the labels ${CALLER_LABELS.join(' and ')} (its Service and version), so a match on ${describe(key)} never matches`);
      ok = false;
      continue;
    }
    const v = readString(sink, m[key], at(path, key), { pattern: /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/, expected: 'a label value (a Service or version name)' });
    if (v === undefined) ok = false;
    else out[key] = v;
  }
  return ok ? out : undefined;
}

/** A namespace name (a DNS label), as Istio's sourceNamespace and delegate namespace are written. */
export function readNamespace(sink: IssueSink, value: unknown, path: string): string | undefined {
  return readString(sink, value, path, { pattern: SERVICE_NAME, expected: 'a namespace name (a DNS label)' });
}
