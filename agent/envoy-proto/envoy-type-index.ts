// Per-message lookup tables (proto/json field names, shapes, PGV rules) built lazily and cached for the validator.
import type protobuf from 'protobufjs';
import { protobufjs } from './envoy-protos.js';
import { missingRuleIssues, readRules, type Rules } from './envoy-pgv.js';
import { SCALAR_TYPES } from './envoy-scalars.js';
import { wktKind, type WktKind } from './envoy-wkt.js';

/** Everything the validator needs to know about one field. */
export interface FieldInfo {
  name: string;
  jsonName: string;
  repeated: boolean;
  map: boolean;
  keyType?: string;
  scalar?: string;
  enumType?: protobuf.Enum;
  msgType?: protobuf.Type;
  wkt?: WktKind;
  /** Set when the field's type could not be resolved (e.g. a missing import). */
  unresolved?: string;
  /** Name of the real (non-synthetic) oneof this field belongs to. */
  oneof?: string;
  rules?: Rules;
  /** Issues to report when the field is not set (precomputed from PGV rules). */
  missing: string[];
  /** Envoy rejects this deprecated field unless a runtime override is set. */
  disallowed: boolean;
}

/** Lookup tables for one message type. */
export interface TypeInfo {
  fullName: string;
  /** Set when this is a well-known type with a special JSON form. */
  wkt?: WktKind;
  /** Field by proto name and by lowerCamelCase JSON name. */
  byKey: Map<string, FieldInfo>;
  fields: FieldInfo[];
  /** Fields whose absence must be reported. */
  missingChecks: FieldInfo[];
  /** Oneofs marked `(validate.required)`: one member must be set. */
  requiredOneofs: { name: string; members: FieldInfo[] }[];
}

const cache = new Map<protobuf.Type, TypeInfo>();

/** Full name without protobufjs's leading dot. */
export function bareName(t: protobuf.ReflectionObject): string {
  return t.fullName.startsWith('.') ? t.fullName.slice(1) : t.fullName;
}

// protoc's default json_name: drop underscores, upper-casing the letter after each.
export function jsonNameOf(protoName: string): string {
  if (!protoName.includes('_')) return protoName;
  let out = '';
  let upper = false;
  for (const ch of protoName) {
    if (ch === '_') upper = true;
    else {
      out += upper ? ch.toUpperCase() : ch;
      upper = false;
    }
  }
  return out;
}

function buildField(f: protobuf.Field): FieldInfo {
  const opts = (f.options ?? {}) as Record<string, unknown>;
  const mapField = f as protobuf.Field & { map?: boolean; keyType?: string };
  const info: FieldInfo = {
    name: f.name,
    jsonName: typeof opts.json_name === 'string' ? opts.json_name : jsonNameOf(f.name),
    repeated: f.repeated,
    map: Boolean(mapField.map),
    keyType: mapField.map ? mapField.keyType : undefined,
    missing: [],
    disallowed: opts['(envoy.annotations.disallowed_by_default)'] === true,
  };
  if (SCALAR_TYPES.has(f.type)) info.scalar = f.type;
  else {
    try {
      f.resolve();
    } catch {
      /* reported below as unresolved */
    }
    const rt = f.resolvedType;
    const pb = protobufjs();
    if (rt instanceof pb.Enum) info.enumType = rt;
    else if (rt instanceof pb.Type) {
      info.msgType = rt;
      info.wkt = wktKind(bareName(rt));
    } else info.unresolved = f.type;
  }
  const oneof = f.partOf;
  if (oneof && !opts.proto3_optional) info.oneof = oneof.name;
  info.rules = readRules(f);
  // PGV checks a oneof member (or proto3 `optional` field) only when it is set.
  if (info.rules && !oneof) info.missing = missingRuleIssues(info.rules, { ...info, presence: Boolean(info.msgType) });
  return info;
}

/** The cached lookup tables for a message type. */
export function typeInfo(t: protobuf.Type): TypeInfo {
  let info = cache.get(t);
  if (info) return info;
  const fields = t.fieldsArray.map(buildField);
  const byKey = new Map<string, FieldInfo>();
  for (const f of fields) {
    byKey.set(f.name, f);
    byKey.set(f.jsonName, f);
  }
  const requiredOneofs = t.oneofsArray
    .filter((o) => (o.options as Record<string, unknown> | undefined)?.['(validate.required)'] === true)
    .map((o) => ({ name: o.name, members: o.fieldsArray.map((m) => byKey.get(m.name)!) }));
  const fullName = bareName(t);
  info = { fullName, wkt: wktKind(fullName), byKey, fields, missingChecks: fields.filter((f) => f.missing.length > 0), requiredOneofs };
  cache.set(t, info);
  return info;
}

/** The closest candidate within a typo-sized edit distance, if any (the same rule as document field names). */
export { didYouMean } from '../core/documents/did-you-mean.js';

let allTypeNames: string[] | undefined;

/** Full names of every message type in a Root (computed once, for "@type" suggestions). */
export function messageTypeNames(root: protobuf.Root): string[] {
  if (allTypeNames) return allTypeNames;
  const names: string[] = [];
  const pb = protobufjs();
  const walk = (ns: protobuf.NamespaceBase): void => {
    for (const o of ns.nestedArray) {
      if (o instanceof pb.Type) names.push(bareName(o));
      if (o instanceof pb.Namespace) walk(o);
    }
  };
  walk(root);
  allTypeNames = names;
  return names;
}
