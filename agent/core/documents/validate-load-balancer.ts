// Validates a traffic policy's `loadBalancer`: simple, consistentHash, localityLbSetting, warmup.
import type { IssueSink } from '../model/issues.js';
import type { ConsistentHash, HashKey, LbPolicy, LoadBalancer, LocalityLbSetting } from '../model/model.js';
import type { Obj } from './reader.js';
import { at, describe, readDuration, readInt, readList, readMapping, readNumber, readObject, readString } from './reader.js';
import { readBool } from './read-bool.js';

const NOT_SUPPORTED = (what: string, why = '') => `${what} is not supported${why ? ` (${why})` : ''}`;

/** Istio's simple policies; UNSPECIFIED is meshlet's default (round robin), LEAST_CONN Istio's old name of LEAST_REQUEST. */
const SIMPLE: Record<string, LbPolicy> = { ROUND_ROBIN: 'ROUND_ROBIN', UNSPECIFIED: 'ROUND_ROBIN', LEAST_REQUEST: 'LEAST_REQUEST', LEAST_CONN: 'LEAST_REQUEST', RANDOM: 'RANDOM' };

/** An HTTP header or cookie name: an RFC 7230 token. */
export const HTTP_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$/;
/** The failoverPriority labels a meshlet endpoint carries: its node's region, zone and the node itself (the subzone). */
export const LOCALITY_LABELS = ['topology.kubernetes.io/region', 'topology.kubernetes.io/zone', 'topology.istio.io/subzone'] as const;
/** A locality as Istio writes it: `region`, `region/zone` or `region/zone/subzone`, with `*` as a whole last segment. */
const LOCALITY = /^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,62}(\/(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,62}(\/(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,62}))?))?)$/;
const REGION = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
// Envoy's limits: ring sizes up to 8M entries; a Maglev table size must be a prime up to 5,000,011.
const MAX_RING = 8_388_608;
const MAX_MAGLEV = 5_000_011;

export function readLoadBalancer(sink: IssueSink, value: unknown, path: string): LoadBalancer | undefined {
  const lb = readObject(sink, value, path, ['simple', 'consistentHash', 'localityLbSetting', 'warmupDurationSecs', 'warmup']);
  if (!lb) return undefined;
  const out: LoadBalancer = {};
  if (lb.simple !== undefined && lb.consistentHash !== undefined) sink.add(at(path, 'consistentHash'), 'give either simple or consistentHash, not both (they are one choice in Istio)');
  if (lb.simple !== undefined) {
    const p = at(path, 'simple');
    if (lb.simple === 'PASSTHROUGH') sink.add(p, NOT_SUPPORTED('PASSTHROUGH', 'meshlet has no original-destination clusters; it always balances over registered instances'));
    else {
      const simple = readString(sink, lb.simple, p, { oneOf: Object.keys(SIMPLE) });
      if (simple) out.simple = SIMPLE[simple];
    }
  }
  if (lb.consistentHash !== undefined) out.consistentHash = readConsistentHash(sink, lb.consistentHash, at(path, 'consistentHash'));
  if (lb.localityLbSetting !== undefined) out.locality = readLocality(sink, lb.localityLbSetting, at(path, 'localityLbSetting'));
  if (lb.warmupDurationSecs !== undefined && lb.warmup !== undefined) sink.add(at(path, 'warmupDurationSecs'), 'give either warmupDurationSecs or warmup, not both');
  if (lb.warmupDurationSecs !== undefined) {
    const ms = readDuration(sink, lb.warmupDurationSecs, at(path, 'warmupDurationSecs'), 1);
    if (ms !== undefined) out.warmup = { durationMs: ms };
  }
  if (lb.warmup !== undefined) out.warmup = readWarmup(sink, lb.warmup, at(path, 'warmup'));
  // Envoy's slow start exists for round robin and least request only.
  if ((lb.warmupDurationSecs !== undefined || lb.warmup !== undefined) && (out.simple === 'RANDOM' || lb.consistentHash !== undefined)) {
    sink.add(at(path, lb.warmup !== undefined ? 'warmup' : 'warmupDurationSecs'), 'warmup needs simple ROUND_ROBIN or LEAST_REQUEST (Envoy has slow start for those only)');
  }
  return out;
}

function readWarmup(sink: IssueSink, value: unknown, path: string): LoadBalancer['warmup'] {
  const w = readObject(sink, value, path, ['duration', 'minimumPercent', 'aggression']);
  if (!w) return undefined;
  if (w.duration === undefined) sink.add(at(path, 'duration'), 'expected a duration such as "60s" (required)');
  const durationMs = w.duration === undefined ? undefined : readDuration(sink, w.duration, at(path, 'duration'), 1);
  const minimumPercent = w.minimumPercent === undefined ? undefined : readNumber(sink, w.minimumPercent, at(path, 'minimumPercent'), 0, 100);
  const aggression = w.aggression === undefined ? undefined : readNumber(sink, w.aggression, at(path, 'aggression'), 1, 1000);
  if (durationMs === undefined) return undefined;
  return { durationMs, ...(minimumPercent !== undefined ? { minimumPercent } : {}), ...(aggression !== undefined ? { aggression } : {}) };
}

const HASH_KEYS = ['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'] as const;

function readConsistentHash(sink: IssueSink, value: unknown, path: string): ConsistentHash | undefined {
  const c = readObject(sink, value, path, [...HASH_KEYS, 'ringHash', 'maglev', 'minimumRingSize']);
  if (!c) return undefined;
  const given = HASH_KEYS.filter((k) => c[k] !== undefined);
  if (given.length === 0) sink.add(path, `expected one of ${HASH_KEYS.join(', ')} (what to hash)`);
  if (given.length > 1) sink.add(at(path, given[1]!), `give one hash key; ${given[0]} is given too`);
  let key: HashKey | undefined;
  const k = given[0];
  if (k === 'httpHeaderName') {
    const name = readString(sink, c.httpHeaderName, at(path, k), { pattern: HTTP_TOKEN, expected: 'an HTTP header name' });
    if (name) key = { header: name.toLowerCase() };
  } else if (k === 'httpCookie') key = readCookie(sink, c.httpCookie, at(path, k));
  else if (k === 'useSourceIp') {
    const on = readBool(sink, c.useSourceIp, at(path, k));
    if (on === false) sink.add(at(path, k), 'expected true (false names no hash key)');
    if (on) key = { sourceIp: true };
  } else if (k === 'httpQueryParameterName') {
    const name = readString(sink, c.httpQueryParameterName, at(path, k), { pattern: /^[^\s&=#]{1,256}$/, expected: 'a query parameter name (no spaces, "&", "=" or "#")' });
    if (name) key = { queryParameter: name };
  }
  const table = readHashTable(sink, c, path);
  return key && table ? { key, table } : undefined;
}

function readCookie(sink: IssueSink, value: unknown, path: string): HashKey | undefined {
  const c = readObject(sink, value, path, ['name', 'path', 'ttl'], { attributes: NOT_SUPPORTED('attributes', "Envoy's cookie hash policy sets no other cookie attributes") });
  if (!c) return undefined;
  const name = readString(sink, c.name, at(path, 'name'), { pattern: HTTP_TOKEN, expected: 'a cookie name' });
  const cookiePath = c.path === undefined ? undefined : readString(sink, c.path, at(path, 'path'), { pattern: /^\/[\x21-\x3a\x3c-\x7e]{0,1023}$/, expected: 'a cookie path starting with "/" (printable, no ";")' });
  // Envoy generates the cookie (and its ttl) only when a ttl is given; 0s makes it a session cookie.
  const ttlMs = c.ttl === undefined ? undefined : readDuration(sink, c.ttl, at(path, 'ttl'), 0);
  if (!name) return undefined;
  return { cookie: { name, ...(cookiePath !== undefined ? { path: cookiePath } : {}), ...(ttlMs !== undefined ? { ttlMs } : {}) } };
}

function readHashTable(sink: IssueSink, c: Obj, path: string): ConsistentHash['table'] | undefined {
  if (c.ringHash !== undefined && c.maglev !== undefined) sink.add(at(path, 'maglev'), 'give either ringHash or maglev, not both');
  if (c.minimumRingSize !== undefined && (c.ringHash !== undefined || c.maglev !== undefined)) {
    sink.add(at(path, 'minimumRingSize'), `is deprecated and cannot be combined with ${c.maglev !== undefined ? 'maglev' : 'ringHash'}; use ringHash.minimumRingSize`);
  }
  if (c.maglev !== undefined) {
    const m = readObject(sink, c.maglev, at(path, 'maglev'), ['tableSize']);
    if (!m) return undefined;
    if (m.tableSize === undefined) return { kind: 'maglev' };
    const size = readInt(sink, m.tableSize, at(at(path, 'maglev'), 'tableSize'), 2, MAX_MAGLEV, 'a prime number');
    if (size !== undefined && !isPrime(size)) sink.add(at(at(path, 'maglev'), 'tableSize'), `expected a prime number (Envoy's Maglev table size), got ${size}`);
    return size === undefined ? undefined : { kind: 'maglev', tableSize: size };
  }
  if (c.ringHash !== undefined) {
    const r = readObject(sink, c.ringHash, at(path, 'ringHash'), ['minimumRingSize']);
    if (!r) return undefined;
    if (r.minimumRingSize === undefined) return { kind: 'ringHash' };
    const size = readInt(sink, r.minimumRingSize, at(at(path, 'ringHash'), 'minimumRingSize'), 1, MAX_RING);
    return size === undefined ? undefined : { kind: 'ringHash', minimumRingSize: size };
  }
  if (c.minimumRingSize !== undefined) {
    const size = readInt(sink, c.minimumRingSize, at(path, 'minimumRingSize'), 1, MAX_RING);
    return size === undefined ? undefined : { kind: 'ringHash', minimumRingSize: size };
  }
  return { kind: 'ringHash' };
}

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

function readLocality(sink: IssueSink, value: unknown, path: string): LocalityLbSetting | undefined {
  const l = readObject(sink, value, path, ['enabled', 'distribute', 'failover', 'failoverPriority']);
  if (!l) return undefined;
  const out: LocalityLbSetting = { enabled: true, distribute: [], failover: [], failoverPriority: [] };
  if (l.enabled !== undefined) {
    const on = readBool(sink, l.enabled, at(path, 'enabled'));
    if (on !== undefined) out.enabled = on;
  }
  if (l.distribute !== undefined && l.failover !== undefined) sink.add(at(path, 'failover'), 'give either distribute or failover, not both (as in Istio)');
  if (l.failover !== undefined && l.failoverPriority !== undefined) sink.add(at(path, 'failoverPriority'), NOT_SUPPORTED('failoverPriority together with failover', 'give one of them'));
  const locality = (v: unknown, p: string) => readString(sink, v, p, { pattern: LOCALITY, expected: 'a locality region[/zone[/subzone]], "*" only as a whole last part' });
  (readList(sink, l.distribute ?? [], at(path, 'distribute')) ?? []).forEach((item, i) => {
    const p = at(at(path, 'distribute'), i);
    const d = readObject(sink, item, p, ['from', 'to']);
    if (!d) return;
    const from = locality(d.from, at(p, 'from'));
    const to = readMapping(sink, d.to ?? null, at(p, 'to'));
    const weights: [string, number][] = [];
    for (const [loc, w] of Object.entries(to ?? {})) {
      const ok = LOCALITY.test(loc) ? loc : (sink.add(at(at(p, 'to'), loc), 'expected a locality region[/zone[/subzone]], "*" only as a whole last part'), undefined);
      const weight = readInt(sink, w, at(at(p, 'to'), loc), 1, 100, 'a weight');
      if (ok && weight !== undefined) weights.push([ok, weight]);
    }
    const sum = weights.reduce((s, [, w]) => s + w, 0);
    if (to && weights.length === Object.keys(to).length && sum !== 100) sink.add(at(p, 'to'), `expected weights that add up to 100, got ${sum}`);
    if (from && weights.length > 0) out.distribute.push({ from, to: weights.sort(bySpecificity) });
  });
  (readList(sink, l.failover ?? [], at(path, 'failover')) ?? []).forEach((item, i) => {
    const p = at(at(path, 'failover'), i);
    const f = readObject(sink, item, p, ['from', 'to']);
    if (!f) return;
    const from = readString(sink, f.from, at(p, 'from'), { pattern: REGION, expected: 'a region name' });
    const to = readString(sink, f.to, at(p, 'to'), { pattern: REGION, expected: 'a region name' });
    if (from && to && from === to) sink.add(at(p, 'to'), `expected another region than "from" (${from})`);
    if (from && to) out.failover.push({ from, to });
  });
  (readList(sink, l.failoverPriority ?? [], at(path, 'failoverPriority')) ?? []).forEach((item, i) => {
    const p = at(at(path, 'failoverPriority'), i);
    if (typeof item === 'string' && !(LOCALITY_LABELS as readonly string[]).includes(item)) {
      sink.add(p, `${NOT_SUPPORTED(`the label ${describe(item).replace(/^the string /, '')}`, 'meshlet endpoints carry only their node\'s locality labels')}; expected one of ${LOCALITY_LABELS.join(', ')}`);
      return;
    }
    const label = readString(sink, item, p, { oneOf: LOCALITY_LABELS });
    if (label) out.failoverPriority.push(label);
  });
  return out;
}

/**
 * The order `to` patterns take localities in: a YAML mapping has no order (and Istio iterates a Go map), so
 * the more specific pattern first (more parts, then fewer "*"), then by name; same document, same weights.
 */
function bySpecificity([a]: [string, number], [b]: [string, number]): number {
  const parts = (p: string) => p.split('/').length;
  const stars = (p: string) => p.split('/').filter((x) => x === '*').length;
  return parts(b) - parts(a) || stars(a) - stars(b) || (a < b ? -1 : a > b ? 1 : 0);
}
