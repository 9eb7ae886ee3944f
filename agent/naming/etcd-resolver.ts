// A gRPC name resolver for @grpc/grpc-js that reads etcd's gRPC naming format, so a Node app dials
// `etcd:///<prefix>/naming/<service>` and gets every registered endpoint of that service.
//
// Keys are `<target>/<anything>` (meshlet writes `<target>/<address:port>`), values
// `{"Op":0,"Addr":"10.0.0.5:9080","Metadata":…}` (go.etcd.io/etcd/client/v3/naming/endpoints, and the older
// clientv3/naming). A put with Op 0 adds, a put with Op 1 or a delete removes. Unlike the Go resolver,
// which never re-lists and stops for good on a compaction, this one tracks the revision itself and takes a
// fresh listing whenever its watch errs, disconnects or is cancelled by a compaction.
import * as grpc from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../core/logger.js';
import { backoffMs, systemClock } from '../core/clock.js';

type GrpcUri = grpc.experimental.GrpcUri;
type Endpoint = grpc.experimental.Endpoint;
type ResolverListener = grpc.experimental.ResolverListener;
type Resolver = grpc.experimental.Resolver;
type ResolverConstructor = Parameters<typeof grpc.experimental.registerResolver>[1];

export interface ResolverStats {
  snapshots: number;
  events: number;
  /** Watches that broke (error, disconnect, compaction) and were followed by a fresh listing. */
  resyncs: number;
  errors: number;
}

export interface ResolverHooks {
  /** Runs after each full listing, before the watch from the next revision starts (tests compact etcd here). */
  afterSnapshot?(prefix: string, revision: number): void | Promise<void>;
}

/**
 * The key prefix of a target. grpc-js hands over the URI path without the `//authority/` part, so
 * `etcd:///meshlet/naming/x` gives `meshlet/naming/x` and `etcd:////meshlet/naming/x` gives
 * `/meshlet/naming/x`: both mean `/meshlet/naming/x/` (meshlet's keys always start with "/").
 */
export function targetKeyPrefix(path: string): string {
  const trimmed = path.replace(/^\/+|\/+$/g, '');
  if (!trimmed) throw new Error(`etcd resolver: empty target path ${JSON.stringify(path)}; expected etcd:///<prefix>/naming/<service>`);
  return `/${trimmed}/`;
}

/** One naming value: add or remove `addr`; undefined for a value that is not in etcd's naming format. */
export function parseNamingValue(value: string): { op: 'add' | 'delete'; addr: string } | undefined {
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (v === null || typeof v !== 'object') return undefined;
  const { Op, Addr } = v as { Op?: unknown; Addr?: unknown };
  if (typeof Addr !== 'string' || !Addr) return undefined;
  // Go marshals Op without omitempty, but a missing Op unmarshals to 0 (Add) there too.
  if (Op === undefined || Op === 0) return { op: 'add', addr: Addr };
  if (Op === 1) return { op: 'delete', addr: Addr };
  return undefined;
}

/** The endpoints named by a prefix's current keys: deduplicated, sorted, unreadable values skipped. */
export function endpointsOf(entries: ReadonlyMap<string, string>, warn: (msg: string, fields: Record<string, unknown>) => void): Endpoint[] {
  const addrs = new Map<string, { host: string; port: number }>();
  for (const [key, value] of entries) {
    const u = parseNamingValue(value);
    const hp = u && grpc.experimental.splitHostPort(u.addr);
    if (!u || !hp || hp.port === undefined) {
      warn('etcd resolver: skipping a value that is not {"Op":0|1,"Addr":"host:port"}', { key, value: value.slice(0, 200) });
      continue;
    }
    if (u.op === 'add') addrs.set(u.addr, { host: hp.host, port: hp.port });
  }
  return [...addrs.keys()].sort().map((a) => ({ addresses: [addrs.get(a)!] }));
}

/** Follows one prefix: a listing at a revision, then a watch from the next one; a broken watch means a new listing. */
export class PrefixFollower {
  #entries = new Map<string, string>();
  #revision = 0;
  #loaded = false;
  #stop = new AbortController();
  #nap: AbortController | undefined;

  constructor(
    private readonly etcd: Etcd3,
    readonly prefix: string,
    private readonly onUpdate: (entries: ReadonlyMap<string, string>) => void,
    private readonly onError: (err: Error, loaded: boolean) => void,
    private readonly log: Logger,
    private readonly stats: ResolverStats,
    private readonly hooks: ResolverHooks = {},
  ) {
    void this.#run();
  }

  get revision(): number {
    return this.#revision;
  }

  /** Cuts a backoff short (the channel asked for a new resolution). */
  wake(): void {
    this.#nap?.abort();
  }

  /** The watch, if any, is cancelled once by its own 'abort' listener (a second cancel would get an unmatched answer). */
  stop(): void {
    this.#stop.abort();
    this.#nap?.abort();
  }

  async #run(): Promise<void> {
    const stopped = this.#stop.signal;
    for (let failures = 0; !stopped.aborted; ) {
      try {
        await this.#list();
        failures = 0;
        await this.hooks.afterSnapshot?.(this.prefix, this.#revision);
        if (stopped.aborted) break;
        const reason = await this.#watchUntilBroken();
        if (stopped.aborted) break;
        this.stats.resyncs++;
        this.log.warn('etcd resolver: watch broke; listing again', { prefix: this.prefix, reason, revision: this.#revision });
      } catch (err) {
        if (stopped.aborted) break;
        failures++;
        this.stats.errors++;
        this.onError(err as Error, this.#loaded);
        this.#nap = new AbortController();
        await systemClock.sleep(backoffMs(failures, 5_000, 100), this.#nap.signal);
      }
    }
  }

  async #list(): Promise<void> {
    const res = await this.etcd.getAll().prefix(this.prefix).exec();
    if (this.#stop.signal.aborted) return;
    const next = new Map(res.kvs.map((kv) => [kv.key.toString(), kv.value.toString()] as const));
    const changed = !this.#loaded || next.size !== this.#entries.size || [...next].some(([k, v]) => this.#entries.get(k) !== v);
    this.#entries = next;
    this.#revision = Number(res.header.revision);
    this.#loaded = true;
    this.stats.snapshots++;
    if (changed) this.onUpdate(new Map(this.#entries));
  }

  /** Resolves with a reason once the watch can no longer be trusted. */
  #watchUntilBroken(): Promise<string> {
    // watcher() rather than create(): the listeners are on before anything can be emitted, and a watch
    // cancelled by a compaction (an 'error' with an empty reason) can never go unheard and crash the app.
    const watcher = this.etcd.watch().prefix(this.prefix).startRevision(String(this.#revision + 1)).watcher();
    return new Promise<string>((resolve) => {
      let done = false;
      const finish = (reason: string, cancel = true) => {
        if (done) return;
        done = true;
        this.#stop.signal.removeEventListener('abort', onStop);
        // Cancel so etcd3 does not resume on its own from the server's current revision and skip events.
        if (cancel) watcher.cancel().catch(() => {});
        resolve(reason);
      };
      const onStop = () => finish('stopped');
      watcher.on('data', (res) => {
        if (done) return;
        let changed = false;
        for (const ev of res.events) {
          const key = ev.kv.key.toString();
          const rev = Number(ev.kv.mod_revision);
          if (rev <= this.#revision) continue; // already in the listing
          if (ev.type === 'Put') this.#entries.set(key, ev.kv.value.toString());
          else this.#entries.delete(key);
          changed = true;
          this.stats.events++;
        }
        this.#revision = Math.max(this.#revision, ...res.events.map((e) => Number(e.kv.mod_revision)));
        if (changed) this.onUpdate(new Map(this.#entries));
      });
      watcher.on('disconnected', (err: Error | undefined) => finish(`disconnected: ${err?.message ?? ''}`));
      // etcd cancelled the watch itself (a compaction: empty reason) and etcd3 has already dropped it. Cancelling
      // it again sends etcd a cancel whose answer etcd3 cannot match: with other watches on the client's stream
      // it throws "Failed to find watcher for IWatchResponse" as an unhandled rejection (which ends a Node
      // process) and the stream stops creating watches. So: no cancel here.
      watcher.on('error', (err: Error | undefined) => finish(`error: ${err?.message || 'watch cancelled (compaction?)'}`, false));
      watcher.on('end', () => finish('ended', false));
      this.#stop.signal.addEventListener('abort', onStop, { once: true });
    });
  }
}

/** What every resolver of one registration shares: the etcd client (created on first use), stats, hooks. */
export interface ResolverContext {
  etcd(): Etcd3;
  log: Logger;
  stats: ResolverStats;
  hooks: ResolverHooks;
  active: Set<{ destroy(): void }>;
}

/** A grpc-js resolver class bound to one context, for `registerResolver(scheme, …)`. */
export function etcdResolverClass(ctx: ResolverContext): ResolverConstructor {
  return class EtcdResolver implements Resolver {
    readonly #prefix: string;
    #follower: PrefixFollower | undefined;
    #reported: string | undefined;

    constructor(target: GrpcUri, private readonly listener: ResolverListener, _options: grpc.ChannelOptions) {
      this.#prefix = targetKeyPrefix(target.path);
    }

    /** The :authority of calls: the service name, the target's last segment. */
    static getDefaultAuthority(target: GrpcUri): string {
      return targetKeyPrefix(target.path).split('/').filter(Boolean).pop()!;
    }

    updateResolution(): void {
      if (this.#follower) return this.#follower.wake();
      ctx.active.add(this);
      this.#follower = new PrefixFollower(ctx.etcd(), this.#prefix, (entries) => this.#report(entries), (err, loaded) => this.#failed(err, loaded), ctx.log, ctx.stats, ctx.hooks);
    }

    destroy(): void {
      ctx.active.delete(this);
      this.#follower?.stop();
      this.#follower = undefined;
      this.#reported = undefined;
    }

    #report(entries: ReadonlyMap<string, string>): void {
      if (!this.#follower) return;
      const endpoints = endpointsOf(entries, (msg, fields) => ctx.log.warn(msg, fields));
      const text = JSON.stringify(endpoints);
      if (text === this.#reported) return;
      this.#reported = text;
      ctx.log.info('etcd resolver: endpoints', { prefix: this.#prefix, endpoints: endpoints.map((e) => e.addresses.map((a) => grpc.experimental.subchannelAddressToString(a)).join()) });
      this.listener(grpc.experimental.statusOrFromValue(endpoints), {}, null, '');
      // grpc-js 1.14's round_robin turns an empty list into IDLE, where calls wait for their deadline; an
      // error right after (it has no children left to keep) makes them fail at once with UNAVAILABLE, as in Go.
      if (endpoints.length === 0) {
        this.listener(grpc.experimental.statusOrFromError({ code: grpc.status.UNAVAILABLE, details: `etcd resolver: no endpoints registered under ${this.#prefix}` }), {}, null, '');
      }
    }

    // Before the first listing the channel learns why it has no addresses; after it, the last good list stays.
    #failed(err: Error, loaded: boolean): void {
      if (!this.#follower) return;
      ctx.log.warn('etcd resolver: cannot read etcd; retrying', { prefix: this.#prefix, error: err.message });
      if (loaded) return;
      this.listener(grpc.experimental.statusOrFromError({ code: grpc.status.UNAVAILABLE, details: `etcd resolver: cannot list ${this.#prefix}: ${err.message}` }), {}, null, '');
    }
  };
}
