// Desired state from etcd: a whole snapshot at a revision, then a watch from revision+1. The revision is
// tracked here: on any disconnect, error or compaction the watch is cancelled and a fresh snapshot taken,
// because etcd3's own resume restarts from the server's current revision and can skip a backlog for good.
import type { Etcd3, Watcher } from 'etcd3';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import { backoffMs } from '../../core/clock.js';
import { etcdCall } from './etcd-call.js';

export interface DesiredEntry {
  key: string;
  value: string;
  modRevision: number;
}

/** Every key under a watched prefix (desired state, registry, a drain mark) at a revision. */
export interface PrefixSnapshot {
  /**
   * The etcd revision of the last change this source saw (the state is unchanged since). Not the revision it
   * is known current at: that one moves with every write elsewhere in etcd (the agent's own registry and status
   * writes) whenever the watch is re-created, and a status that reported it would be rewritten after every
   * reconnect although nothing desired changed.
   */
  revision: number;
  entries: ReadonlyMap<string, DesiredEntry>;
}

export type SourceState = 'snapshotting' | 'watching' | 'waiting' | 'stopped';

export interface DesiredSource {
  current(): PrefixSnapshot | undefined;
  readonly state: SourceState;
}

export class EtcdDesiredSource implements DesiredSource {
  #state: SourceState = 'snapshotting';
  #entries = new Map<string, DesiredEntry>();
  /** Where the watch resumes: the revision the state is known current at. */
  #revision = 0;
  /** What current() reports: the revision of the last change seen. */
  #changedAt = 0;
  #loaded = false;
  #watcher: Watcher | undefined;
  #abort = new AbortController();
  #loop: Promise<void> | undefined;
  /** Counts for tests and status: snapshots taken, watch events applied. */
  readonly stats = { snapshots: 0, events: 0, resyncs: 0 };

  constructor(
    private readonly etcd: Etcd3,
    private readonly prefix: string,
    private readonly onChange: () => void,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  get state(): SourceState {
    return this.#state;
  }

  current(): PrefixSnapshot | undefined {
    return this.#loaded ? { revision: this.#changedAt, entries: new Map(this.#entries) } : undefined;
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#state = 'stopped';
    this.#abort.abort();
    await this.#watcher?.cancel().catch(() => {});
    await this.#loop;
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#abort.signal.aborted) {
      try {
        this.#state = 'snapshotting';
        await this.#snapshot();
        failures = 0;
        const reason = await this.#watchUntilBroken();
        if (this.#abort.signal.aborted) break;
        this.stats.resyncs++;
        this.log.warn('etcd watch broke; taking a new snapshot', { reason, revision: this.#revision });
      } catch (err) {
        if (this.#abort.signal.aborted) break;
        failures++;
        this.#state = 'waiting';
        const wait = backoffMs(failures, 5_000);
        if (failures === 1 || failures % 10 === 0) this.log.error('cannot read desired state from etcd; retrying', { error: (err as Error).message, retryInMs: wait, attempt: failures });
        await this.clock.sleep(wait, this.#abort.signal);
      }
    }
  }

  /** Replaces the whole state with etcd's, and reports a change only when something differs. */
  async #snapshot(): Promise<void> {
    // Bounded by the call deadline, and stop() does not even wait for that.
    const res = await untilAborted(etcdCall(`reading ${this.prefix}`, (o) => this.etcd.getAll().prefix(this.prefix).options(o).exec()), this.#abort.signal);
    const next = new Map<string, DesiredEntry>();
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      next.set(key, { key, value: kv.value.toString(), modRevision: Number(kv.mod_revision) });
    }
    const changed = !this.#loaded || next.size !== this.#entries.size || [...next].some(([k, e]) => this.#entries.get(k)?.modRevision !== e.modRevision);
    this.#entries = next;
    this.#revision = Number(res.header.revision);
    this.#loaded = true;
    this.stats.snapshots++;
    if (changed) {
      this.#changedAt = this.#revision;
      this.onChange();
    }
  }

  /**
   * Resolves with a reason when the watch can no longer be trusted. A watch is a stream and has no deadline: a
   * frozen etcd is found by the gRPC keepalive (etcd-client.ts), which drops the connection and so the watch; with
   * several endpoints the member gate (member-health.ts) cancels it sooner and etcd3 reopens it on a live member.
   */
  async #watchUntilBroken(): Promise<string> {
    // watcher() attaches at once, so stop() can cancel it; create() waits for etcd and cannot be stopped while it is away.
    const watcher = this.etcd.watch().prefix(this.prefix).startRevision(String(this.#revision + 1)).watcher();
    this.#watcher = watcher;
    return await new Promise<string>((resolve) => {
      let done = false;
      const onAbort = () => finish('stopped');
      const finish = (reason: string, cancel = true) => {
        if (done) return;
        done = true;
        this.#abort.signal.removeEventListener('abort', onAbort);
        this.#watcher = undefined;
        // Cancel so etcd3 does not resume on its own from the wrong revision. Not after 'error' or 'end':
        // etcd3 has already dropped that watcher, and cancelling it again makes etcd's answer unmatched,
        // which throws inside etcd3 and stops every other watch on the same client.
        if (cancel) watcher.cancel().catch(() => {});
        resolve(reason);
      };
      watcher.on('connected', () => {
        if (!done) this.#state = 'watching';
      });
      watcher.on('data', (res) => {
        if (done) return;
        for (const ev of res.events) {
          const key = ev.kv.key.toString();
          if (ev.type === 'Put') this.#entries.set(key, { key, value: ev.kv.value.toString(), modRevision: Number(ev.kv.mod_revision) });
          else this.#entries.delete(key);
          this.#revision = Math.max(this.#revision, Number(ev.kv.mod_revision));
          this.stats.events++;
        }
        // While catching up, etcd sends the *current* revision with each batch of older events: trust it only on a progress notice.
        if (res.events.length === 0) this.#revision = Math.max(this.#revision, Number(res.header.revision));
        if (res.events.length > 0) {
          this.#changedAt = this.#revision;
          this.onChange();
        }
      });
      watcher.on('disconnected', (err) => finish(`disconnected: ${err?.message ?? ''}`));
      // A compaction past our revision cancels the watcher with an empty reason; a missing listener would crash.
      watcher.on('error', (err) => finish(`error: ${err?.message || 'watch cancelled (compaction?)'}`, false));
      watcher.on('end', () => finish('ended', false));
      // stop() may have come during the snapshot: an already-aborted signal fires no 'abort' event.
      if (this.#abort.signal.aborted) finish('stopped');
      else this.#abort.signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

/** Settles like `p`, or rejects as soon as `signal` aborts (`p` is left to settle on its own). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.reject(new Error('stopped'));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('stopped'));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => (signal.removeEventListener('abort', onAbort), resolve(v)),
      (err) => (signal.removeEventListener('abort', onAbort), reject(err)),
    );
  });
}
