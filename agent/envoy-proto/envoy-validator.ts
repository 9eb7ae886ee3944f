// Strict validator of Envoy JSON (proto3 JSON form) against Envoy's own protos, including PGV rules.
import type protobuf from 'protobufjs';
import { envoyRoot, findEnvoyType } from './envoy-protos.js';
import { mapRuleIssues, repeatedRuleIssues, valueRuleIssues, type Rules } from './envoy-pgv.js';
import { checkScalar, describeJson } from './envoy-scalars.js';
import { bareName, didYouMean, messageTypeNames, typeInfo, type FieldInfo } from './envoy-type-index.js';
import { checkWkt, isPlainObject, wktKind } from './envoy-wkt.js';
import { re2SyntaxError } from '../core/documents/re2-syntax.js';

/** One problem found in a document; `path` is like `static_resources.clusters[0].name` ('' = the root). */
export type EnvoyIssue = { path: string; message: string };

const TYPE_URL_PREFIX = 'type.googleapis.com/';

/** Validates a JSON document as the given Envoy message type ('envoy.x.v3.T' or a type URL). */
export function validateEnvoy(typeName: string, doc: unknown): EnvoyIssue[] {
  const name = typeName.startsWith(TYPE_URL_PREFIX) ? typeName.slice(TYPE_URL_PREFIX.length) : typeName;
  const type = findEnvoyType(name);
  if (!type) throw new Error(`validateEnvoy: "${typeName}" is not a message type in the loaded Envoy protos`);
  const out: EnvoyIssue[] = [];
  if (doc === null || doc === undefined) out.push({ path: '', message: `expected ${bareName(type)} (a JSON object), got ${doc === null ? 'null' : 'nothing'}` });
  else checkMessage(type, doc, '', out);
  return out;
}

const join = (path: string, key: string): string => (path ? `${path}.${key}` : key);

// A message value: Any, another well-known type, or a plain message object.
function checkMessage(type: protobuf.Type, v: unknown, path: string, out: EnvoyIssue[]): void {
  const wkt = typeInfo(type).wkt;
  if (wkt?.kind === 'any') checkAny(v, path, out);
  else if (wkt) {
    const err = checkWkt(wkt, v);
    if (err) out.push({ path, message: err });
  } else checkObject(type, v, path, out, false);
}

function checkObject(type: protobuf.Type, v: unknown, path: string, out: EnvoyIssue[], inAny: boolean): void {
  const info = typeInfo(type);
  if (!isPlainObject(v)) {
    out.push({ path, message: `expected ${info.fullName} (a JSON object), got ${describeJson(v)}` });
    return;
  }
  let oneofSeen: Map<string, string> | undefined;
  for (const key of Object.keys(v)) {
    if (inAny && key === '@type') continue;
    const f = info.byKey.get(key);
    const childPath = join(path, key);
    if (!f && key === '@type') {
      out.push({ path: childPath, message: `"@type" is only allowed in a google.protobuf.Any, not in ${info.fullName}` });
      continue;
    }
    if (!f) {
      const hint = didYouMean(key, info.fields.map((x) => x.name));
      out.push({ path: childPath, message: `unknown field "${key}" in ${info.fullName}${hint ? ` (did you mean "${hint}"?)` : ''}` });
      continue;
    }
    if (key !== f.name && f.name in v) {
      out.push({ path: childPath, message: `field "${f.name}" is given twice (as "${f.name}" and "${key}")` });
      continue;
    }
    const val = v[key];
    if (val === null && !(f.wkt?.kind === 'value' && !f.repeated && !f.map)) continue; // null = default
    if (f.disallowed) out.push({ path: childPath, message: `field "${f.name}" is deprecated and disallowed by default in Envoy` });
    if (f.oneof) {
      oneofSeen ??= new Map();
      const other = oneofSeen.get(f.oneof);
      if (other) out.push({ path: childPath, message: `"${other}" and "${f.name}" are both set, but oneof "${f.oneof}" allows at most one` });
      else oneofSeen.set(f.oneof, f.name);
    }
    checkField(f, val, childPath, out);
  }
  const semantic = SEMANTIC_CHECKS[info.fullName]?.(v);
  if (semantic) out.push({ path: semantic.path ? join(path, semantic.path) : path, message: semantic.message });
  for (const f of info.missingChecks) {
    if (!isSet(v, f)) for (const message of f.missing) out.push({ path: join(path, f.name), message });
  }
  for (const o of info.requiredOneofs) {
    if (!o.members.some((m) => isSet(v, m))) {
      out.push({ path, message: `oneof "${o.name}" is required: set one of ${o.members.map((m) => `"${m.name}"`).join(', ')} (validate.required)` });
    }
  }
}

// What Envoy refuses beyond its protos and PGV rules, per message type: a check Envoy runs when it loads the config.
const SEMANTIC_CHECKS: Record<string, (v: Record<string, unknown>) => EnvoyIssue | undefined> = {
  // Envoy compiles safe_regex with RE2: JS-only syntax (lookaround, backreferences) is NACKed.
  'envoy.type.matcher.v3.RegexMatcher': (v) => {
    const why = typeof v.regex === 'string' ? re2SyntaxError(v.regex) : undefined;
    return why ? { path: 'regex', message: `Envoy (RE2) cannot compile ${JSON.stringify(v.regex)}: ${why}` } : undefined;
  },
};

function isSet(obj: Record<string, unknown>, f: FieldInfo): boolean {
  const v = obj[f.name] ?? obj[f.jsonName];
  return v !== undefined && v !== null;
}

function checkField(f: FieldInfo, v: unknown, path: string, out: EnvoyIssue[]): void {
  if (f.unresolved) {
    out.push({ path, message: `cannot check field "${f.name}": type ${f.unresolved} is not loaded` });
    return;
  }
  if (f.map) checkMap(f, v, path, out);
  else if (f.repeated) {
    if (!Array.isArray(v)) {
      out.push({ path, message: `expected an array (repeated field "${f.name}"), got ${describeJson(v)}` });
      return;
    }
    const items = f.rules?.repeated?.items as Rules | undefined;
    for (let i = 0; i < v.length; i++) {
      const itemPath = `${path}[${i}]`;
      if (v[i] === null) out.push({ path: itemPath, message: 'null is not allowed in a repeated field' });
      else checkElement(f, v[i], itemPath, out, items);
    }
    if (f.rules?.repeated) for (const message of repeatedRuleIssues(f.rules.repeated, v)) out.push({ path, message });
  } else checkElement(f, v, path, out, f.rules);
}

function checkMap(f: FieldInfo, v: unknown, path: string, out: EnvoyIssue[]): void {
  if (!isPlainObject(v)) {
    out.push({ path, message: `expected an object (map field "${f.name}"), got ${describeJson(v)}` });
    return;
  }
  const r = f.rules?.map as Rules | undefined;
  const keys = Object.keys(v);
  for (const k of keys) {
    const itemPath = `${path}[${JSON.stringify(k)}]`;
    const keyErr = mapKeyError(f.keyType!, k);
    if (keyErr) out.push({ path: itemPath, message: keyErr });
    else if (r?.keys) for (const message of valueRuleIssues(r.keys, { scalar: f.keyType }, k)) out.push({ path: itemPath, message: `map key ${message}` });
    if (v[k] === null) out.push({ path: itemPath, message: 'null is not allowed as a map value' });
    else checkElement(f, v[k], itemPath, out, r?.values);
  }
  if (r) for (const message of mapRuleIssues(r, keys.length)) out.push({ path, message });
}

// JSON map keys are strings: bool keys must be "true"/"false", integer keys decimal strings.
function mapKeyError(keyType: string, k: string): string | undefined {
  if (keyType === 'string') return undefined;
  if (keyType === 'bool') return k === 'true' || k === 'false' ? undefined : `map key must be "true" or "false", got ${JSON.stringify(k)}`;
  const err = checkScalar(keyType, k);
  return err ? `bad map key: ${err}` : undefined;
}

// One non-null element: a scalar, enum or message (including well-known types), then its PGV rules.
function checkElement(f: FieldInfo, v: unknown, path: string, out: EnvoyIssue[], rules: Rules | undefined): void {
  let err: string | undefined;
  if (f.scalar) err = checkScalar(f.scalar, v);
  else if (f.enumType) err = checkEnum(f.enumType, v);
  else if (f.wkt?.kind === 'any') {
    if (!checkAny(v, path, out)) return;
  } else if (f.wkt) err = checkWkt(f.wkt, v);
  else {
    checkObject(f.msgType!, v, path, out, false);
    return;
  }
  if (err) out.push({ path, message: err });
  else if (rules) for (const message of valueRuleIssues(rules, f, v)) out.push({ path, message });
}

function checkEnum(e: protobuf.Enum, v: unknown): string | undefined {
  if (typeof v === 'string') {
    if (Object.prototype.hasOwnProperty.call(e.values, v)) return undefined;
    const name = bareName(e);
    const hint = didYouMean(v, Object.keys(e.values));
    return `unknown value ${JSON.stringify(v)} for enum ${name}${hint ? ` (did you mean "${hint}"?)` : ''}`;
  }
  if (typeof v === 'number') {
    return Number.isInteger(v) && e.valuesById[v] !== undefined ? undefined : `${v} is not a defined value of enum ${bareName(e)}`;
  }
  return `expected enum ${bareName(e)} (a value name or number), got ${describeJson(v)}`;
}

// Any: {"@type": "type.googleapis.com/<name>", ...fields of <name>} or {"@type", "value"} for well-known types.
// Returns true when the Any itself is well-formed (so its own PGV rules may run).
function checkAny(v: unknown, path: string, out: EnvoyIssue[]): boolean {
  if (!isPlainObject(v)) {
    out.push({ path, message: `expected google.protobuf.Any (an object with "@type"), got ${describeJson(v)}` });
    return false;
  }
  const url = v['@type'];
  const typePath = join(path, '@type');
  if (url === undefined) {
    out.push({ path, message: 'google.protobuf.Any is missing "@type"' });
    return false;
  }
  if (typeof url !== 'string' || !url.startsWith(TYPE_URL_PREFIX)) {
    out.push({ path: typePath, message: `"@type" must look like "type.googleapis.com/<full.message.Name>", got ${describeJson(url)}` });
    return false;
  }
  const name = url.slice(TYPE_URL_PREFIX.length);
  const type = findEnvoyType(name);
  if (!type) {
    const hint = didYouMean(name, messageTypeNames(envoyRoot()));
    out.push({ path: typePath, message: `unknown type "${url}" (not a message in the loaded Envoy protos${hint ? `; did you mean "${TYPE_URL_PREFIX}${hint}"?` : ''})` });
    return false;
  }
  const wkt = wktKind(name);
  if (!wkt) {
    checkObject(type, v, path, out, true);
    return true;
  }
  for (const key of Object.keys(v)) {
    if (key !== '@type' && key !== 'value') out.push({ path: join(path, key), message: `unknown field "${key}": an Any holding ${name} has only "@type" and "value"` });
  }
  if (!('value' in v)) out.push({ path, message: `an Any holding ${name} needs a "value"` });
  else checkMessage(type, v.value, join(path, 'value'), out);
  return true;
}
