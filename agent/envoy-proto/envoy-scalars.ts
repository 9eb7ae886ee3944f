// proto3 JSON rules for scalar field values (ints, floats, bool, string, bytes), used by the Envoy validator.

/** Short human description of a JSON value, for error messages. */
export function describeJson(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  switch (typeof v) {
    case 'string': return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
    case 'number': return `number ${v}`;
    case 'boolean': return `boolean ${v}`;
    case 'object': return 'an object';
    default: return typeof v;
  }
}

const INT_RANGES: Record<string, readonly [bigint, bigint]> = {
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
};
// Same bounds as plain numbers, for the fast path on safe integers.
const INT_RANGES_NUM: Record<string, readonly [number, number]> = Object.fromEntries(
  Object.entries(INT_RANGES).map(([k, [lo, hi]]) => [k, [Number(lo), Number(hi)]]),
);

const FLOAT_MAX = 3.4028234663852886e38;
const DECIMAL_INT = /^-?\d+$/;
const DECIMAL_FLOAT = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const BASE64 = /^[A-Za-z0-9+/\-_]*={0,2}$/;

export const SCALAR_TYPES = new Set([
  ...Object.keys(INT_RANGES), 'double', 'float', 'bool', 'string', 'bytes',
]);

export function isIntegerType(t: string): boolean {
  return t in INT_RANGES;
}

// Integer per proto3 JSON: a JSON number with no fraction, or a decimal string.
function checkInteger(type: string, v: unknown): string | undefined {
  const [lo, hi] = INT_RANGES_NUM[type]!;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) return `expected ${type} (an integer), got ${describeJson(v)}`;
    if (Number.isSafeInteger(v)) {
      if (v < lo || v > hi) return `${v} is out of range for ${type} [${INT_RANGES[type]![0]}, ${INT_RANGES[type]![1]}]`;
      return undefined;
    }
    return bigOutOfRange(type, BigInt(v));
  }
  if (typeof v === 'string') {
    if (!DECIMAL_INT.test(v)) return `expected ${type} (a number or decimal string), got ${describeJson(v)}`;
    return bigOutOfRange(type, BigInt(v));
  }
  return `expected ${type} (a number or decimal string), got ${describeJson(v)}`;
}

function bigOutOfRange(type: string, b: bigint): string | undefined {
  const [lo, hi] = INT_RANGES[type]!;
  return b < lo || b > hi ? `${b} is out of range for ${type} [${lo}, ${hi}]` : undefined;
}

// double/float: a JSON number, "NaN", "Infinity", "-Infinity", or a numeric string.
function checkFloat(type: string, v: unknown): string | undefined {
  let n: number;
  if (typeof v === 'number') n = v;
  else if (typeof v === 'string') {
    if (v === 'NaN' || v === 'Infinity' || v === '-Infinity') return undefined;
    if (!DECIMAL_FLOAT.test(v)) return `expected ${type} (a number, "NaN", "Infinity" or "-Infinity"), got ${describeJson(v)}`;
    n = Number(v);
  } else return `expected ${type} (a number), got ${describeJson(v)}`;
  if (type === 'float' && Number.isFinite(n) && Math.abs(n) > FLOAT_MAX) return `${n} is out of range for float`;
  if (type === 'double' && !Number.isFinite(n)) return `${describeJson(v)} is out of range for double`;
  return undefined;
}

// base64 (standard or URL-safe, padding optional); a length of 4k+1 can never be valid.
function checkBytes(v: unknown): string | undefined {
  if (typeof v !== 'string') return `expected bytes (a base64 string), got ${describeJson(v)}`;
  if (!BASE64.test(v) || v.replace(/=+$/, '').length % 4 === 1) return `invalid base64 for bytes: ${describeJson(v)}`;
  return undefined;
}

/** Checks one JSON value against a proto scalar type; returns an error message or undefined. */
export function checkScalar(type: string, v: unknown): string | undefined {
  if (type in INT_RANGES) return checkInteger(type, v);
  switch (type) {
    case 'double':
    case 'float':
      return checkFloat(type, v);
    case 'bool':
      return typeof v === 'boolean' ? undefined : `expected bool (true or false), got ${describeJson(v)}`;
    case 'string':
      return typeof v === 'string' ? undefined : `expected string, got ${describeJson(v)}`;
    case 'bytes':
      return checkBytes(v);
    default:
      return `unsupported scalar type ${type}`;
  }
}

/** The numeric value of an already-checked int/float JSON value (bigint for integers). */
export function scalarNumber(type: string, v: unknown): number | bigint {
  if (type in INT_RANGES) return typeof v === 'string' ? BigInt(v) : BigInt(v as number);
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  return Number(v);
}

/** The proto default for a scalar type, as a JSON value (used to apply PGV rules to unset fields). */
export function scalarDefault(type: string): unknown {
  if (type === 'bool') return false;
  if (type === 'string' || type === 'bytes') return '';
  return 0;
}
