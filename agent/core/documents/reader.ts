// Typed reads of parsed YAML that report what was expected, at which path, instead of throwing.
import type { IssueSink } from '../model/issues.js';
import { quote } from '../model/issues.js';
import { suggestion } from './did-you-mean.js';
import { parseDuration } from './duration.js';

export type Obj = Record<string, unknown>;

/** `spec.versions` + `v1` → `spec.versions.v1`; keys that are not identifiers are quoted. */
export function at(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  const plain = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key);
  if (!plain) return `${path}[${quote(key)}]`;
  return path ? `${path}.${key}` : key;
}

/** A short description of a value for "got …" in messages. */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'string') return `the string ${quote(value.length > 60 ? `${value.slice(0, 57)}...` : value)}`;
  return String(value);
}

/**
 * A mapping whose keys must all be known. `unsupported` names fields that are valid for
 * Istio but that meshlet cannot honour: they are refused with their own message, never ignored.
 */
export function readObject(
  sink: IssueSink,
  value: unknown,
  path: string,
  known: readonly string[],
  unsupported: Readonly<Record<string, string>> = {},
): Obj | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    sink.add(path, `expected a mapping, got ${describe(value)}`);
    return undefined;
  }
  const obj = value as Obj;
  for (const key of Object.keys(obj)) {
    if (known.includes(key)) continue;
    if (Object.hasOwn(unsupported, key)) sink.add(at(path, key), unsupported[key]!); // not `in`: "constructor" is in every object
    else sink.add(at(path, key), `unknown field${suggestion(key, known)}; expected one of: ${known.join(', ')}`);
  }
  return obj;
}

/** A mapping with free keys (env, labels); the caller checks each key. */
export function readMapping(sink: IssueSink, value: unknown, path: string): Obj | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    sink.add(path, `expected a mapping, got ${describe(value)}`);
    return undefined;
  }
  return value as Obj;
}

export interface StringRule {
  pattern?: RegExp;
  /** Human words for the pattern, e.g. "a DNS label". */
  expected?: string;
  maxLength?: number;
  oneOf?: readonly string[];
}

export function readString(sink: IssueSink, value: unknown, path: string, rule: StringRule = {}): string | undefined {
  if (typeof value !== 'string') {
    sink.add(path, `expected ${rule.expected ?? 'a string'}, got ${describe(value)}`);
    return undefined;
  }
  if (rule.oneOf && !rule.oneOf.includes(value)) {
    sink.add(path, `expected one of ${rule.oneOf.join(' | ')}, got ${describe(value)}${suggestion(value, rule.oneOf)}`);
    return undefined;
  }
  if (rule.maxLength !== undefined && value.length > rule.maxLength) {
    sink.add(path, `expected at most ${rule.maxLength} characters, got ${value.length}`);
    return undefined;
  }
  if (rule.pattern && !rule.pattern.test(value)) {
    sink.add(path, `expected ${rule.expected ?? `a string matching ${rule.pattern}`}, got ${describe(value)}`);
    return undefined;
  }
  return value;
}

export function readInt(sink: IssueSink, value: unknown, path: string, min: number, max: number, what = 'an integer'): number | undefined {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    sink.add(path, `expected ${what} from ${min} to ${max}, got ${describe(value)}`);
    return undefined;
  }
  return value;
}

export function readNumber(sink: IssueSink, value: unknown, path: string, min: number, max: number): number | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    sink.add(path, `expected a number from ${min} to ${max}, got ${describe(value)}`);
    return undefined;
  }
  return value;
}

/** A duration such as "2s", "500ms", "1m30s"; returns milliseconds. */
export function readDuration(sink: IssueSink, value: unknown, path: string, minMs = 0, maxMs = 315_576_000_000_000): number | undefined {
  const ms = typeof value === 'string' ? parseDuration(value) : undefined;
  if (ms === undefined) {
    sink.add(path, `expected a duration such as "2s" or "500ms", got ${describe(value)}`);
    return undefined;
  }
  if (ms < minMs || ms > maxMs) {
    sink.add(path, `expected a duration from ${minMs}ms to ${maxMs}ms, got ${describe(value)}`);
    return undefined;
  }
  return ms;
}

export function readList(sink: IssueSink, value: unknown, path: string, minItems = 0): unknown[] | undefined {
  if (!Array.isArray(value)) {
    sink.add(path, `expected a list, got ${describe(value)}`);
    return undefined;
  }
  if (value.length < minItems) {
    sink.add(path, `expected at least ${minItems} item${minItems === 1 ? '' : 's'}, got ${value.length}`);
    return undefined;
  }
  return value;
}

export function readStringList(sink: IssueSink, value: unknown, path: string, rule: StringRule = {}, minItems = 0): string[] | undefined {
  const list = readList(sink, value, path, minItems);
  if (!list) return undefined;
  const out: string[] = [];
  let ok = true;
  list.forEach((item, i) => {
    const s = readString(sink, item, at(path, i), rule);
    if (s === undefined) ok = false;
    else out.push(s);
  });
  return ok ? out : undefined;
}
