// Encodes a proto3 JSON Envoy resource into the bytes of a google.protobuf.Any, using Envoy's own protos.
import type protobuf from 'protobufjs';
import { findEnvoyType } from './envoy-protos.js';
import { typeInfo, type FieldInfo } from './envoy-type-index.js';
import { parseDuration, parseTimestamp, type WktKind } from './envoy-wkt.js';

const TYPE_URL_PREFIX = 'type.googleapis.com/';

/**
 * The serialized message for `typeUrl`. The JSON must already have passed validateEnvoy:
 * protobufjs's fromObject drops unknown fields silently and cannot read proto3 JSON's
 * well-known-type forms ("1s", wrapped scalars, "@type" Anys), so this walk converts those
 * first and leaves the rest (enum names, int64 strings, base64 bytes) to fromObject.
 */
export function encodeResource(typeUrl: string, json: unknown): Uint8Array {
  const type = messageType(typeUrl);
  return type.encode(type.fromObject(toMessageObject(type, json) as Record<string, unknown>)).finish();
}

function messageType(typeUrl: string): protobuf.Type {
  const name = typeUrl.startsWith(TYPE_URL_PREFIX) ? typeUrl.slice(TYPE_URL_PREFIX.length) : typeUrl;
  const type = findEnvoyType(name);
  if (!type) throw new Error(`encodeResource: unknown message type ${typeUrl}`);
  return type;
}

function toMessageObject(type: protobuf.Type, v: unknown): unknown {
  const info = typeInfo(type);
  if (info.wkt) return fromWkt(info.wkt, type, v);
  const obj = v as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(obj)) {
    const f = info.byKey.get(key);
    const val = obj[key];
    if (!f || val === null || val === undefined) continue;
    out[f.name] = toField(f, val);
  }
  return out;
}

function toField(f: FieldInfo, v: unknown): unknown {
  if (f.map) {
    const out: Record<string, unknown> = {};
    for (const [k, item] of Object.entries(v as Record<string, unknown>)) out[k] = toElement(f, item);
    return out;
  }
  if (f.repeated) return (v as unknown[]).map((item) => toElement(f, item));
  return toElement(f, v);
}

function toElement(f: FieldInfo, v: unknown): unknown {
  return f.msgType ? toMessageObject(f.msgType, v) : v;
}

// Well-known types: from their proto3 JSON form to the plain message shape protobufjs expects.
function fromWkt(k: WktKind, type: protobuf.Type, v: unknown): unknown {
  switch (k.kind) {
    case 'any': {
      const any = v as Record<string, unknown>;
      const url = any['@type'] as string;
      const inner = messageType(url);
      const body = typeInfo(inner).wkt ? any.value : Object.fromEntries(Object.entries(any).filter(([key]) => key !== '@type'));
      return { type_url: url, value: inner.encode(inner.fromObject(toMessageObject(inner, body) as Record<string, unknown>)).finish() };
    }
    case 'duration': {
      const nanos = parseDuration(v) as bigint;
      return { seconds: String(nanos / 1_000_000_000n), nanos: Number(nanos % 1_000_000_000n) };
    }
    case 'timestamp': {
      const text = v as string;
      const ms = parseTimestamp(text) as number;
      const frac = /\.(\d{1,9})/.exec(text)?.[1] ?? '';
      const seconds = Math.floor(ms / 1000);
      return { seconds: String(seconds), nanos: Number(frac.padEnd(9, '0')) };
    }
    case 'fieldmask':
      return { paths: (v as string) === '' ? [] : (v as string).split(',') };
    case 'wrapper':
      return { value: v };
    case 'struct':
      return { fields: Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([key, item]) => [key, structValue(item)])) };
    case 'listvalue':
      return { values: (v as unknown[]).map(structValue) };
    case 'value':
      return structValue(v);
  }
  throw new Error(`encodeResource: unhandled well-known type ${type.fullName}`);
}

function structValue(v: unknown): Record<string, unknown> {
  if (v === null) return { null_value: 'NULL_VALUE' };
  if (typeof v === 'number') return { number_value: v };
  if (typeof v === 'string') return { string_value: v };
  if (typeof v === 'boolean') return { bool_value: v };
  if (Array.isArray(v)) return { list_value: { values: v.map(structValue) } };
  return { struct_value: { fields: Object.fromEntries(Object.entries(v as Record<string, unknown>).map(([key, item]) => [key, structValue(item)])) } };
}
