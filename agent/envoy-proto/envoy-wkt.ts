// proto3 JSON forms of Google's well-known types (Duration, Timestamp, wrappers, Struct…) for the Envoy validator.
import { checkScalar, describeJson } from './envoy-scalars.js';

/** Well-known types whose JSON form is special; "wrapper" kinds carry the wrapped scalar type. */
export type WktKind =
  | { kind: 'any' }
  | { kind: 'duration' }
  | { kind: 'timestamp' }
  | { kind: 'fieldmask' }
  | { kind: 'struct' }
  | { kind: 'value' }
  | { kind: 'listvalue' }
  | { kind: 'wrapper'; scalar: string };

const WKT: Record<string, WktKind> = {
  'google.protobuf.Any': { kind: 'any' },
  'google.protobuf.Duration': { kind: 'duration' },
  'google.protobuf.Timestamp': { kind: 'timestamp' },
  'google.protobuf.FieldMask': { kind: 'fieldmask' },
  'google.protobuf.Struct': { kind: 'struct' },
  'google.protobuf.Value': { kind: 'value' },
  'google.protobuf.ListValue': { kind: 'listvalue' },
  'google.protobuf.DoubleValue': { kind: 'wrapper', scalar: 'double' },
  'google.protobuf.FloatValue': { kind: 'wrapper', scalar: 'float' },
  'google.protobuf.Int64Value': { kind: 'wrapper', scalar: 'int64' },
  'google.protobuf.UInt64Value': { kind: 'wrapper', scalar: 'uint64' },
  'google.protobuf.Int32Value': { kind: 'wrapper', scalar: 'int32' },
  'google.protobuf.UInt32Value': { kind: 'wrapper', scalar: 'uint32' },
  'google.protobuf.BoolValue': { kind: 'wrapper', scalar: 'bool' },
  'google.protobuf.StringValue': { kind: 'wrapper', scalar: 'string' },
  'google.protobuf.BytesValue': { kind: 'wrapper', scalar: 'bytes' },
};

/** The special JSON kind of a message type (full name without leading dot), if it has one. */
export function wktKind(fullName: string): WktKind | undefined {
  return WKT[fullName];
}

const MAX_DURATION_SECONDS = 315_576_000_000n;
const DURATION = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:Z|([+-])(\d{2}):(\d{2}))$/;
const FIELD_PATH = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$/;

/** Parses a proto3 JSON Duration ("1.5s", "-0.250s") to nanoseconds, or returns an error message. */
export function parseDuration(v: unknown): bigint | string {
  if (typeof v !== 'string') return `expected Duration as a string like "1.5s", got ${describeJson(v)}`;
  const m = DURATION.exec(v);
  if (!m) return `invalid Duration ${JSON.stringify(v)}: expected seconds with up to 9 fractional digits and an "s" suffix, e.g. "1.5s" or "0.250s"`;
  const seconds = BigInt(m[2]!);
  if (seconds > MAX_DURATION_SECONDS) return `Duration ${JSON.stringify(v)} is out of range (max ±${MAX_DURATION_SECONDS}s)`;
  const nanos = m[3] ? BigInt(m[3].padEnd(9, '0')) : 0n;
  const total = seconds * 1_000_000_000n + nanos;
  return m[1] ? -total : total;
}

/** Parses an RFC 3339 Timestamp to epoch milliseconds, or returns an error message. */
export function parseTimestamp(v: unknown): number | string {
  if (typeof v !== 'string') return `expected Timestamp as an RFC 3339 string, got ${describeJson(v)}`;
  const m = TIMESTAMP.exec(v);
  const bad = `invalid Timestamp ${JSON.stringify(v)}: expected RFC 3339 like "2024-01-02T03:04:05.678Z"`;
  if (!m) return bad;
  const [year, month, day, hour, min, sec] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth || hour > 23 || min > 59 || sec > 59) return bad;
  if (m[7] && (Number(m[8]) > 23 || Number(m[9]) > 59)) return bad;
  const ms = Date.parse(v);
  return Number.isNaN(ms) ? bad : ms;
}

/** Checks a JSON value against a well-known type other than Any; returns an error message or undefined. */
export function checkWkt(k: WktKind, v: unknown): string | undefined {
  switch (k.kind) {
    case 'duration': {
      const d = parseDuration(v);
      return typeof d === 'string' ? d : undefined;
    }
    case 'timestamp': {
      const t = parseTimestamp(v);
      return typeof t === 'string' ? t : undefined;
    }
    case 'fieldmask':
      if (typeof v !== 'string') return `expected FieldMask as a comma-separated string, got ${describeJson(v)}`;
      return v === '' || v.split(',').every((p) => FIELD_PATH.test(p)) ? undefined : `invalid FieldMask ${JSON.stringify(v)}`;
    case 'struct':
      return isPlainObject(v) ? undefined : `expected Struct (a JSON object), got ${describeJson(v)}`;
    case 'value':
      return undefined; // any JSON value
    case 'listvalue':
      return Array.isArray(v) ? undefined : `expected ListValue (a JSON array), got ${describeJson(v)}`;
    case 'wrapper':
      return checkScalar(k.scalar, v);
    case 'any':
      return 'internal: Any is checked by the validator';
  }
}

/** True for a non-null, non-array object. */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
