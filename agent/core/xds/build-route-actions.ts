// Route parts that answer or shape a request without choosing a cluster: redirect, direct response, the
// CORS filter's per-route policy, and Envoy's StringMatcher for Istio's StringMatch.
import type { CorsPolicy, HttpRoute, Redirect, StringMatch } from '../model/model.js';
import { REDIRECT_CODES } from '../documents/validate-http-actions.js';
import type { Json } from './envoy-types.js';
import { TYPE } from './envoy-types.js';

export function redirectAction(r: Redirect, listenerPort: number | undefined): Json {
  const out: Json = {};
  if (r.scheme !== undefined) out.scheme_redirect = r.scheme;
  if (r.authority !== undefined) out.host_redirect = r.authority;
  // FROM_REQUEST_PORT: Envoy cannot read the port per request, but the routes are built per listener (as Istio does).
  const port = r.port ?? (r.derivePort === 'FROM_REQUEST_PORT' ? listenerPort : undefined);
  if (port !== undefined) out.port_redirect = port;
  if (r.uri !== undefined) out.path_redirect = r.uri;
  if (r.redirectCode !== 301) out.response_code = REDIRECT_CODES[r.redirectCode];
  return out;
}

export function directResponse(d: NonNullable<HttpRoute['directResponse']>): Json {
  if (!d.body) return { status: d.status };
  return { status: d.status, body: 'string' in d.body ? { inline_string: d.body.string } : { inline_bytes: d.body.bytes } };
}

export function corsConfig(c: CorsPolicy): Json {
  const out: Json = { '@type': TYPE.corsPolicy };
  if (c.allowOrigins.length > 0) out.allow_origin_string_match = c.allowOrigins.map(stringMatcher);
  if (c.allowMethods.length > 0) out.allow_methods = c.allowMethods.join(',');
  if (c.allowHeaders.length > 0) out.allow_headers = c.allowHeaders.join(',');
  if (c.exposeHeaders.length > 0) out.expose_headers = c.exposeHeaders.join(',');
  if (c.maxAgeMs !== undefined) out.max_age = String(c.maxAgeMs / 1000);
  if (c.allowCredentials !== undefined) out.allow_credentials = c.allowCredentials;
  // Envoy forwards a preflight from an origin no policy allows unless told otherwise (Istio's FORWARD).
  if (c.unmatchedPreflights === 'IGNORE') out.forward_not_matching_preflights = false;
  return out;
}

export function stringMatcher(m: StringMatch): Json {
  if (m.exact !== undefined) return { exact: m.exact };
  if (m.prefix !== undefined) return { prefix: m.prefix };
  return { safe_regex: { regex: m.regex } };
}
