// This node's registrations in etcd, all under the node's one lease. What should be registered is kept in
// memory; sync() diffs it against what was last written and writes only the difference (an idle agent
// writes nothing), one transaction per batch of instances, both keys of an instance always together:
//   <p>/registry/<service>/<version>/<node>  Instance JSON
//   <p>/naming/<service>/<address:port>      {"Op":0,"Addr":…,"Metadata":{…}}  (etcd's gRPC naming format)
// A failed write is retried with capped backoff until etcd answers; nothing is lost meanwhile.
import type { Etcd3, IRequestOp } from 'etcd3';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import { backoffMs } from '../../core/clock.js';
import { keys, type Keys } from '../../core/model/keys.js';
import type { Instance } from '../../core/model/model.js';
import { hostPort } from '../../health/probes.js';
import { parseInstance } from './registry-reader.js';
import { etcdCall } from './etcd-call.js';

/** One healthy app instance of this node. */
export type Registration = Omit<Instance, 'node'>;

/** in-sync: etcd holds what memory says; writing: a sync runs; retrying: a write failed, backing off. */
export type RegistryState = 'in-sync' | 'writing' | 'retrying' | 'stopped';

export interface SyncResult {
  ok: boolean;
  /** Instances written (put or deleted) by this call. */
  changed: number;
  /** Set while drained: registrations are kept in memory but not written. */
  drained?: true;
  error?: string;
}

export interface RegistryOptions {
  etcd: Etcd3;
  prefix: string;
  node: string;
  lease: string;
  clock: Clock;
  log: Logger;
  /** Cap of the retry backoff (default 5 s). */
  maxBackoffMs?: number;
  /** This node's locality (agent flags --region, --zone), written into every Instance it registers. */
  region?: string;
  zone?: string;
}

interface Written {
  registryKey: string;
  registryValue: string;
  namingKey: string;
  namingValue: string;
  lease: string;
}

// etcd refuses a transaction of more than --max-txn-ops (128 by default) operations.
const MAX_TXN_OPS = 96;

export function namingValue(r: Registration, node: string): string {
  return JSON.stringify({ Op: 0, Addr: hostPort(r.address, r.port), Metadata: { version: r.version, node } });
}

export class Registry {
  readonly stats = { txns: 0, puts: 0, deletes: 0, failures: 0 };
  #desired = new Map<string, Registration>();
  #written = new Map<string, Written>();
  #k: Keys;
  #lease: string;
  #drained = false;
  #state: RegistryState = 'in-sync';
  #dirty = false;
  #running: Promise<SyncResult> | undefined;
  #retrying: Promise<void> | undefined;
  #lastError: string | undefined;
  #abort = new AbortController();
  #repairing: Promise<string[]> | undefined;

  constructor(private readonly opts: RegistryOptions) {
    this.#k = keys(opts.prefix);
    this.#lease = opts.lease;
  }

  get state(): RegistryState {
    return this.#state;
  }

  get drained(): boolean {
    return this.#drained;
  }

  get lease(): string {
    return this.#lease;
  }

  /** What this node has (or is about to have) registered: nothing while drained. */
  current(): Instance[] {
    if (this.#drained) return [];
    return [...this.#desired.values()].map((r) => ({ ...r, node: this.opts.node, ...this.#locality() })).sort((a, b) => cmp(a.service, b.service) || cmp(a.version, b.version));
  }

  register(r: Registration): Promise<SyncResult> {
    this.#desired.set(slot(r.service, r.version), { ...r });
    return this.sync();
  }

  deregister(service: string, version: string): Promise<SyncResult> {
    this.#desired.delete(slot(service, version));
    return this.sync();
  }

  /** The whole set of healthy instances (a pass's view): anything else of this node is deregistered. */
  setAll(list: readonly Registration[]): Promise<SyncResult> {
    this.#desired = new Map(list.map((r) => [slot(r.service, r.version), { ...r }]));
    return this.sync();
  }

  /** After the lease was lost and re-granted: its keys went with it, so put every registration again. */
  rebind(lease: string): Promise<SyncResult> {
    this.#lease = lease;
    return this.sync();
  }

  /** `meshlet drain`: deregisters everything and keeps registering nothing until undrain(). */
  drain(): Promise<SyncResult> {
    this.#drained = true;
    return this.sync();
  }

  undrain(): Promise<SyncResult> {
    this.#drained = false;
    return this.sync();
  }

  /**
   * After an agent restart that took its lease back: reads what this node has in etcd, so registrations
   * that stay healthy are not rewritten and those that are no longer wanted get deleted at the next
   * setAll() or deregister(). Until then they count as wanted.
   */
  async adopt(): Promise<Instance[]> {
    const found = await this.#readEtcd();
    this.#written = found.written;
    for (const [s, r] of found.registrations) if (!this.#desired.has(s)) this.#desired.set(s, r);
    await this.sync();
    return found.instances;
  }

  /**
   * Whether the registry watch still shows every registry key this node wrote, with the value written: a key
   * deleted or overwritten by someone else (an operator's `etcdctl del`) is found here within one watch event.
   */
  heldIn(seen: ReadonlyMap<string, { value: string }>): boolean {
    for (const w of this.#written.values()) if (seen.get(w.registryKey)?.value !== w.registryValue) return false;
    return true;
  }

  /**
   * Anti-entropy: reads back every key this node wrote (both formats, in one transaction, O(this node's
   * instances)) and writes again whatever is missing, changed, or bound to another lease. Returns the instances
   * put back. Never throws: a failed read is retried by the next check.
   */
  repair(reason: string): Promise<string[]> {
    // One read-back at a time: drift checks that come while etcd is slow to answer do not pile up calls.
    this.#repairing ??= this.#repair(reason).finally(() => (this.#repairing = undefined));
    return this.#repairing;
  }

  async #repair(reason: string): Promise<string[]> {
    if (this.#state === 'stopped' || this.#state === 'retrying' || this.#written.size === 0) return [];
    const slots = [...this.#written];
    const keysOf = (w: Written) => [w.registryKey, w.namingKey];
    let res: { responses: { response_range?: { kvs: { value: Buffer; lease: string }[] } | null }[] };
    try {
      res = await etcdCall('reading back this node\'s registrations', (o) => this.opts.etcd.kv.txn({ success: slots.flatMap(([, w]) => keysOf(w).map((key) => ({ request_range: { key: Buffer.from(key) } }))) }, o));
    } catch (err) {
      this.opts.log.debug('cannot read back this node\'s registrations; the next check tries again', { error: (err as Error).message });
      return [];
    }
    const repaired: string[] = [];
    slots.forEach(([slot, w], i) => {
      const [reg, naming] = [res.responses[2 * i]?.response_range?.kvs[0], res.responses[2 * i + 1]?.response_range?.kvs[0]];
      const intact = (kv: { value: Buffer; lease: string } | undefined, value: string) => kv !== undefined && kv.value.toString() === value && String(kv.lease) === w.lease;
      // Only if memory still says what was read back: a sync may have rewritten the slot meanwhile.
      if (this.#written.get(slot) !== w || (intact(reg, w.registryValue) && intact(naming, w.namingValue))) return;
      this.#written.delete(slot);
      repaired.push(slot);
    });
    if (repaired.length === 0) return [];
    this.opts.log.warn('registrations changed in etcd by someone else; putting them back', { instances: repaired, found: reason });
    await this.sync();
    return repaired;
  }

  /** Writes the difference between what should be registered and what was written. Never throws. */
  sync(): Promise<SyncResult> {
    if (this.#state === 'stopped') return Promise.resolve({ ok: false, changed: 0, error: 'registry stopped' });
    this.#dirty = true;
    this.#running ??= this.#syncUntilClean().finally(() => (this.#running = undefined));
    return this.#running;
  }

  /** Stops retrying; registrations stay in etcd until the lease goes. */
  stop(): void {
    this.#state = 'stopped';
    this.#abort.abort();
  }

  async #syncUntilClean(): Promise<SyncResult> {
    let total = 0;
    while (this.#dirty && this.#state !== 'stopped') {
      this.#dirty = false;
      this.#state = 'writing';
      const r = await this.#syncOnce();
      total += r.changed;
      if (!r.ok) {
        this.#failed(r.error!);
        return { ...r, changed: total };
      }
    }
    if (this.#state === 'writing') this.#state = 'in-sync';
    this.#lastError = undefined;
    return { ok: true, changed: total, ...(this.#drained ? { drained: true as const } : {}) };
  }

  async #syncOnce(): Promise<SyncResult> {
    const changes: { slot: string; next: Written | undefined; ops: IRequestOp[] }[] = [];
    for (const s of new Set([...this.#desired.keys(), ...this.#written.keys()])) {
      const want = this.#drained ? undefined : this.#desired.get(s);
      const had = this.#written.get(s);
      const next = want && this.#render(want);
      if (next && had && sameWrite(next, had)) continue;
      if (!next && !had) continue;
      const ops: IRequestOp[] = [];
      if (next) ops.push(put(next.registryKey, next.registryValue, next.lease), put(next.namingKey, next.namingValue, next.lease));
      if (had?.namingKey && had.namingKey !== next?.namingKey) ops.push(del(had.namingKey));
      if (had?.registryKey && had.registryKey !== next?.registryKey) ops.push(del(had.registryKey));
      changes.push({ slot: s, next, ops });
    }
    // etcd refuses a key twice in one transaction: a port handed from one version to another is a put only.
    const putKeys = new Set(changes.flatMap((c) => c.ops.flatMap((o) => (o.request_put ? [o.request_put.key!.toString()] : []))));
    for (const c of changes) c.ops = c.ops.filter((o) => !o.request_delete_range || !putKeys.has(o.request_delete_range.key!.toString()));

    let changed = 0;
    for (const batch of batches(changes)) {
      try {
        await etcdCall(`writing ${batch.length} registration${batch.length === 1 ? '' : 's'}`, (o) => this.opts.etcd.kv.txn({ success: batch.flatMap((c) => c.ops) }, o));
      } catch (err) {
        return { ok: false, changed, error: (err as Error).message };
      }
      this.stats.txns++;
      for (const c of batch) {
        if (c.next) this.#written.set(c.slot, c.next);
        else this.#written.delete(c.slot);
        if (c.next) this.stats.puts++;
        else this.stats.deletes++;
        changed++;
      }
    }
    return { ok: true, changed };
  }

  #locality(): { region?: string; zone?: string } {
    return { ...(this.opts.region !== undefined ? { region: this.opts.region } : {}), ...(this.opts.zone !== undefined ? { zone: this.opts.zone } : {}) };
  }

  #render(r: Registration): Written {
    const node = this.opts.node;
    const value = { service: r.service, version: r.version, node, address: r.address, port: r.port, container: r.container, healthySince: r.healthySince, ...this.#locality() };
    return {
      registryKey: this.#k.instance(r.service, r.version, node),
      registryValue: JSON.stringify(value),
      namingKey: this.#k.namingEndpoint(r.service, hostPort(r.address, r.port)),
      namingValue: namingValue(r, node),
      lease: this.#lease,
    };
  }

  // A failed write leaves memory as it was (the outcome of a broken call is unknown; puts and deletes are
  // idempotent), and a background loop tries again until a sync succeeds.
  #failed(error: string): void {
    this.stats.failures++;
    if (this.#state === 'stopped') return;
    if (this.#lastError === undefined) this.opts.log.warn('cannot write registrations to etcd; retrying', { error, lease: this.#lease });
    this.#lastError = error;
    this.#state = 'retrying';
    this.#retrying ??= this.#retry().finally(() => (this.#retrying = undefined));
  }

  async #retry(): Promise<void> {
    for (let attempt = 1; this.#state === 'retrying'; attempt++) {
      await this.opts.clock.sleep(backoffMs(attempt, this.opts.maxBackoffMs ?? 5_000, 200), this.#abort.signal);
      if (this.#state !== 'retrying') break; // stopped, or another caller's sync got through
      const r = await this.sync();
      if (r.ok) this.opts.log.info('registrations written after etcd came back', { attempts: attempt });
    }
  }

  /** This node's keys as etcd has them, per registration slot; keys that match nothing are deleted by the next sync. */
  async #readEtcd(): Promise<{ written: Map<string, Written>; registrations: Map<string, Registration>; instances: Instance[] }> {
    const { etcd, node, log } = this.opts;
    const [reg, naming] = await Promise.all([
      etcdCall('reading the registry', (o) => etcd.getAll().prefix(this.#k.registry).options(o).exec()),
      etcdCall('reading the naming keys', (o) => etcd.getAll().prefix(this.#k.naming).options(o).exec()),
    ]);
    const written = new Map<string, Written>();
    const registrations = new Map<string, Registration>();
    const instances: Instance[] = [];
    const blank = (): Written => ({ registryKey: '', registryValue: '', namingKey: '', namingValue: '', lease: '' });
    for (const kv of reg.kvs) {
      const key = kv.key.toString();
      const rest = key.slice(this.#k.registry.length).split('/');
      if (rest.length !== 3 || rest[2] !== node) continue;
      const s = slot(rest[0]!, rest[1]!);
      written.set(s, { ...blank(), registryKey: key, registryValue: kv.value.toString(), lease: kv.lease });
      const inst = parseInstance(key, kv.value.toString(), (msg, f) => log.warn(msg, f));
      if (inst) {
        instances.push(inst);
        const { node: _node, ...r } = inst;
        registrations.set(s, r);
      }
    }
    for (const kv of naming.kvs) {
      const key = kv.key.toString();
      const meta = namingMeta(kv.value.toString());
      if (meta?.node !== node) continue;
      const service = key.slice(this.#k.naming.length).split('/')[0] ?? '';
      const s = slot(service, meta.version ?? '');
      const w = written.get(s);
      if (w && !w.namingKey) {
        // Keys under two leases are rewritten under the current one.
        written.set(s, { ...w, namingKey: key, namingValue: kv.value.toString(), lease: w.lease === kv.lease ? w.lease : '' });
      } else {
        written.set(`orphan ${key}`, { ...blank(), namingKey: key, namingValue: kv.value.toString(), lease: kv.lease });
      }
    }
    return { written, registrations, instances };
  }
}

function slot(service: string, version: string): string {
  return `${service}/${version}`;
}

function sameWrite(a: Written, b: Written): boolean {
  return a.registryKey === b.registryKey && a.registryValue === b.registryValue && a.namingKey === b.namingKey && a.namingValue === b.namingValue && a.lease === b.lease;
}

function put(key: string, value: string, lease: string): IRequestOp {
  return { request_put: { key: Buffer.from(key), value: Buffer.from(value), lease } };
}

function del(key: string): IRequestOp {
  return { request_delete_range: { key: Buffer.from(key) } };
}

function batches<T extends { ops: IRequestOp[] }>(changes: T[]): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let n = 0;
  for (const c of changes) {
    if (n + c.ops.length > MAX_TXN_OPS && cur.length > 0) {
      out.push(cur);
      cur = [];
      n = 0;
    }
    cur.push(c);
    n += c.ops.length;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

function namingMeta(value: string): { node?: string; version?: string } | undefined {
  try {
    const v = JSON.parse(value) as { Metadata?: { node?: unknown; version?: unknown } };
    const m = v?.Metadata;
    return m && typeof m === 'object' ? { ...(typeof m.node === 'string' ? { node: m.node } : {}), ...(typeof m.version === 'string' ? { version: m.version } : {}) } : undefined;
  } catch {
    return undefined;
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
