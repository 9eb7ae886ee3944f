// Field readers the http route parts share: header names and values, string matches, "not supported".
import type { IssueSink } from '../model/issues.js';
import type { StringMatch } from '../model/model.js';
import { at, describe, readObject, readString } from './reader.js';
import { re2SyntaxError } from './re2-syntax.js';

export const NOT_SUPPORTED = (what: string, why = '') => `${what} is not supported${why ? ` (${why})` : ''}`;
// RFC 7230 token. Envoy's own rule (no NUL, CR, LF) is looser, but a name outside it cannot be sent on HTTP/1.
export const HEADER_NAME = { pattern: /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, expected: 'a header name (letters, digits and !#$%&\'*+.^_`|~-)' };
// Envoy refuses a header value (and prefix_rewrite, host_rewrite_literal) holding NUL, CR or LF.
export const HEADER_VALUE = { pattern: /^[^\0\r\n]*$/, expected: 'a header value (no NUL, CR or LF)' };
const MAX_HEADER_BYTES = 16384; // Envoy's HeaderValue.value max_bytes

export function readHeaderValue(sink: IssueSink, value: unknown, path: string): string | undefined {
  const s = readString(sink, value, path, HEADER_VALUE);
  if (s === undefined || Buffer.byteLength(s) <= MAX_HEADER_BYTES) return s;
  sink.add(path, `expected at most ${MAX_HEADER_BYTES} bytes, got ${Buffer.byteLength(s)}`);
  return undefined;
}

/** A regex Envoy's RE2 compiles; the message names the path and RE2's reason. */
export function readRegex(sink: IssueSink, value: unknown, path: string): string | undefined {
  const text = readString(sink, value, path);
  if (text === undefined) return undefined;
  if (text === '') {
    sink.add(path, 'expected a non-empty regex');
    return undefined;
  }
  const re2 = re2SyntaxError(text);
  if (!re2) return text;
  sink.add(path, `expected a regular expression (RE2 syntax), got ${describe(text)}: ${re2}`);
  return undefined;
}

/**
 * `uri`: a route's path match, where Envoy takes an empty prefix (its StringMatcher elsewhere does not).
 * `presence`: a header or query parameter, where Istio reads `{}` and `regex: "*"` as "is present".
 */
export function readStringMatch(sink: IssueSink, value: unknown, path: string, uri = false, presence = false): StringMatch | undefined {
  const m = readObject(sink, value, path, ['exact', 'prefix', 'regex']);
  if (!m) return undefined;
  const set = (['exact', 'prefix', 'regex'] as const).filter((k) => m[k] !== undefined);
  if (presence && (set.length === 0 || (set.length === 1 && m.regex === '*'))) return { present: true };
  if (set.length !== 1) {
    sink.add(path, `expected exactly one of exact | prefix | regex, got ${set.length === 0 ? 'none' : set.join(' and ')}`);
    return undefined;
  }
  const kind = set[0]!;
  if (kind === 'regex') {
    const regex = readRegex(sink, m.regex, at(path, 'regex'));
    return regex === undefined ? undefined : { regex };
  }
  const text = readString(sink, m[kind], at(path, kind));
  if (text === undefined) return undefined;
  if (text === '' && kind === 'prefix' && !uri) {
    sink.add(at(path, kind), 'expected a non-empty prefix (to match any value, leave the match out)');
    return undefined;
  }
  return { [kind]: text };
}
