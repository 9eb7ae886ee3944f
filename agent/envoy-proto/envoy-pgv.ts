// protoc-gen-validate rules ((validate.rules) field options) applied to already type-checked JSON values.
import { isIP } from 'node:net';
import type protobuf from 'protobufjs';
import { isIntegerType, scalarDefault, scalarNumber } from './envoy-scalars.js';
import { parseDuration, parseTimestamp, type WktKind } from './envoy-wkt.js';

/** The merged `(validate.rules)` object of one field, as protobufjs parses it (snake_case keys). */
export type Rules = Record<string, any>;

/** What a single element of a field is, enough to pick and apply its rules. */
export interface ElemShape {
  scalar?: string;
  enumType?: protobuf.Enum;
  wkt?: WktKind;
}

/** Reads and merges a field's `(validate.rules)` options; undefined when it has none. */
export function readRules(field: protobuf.Field): Rules | undefined {
  let merged: Rules | undefined;
  // Typed as a record, but protobufjs stores parsedOptions as an array of single-option objects.
  const parsed = (field.parsedOptions ?? []) as unknown as Record<string, unknown>[];
  for (const opt of parsed) {
    const r = opt['(validate.rules)'];
    if (r && typeof r === 'object') merged = deepMerge(merged ?? {}, r as Rules);
  }
  return merged;
}

function deepMerge(a: Rules, b: Rules): Rules {
  for (const [k, v] of Object.entries(b)) {
    a[k] = v && typeof v === 'object' && !Array.isArray(v) && a[k] && typeof a[k] === 'object' ? deepMerge({ ...a[k] }, v) : v;
  }
  return a;
}

const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : [v]);
const NUMERIC = new Set(['int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'fixed32', 'fixed64', 'sfixed32', 'sfixed64', 'float', 'double']);
type Num = number | bigint;

// const / lt / lte / gt / gte (exclusive range when the lower bound exceeds the upper) / in / not_in.
function orderedRules(r: Rules, x: Num, conv: (v: unknown) => Num, fmt: (v: Num) => string, label: string): string[] {
  const out: string[] = [];
  if (r.const === undefined && r.in === undefined && r.not_in === undefined && r.gt === undefined && r.gte === undefined && r.lt === undefined && r.lte === undefined) return out;
  const got = (): string => `got ${fmt(x)}`;
  if (r.const !== undefined && x != conv(r.const)) out.push(`must equal ${fmt(conv(r.const))}, ${got()} (validate.rules ${label}.const)`);
  const bounds: [string, string, Num][] = [];
  for (const key of ['gt', 'gte', 'lt', 'lte'] as const) if (r[key] !== undefined) bounds.push([key, key === 'gt' ? '>' : key === 'gte' ? '>=' : key === 'lt' ? '<' : '<=', conv(r[key])]);
  if (bounds.length) {
    const lower = bounds.find(([k]) => k[0] === 'g');
    const upper = bounds.find(([k]) => k[0] === 'l');
    const passes = ([k, , b]: [string, string, Num]): boolean => (k === 'gt' ? x > b : k === 'gte' ? x >= b : k === 'lt' ? x < b : x <= b);
    const exclusive = lower && upper && lower[2] > upper[2];
    const ok = exclusive ? passes(lower) || passes(upper) : bounds.every(passes);
    if (!ok) {
      const want = bounds.map(([, op, b]) => `${op} ${fmt(b)}`).join(exclusive ? ' or ' : ' and ');
      out.push(`must be ${want}, ${got()} (validate.rules ${label}.${bounds.map(([k]) => k).join('/')})`);
    }
  }
  if (r.in !== undefined && !list(r.in).some((v) => conv(v) == x)) out.push(`must be one of [${list(r.in).map((v) => fmt(conv(v))).join(', ')}], ${got()} (validate.rules ${label}.in)`);
  if (r.not_in !== undefined && list(r.not_in).some((v) => conv(v) == x)) out.push(`must not be one of [${list(r.not_in).map((v) => fmt(conv(v))).join(', ')}], ${got()} (validate.rules ${label}.not_in)`);
  return out;
}

const HEADER_NAME = /^:?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+$/;
const HEADER_VALUE = /^[^\u0000-\u0008\u000A-\u001F\u007F]*$/;
const HEADER_LOOSE = /^[^\u0000\u000A\u000D]*$/;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const HOST_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const patternCache = new Map<string, RegExp | null>();

function runeLength(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff) n--;
  }
  return n;
}

function isHostname(s: string): boolean {
  const h = s.endsWith('.') ? s.slice(0, -1) : s;
  return h.length > 0 && h.length <= 253 && h.split('.').every((l) => HOST_LABEL.test(l));
}

function stringRules(r: Rules, s: string): string[] {
  if (r.ignore_empty && s === '') return [];
  const out: string[] = [];
  const q = JSON.stringify;
  const tag = (k: string): string => `(validate.rules string.${k})`;
  if (r.const !== undefined && s !== r.const) out.push(`must equal ${q(r.const)} ${tag('const')}`);
  if (r.len !== undefined || r.min_len !== undefined || r.max_len !== undefined) {
    const n = runeLength(s);
    if (r.len !== undefined && n !== Number(r.len)) out.push(`must be exactly ${r.len} characters long, got ${n} ${tag('len')}`);
    if (r.min_len !== undefined && n < Number(r.min_len)) out.push(`must be at least ${r.min_len} character(s) long, got ${n} ${tag('min_len')}`);
    if (r.max_len !== undefined && n > Number(r.max_len)) out.push(`must be at most ${r.max_len} characters long, got ${n} ${tag('max_len')}`);
  }
  if (r.len_bytes !== undefined || r.min_bytes !== undefined || r.max_bytes !== undefined) {
    const n = Buffer.byteLength(s, 'utf8');
    if (r.len_bytes !== undefined && n !== Number(r.len_bytes)) out.push(`must be exactly ${r.len_bytes} bytes, got ${n} ${tag('len_bytes')}`);
    if (r.min_bytes !== undefined && n < Number(r.min_bytes)) out.push(`must be at least ${r.min_bytes} bytes, got ${n} ${tag('min_bytes')}`);
    if (r.max_bytes !== undefined && n > Number(r.max_bytes)) out.push(`must be at most ${r.max_bytes} bytes, got ${n} ${tag('max_bytes')}`);
  }
  if (r.pattern !== undefined) {
    let re = patternCache.get(r.pattern);
    if (re === undefined) {
      try { re = new RegExp(r.pattern, 'u'); } catch { re = null; } // RE2 syntax JS cannot compile: skip
      patternCache.set(r.pattern, re);
    }
    if (re && !re.test(s)) out.push(`must match /${r.pattern}/, got ${q(s)} ${tag('pattern')}`);
  }
  if (r.prefix !== undefined && !s.startsWith(r.prefix)) out.push(`must start with ${q(r.prefix)} ${tag('prefix')}`);
  if (r.suffix !== undefined && !s.endsWith(r.suffix)) out.push(`must end with ${q(r.suffix)} ${tag('suffix')}`);
  if (r.contains !== undefined && !s.includes(r.contains)) out.push(`must contain ${q(r.contains)} ${tag('contains')}`);
  if (r.not_contains !== undefined && s.includes(r.not_contains)) out.push(`must not contain ${q(r.not_contains)} ${tag('not_contains')}`);
  if (r.in !== undefined && !list(r.in).includes(s)) out.push(`must be one of ${q(list(r.in))}, got ${q(s)} ${tag('in')}`);
  if (r.not_in !== undefined && list(r.not_in).includes(s)) out.push(`must not be ${q(s)} ${tag('not_in')}`);
  if (r.well_known_regex !== undefined) {
    const which = r.well_known_regex === 'HTTP_HEADER_NAME' || r.well_known_regex === 1 ? 'name' : 'value';
    const re = r.strict === false ? HEADER_LOOSE : which === 'name' ? HEADER_NAME : HEADER_VALUE;
    if (!re.test(s)) out.push(`must be a valid HTTP header ${which}, got ${q(s)} ${tag('well_known_regex')}`);
  }
  for (const [k, ok] of STRING_FORMATS) if (r[k] === true && !ok(s)) out.push(`must be a valid ${k}, got ${q(s)} ${tag(k)}`);
  return out;
}

// PGV's well-known string formats (string.hostname = true, …).
const STRING_FORMATS: [string, (x: string) => boolean][] = [
  ['hostname', isHostname], ['ip', (x) => isIP(x) !== 0], ['ipv4', (x) => isIP(x) === 4], ['ipv6', (x) => isIP(x) === 6],
  ['address', (x) => isIP(x) !== 0 || isHostname(x)], ['uuid', (x) => UUID.test(x)],
  ['uri', (x) => URL.canParse(x)], ['email', (x) => /^[^@\s]+@[^@\s]+$/.test(x)],
];

const fmtNum = (v: Num): string => String(v);
const fmtDuration = (n: Num): string => {
  const b = BigInt(n);
  const neg = b < 0n ? '-' : '';
  const abs = b < 0n ? -b : b;
  const frac = (abs % 1_000_000_000n).toString().padStart(9, '0').replace(/0+$/, '');
  return `${neg}${abs / 1_000_000_000n}${frac ? `.${frac}` : ''}s`;
};
const durationRuleNanos = (d: unknown): bigint => {
  const o = (d ?? {}) as { seconds?: unknown; nanos?: unknown };
  return BigInt(Number(o.seconds ?? 0)) * 1_000_000_000n + BigInt(Number(o.nanos ?? 0));
};
const timestampRuleMs = (t: unknown): number => {
  const o = (t ?? {}) as { seconds?: unknown; nanos?: unknown };
  return Number(o.seconds ?? 0) * 1000 + Number(o.nanos ?? 0) / 1e6;
};

/** PGV rules on one present, type-valid element value (scalar, enum, wrapper, Duration, Timestamp, Any). */
export function valueRuleIssues(rules: Rules, shape: ElemShape, v: unknown): string[] {
  const scalar = shape.scalar ?? (shape.wkt?.kind === 'wrapper' ? shape.wkt.scalar : undefined);
  if (scalar) {
    const r = rules[scalar] as Rules | undefined;
    if (!r) return [];
    if (scalar === 'string') return stringRules(r, v as string);
    if (scalar === 'bool') return r.const !== undefined && v !== r.const ? [`must be ${r.const} (validate.rules bool.const)`] : [];
    if (scalar === 'bytes') return bytesRules(r, v as string);
    if (!NUMERIC.has(scalar)) return [];
    if (r.ignore_empty && Number(v) === 0) return [];
    const conv = isIntegerType(scalar) ? (x: unknown): Num => BigInt(Math.trunc(Number(x))) : (x: unknown): Num => Number(x);
    return orderedRules(r, scalarNumber(scalar, v), conv, fmtNum, scalar);
  }
  if (shape.enumType && rules.enum) {
    const num = typeof v === 'string' ? shape.enumType.values[v]! : (v as number);
    return orderedRules(rules.enum, num, (x) => Number(x), (x) => `${shape.enumType!.valuesById[Number(x)] ?? x}`, 'enum');
  }
  const kind = shape.wkt?.kind;
  if (kind === 'duration' && rules.duration) {
    return orderedRules(rules.duration, parseDuration(v) as bigint, durationRuleNanos, fmtDuration, 'duration');
  }
  if (kind === 'timestamp' && rules.timestamp) return timestampRules(rules.timestamp, parseTimestamp(v) as number);
  if (kind === 'any' && rules.any) {
    const url = (v as Record<string, unknown>)['@type'];
    const r = rules.any as Rules;
    if (r.in !== undefined && !list(r.in).includes(url)) return [`"@type" must be one of ${JSON.stringify(list(r.in))} (validate.rules any.in)`];
    if (r.not_in !== undefined && list(r.not_in).includes(url)) return [`"@type" must not be ${JSON.stringify(url)} (validate.rules any.not_in)`];
  }
  return [];
}

function bytesRules(r: Rules, b64: string): string[] {
  const n = Buffer.from(b64, 'base64').length;
  const out: string[] = [];
  if (r.len !== undefined && n !== Number(r.len)) out.push(`must be exactly ${r.len} bytes, got ${n} (validate.rules bytes.len)`);
  if (r.min_len !== undefined && n < Number(r.min_len)) out.push(`must be at least ${r.min_len} bytes, got ${n} (validate.rules bytes.min_len)`);
  if (r.max_len !== undefined && n > Number(r.max_len)) out.push(`must be at most ${r.max_len} bytes, got ${n} (validate.rules bytes.max_len)`);
  return out;
}

function timestampRules(r: Rules, ms: number): string[] {
  const out = orderedRules(r, ms, timestampRuleMs, (x) => new Date(Number(x)).toISOString(), 'timestamp');
  const now = Date.now();
  if (r.lt_now && !(ms < now)) out.push('must be in the past (validate.rules timestamp.lt_now)');
  if (r.gt_now && !(ms > now)) out.push('must be in the future (validate.rules timestamp.gt_now)');
  if (r.within && Math.abs(ms - now) > Number(durationRuleNanos(r.within)) / 1e6) out.push('must be within the allowed window of now (validate.rules timestamp.within)');
  return out;
}

/** PGV rules on a repeated field as a whole (min_items, max_items, unique). */
export function repeatedRuleIssues(r: Rules, items: unknown[]): string[] {
  const out: string[] = [];
  if (r.min_items !== undefined && items.length < Number(r.min_items)) out.push(`must have at least ${r.min_items} item(s), got ${items.length} (validate.rules repeated.min_items)`);
  if (r.max_items !== undefined && items.length > Number(r.max_items)) out.push(`must have at most ${r.max_items} items, got ${items.length} (validate.rules repeated.max_items)`);
  if (r.unique && new Set(items.map((i) => JSON.stringify(i))).size !== items.length) out.push('items must be unique (validate.rules repeated.unique)');
  return out;
}

/** PGV rules on a map field as a whole (min_pairs, max_pairs). */
export function mapRuleIssues(r: Rules, size: number): string[] {
  const out: string[] = [];
  if (r.min_pairs !== undefined && size < Number(r.min_pairs)) out.push(`must have at least ${r.min_pairs} entr(ies), got ${size} (validate.rules map.min_pairs)`);
  if (r.max_pairs !== undefined && size > Number(r.max_pairs)) out.push(`must have at most ${r.max_pairs} entries, got ${size} (validate.rules map.max_pairs)`);
  return out;
}

/** What PGV reports for a field that is not set (absent or null); empty when absence is fine. */
export function missingRuleIssues(rules: Rules, shape: ElemShape & { repeated: boolean; map: boolean; presence: boolean }): string[] {
  if (shape.map) return rules.map ? mapRuleIssues(rules.map, 0).map(missing) : [];
  if (shape.repeated) return rules.repeated ? repeatedRuleIssues(rules.repeated, []).map(missing) : [];
  if (shape.presence) {
    // Message-typed field (incl. wrappers, Duration, Any): only `required` flags matter when unset.
    for (const k of ['message', 'duration', 'timestamp', 'any']) {
      if ((rules[k] as Rules | undefined)?.required) return [`is required but not set (validate.rules ${k}.required)`];
    }
    return [];
  }
  // Plain proto3 scalar/enum: PGV checks its default value.
  const dflt = shape.scalar ? scalarDefault(shape.scalar) : 0;
  return valueRuleIssues(rules, shape, dflt).map((m) => `not set (defaults to ${JSON.stringify(dflt)}): ${m}`);
}

const missing = (m: string): string => `not set: ${m}`;
