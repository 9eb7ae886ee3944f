// `<p>/nodes/<node>/status` under the node's lease, written only when its content changes (an idle agent writes
// nothing). A write that fails is retried with capped backoff until the latest content lands: it used to wait
// for the next pass, up to --resync-interval on a quiet node.
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import { backoffMs } from '../../core/clock.js';
import { canonicalJson } from '../../core/model/canonical.js';
import { etcdCall } from './etcd-call.js';

export interface NodeStatus {
  node: string;
  agentVersion: string;
  host: string;
  pid: number;
  lease: string;
  leaseTtl: number;
  desiredRevision?: number;
  appliedRevision?: number;
  lastApply?: { ok: boolean; at: string; revision: number; reason?: string; message?: string; action?: string };
  rejected: { key: string; kind?: string; name?: string; path: string; message: string }[];
  composeRuns: number;
  workloads: string[];
  drained?: boolean;
  [extra: string]: unknown;
}

export class StatusWriter {
  /** What etcd holds as far as this writer knows ('' = nothing yet, or unknown after a failure or rebind). */
  #written = '';
  #wanted: NodeStatus | undefined;
  #lease: string;
  #standingDown = false;
  #running: Promise<void> | undefined;
  #failures = 0;
  #retrying = false;
  #abort = new AbortController();

  constructor(private readonly etcd: Etcd3, private readonly key: string, lease: string, private readonly clock: Clock, private readonly log: Logger) {
    this.#lease = lease;
  }

  /** Writes `status` unless etcd holds it already; resolves once written or failed (a failure is retried later). */
  write(status: NodeStatus): Promise<void> {
    this.#wanted = status;
    return this.#flush();
  }

  /**
   * Another agent holds the node, and its status is its own: from now on nothing is written, except once
   * `note` (under `lease`) merged into the last status, and only where no other lease holds the key.
   * Returns whether the note was written.
   */
  async standDown(lease: string, note: Record<string, unknown>): Promise<boolean> {
    if (this.#standingDown) return false;
    this.#standingDown = true;
    this.#abort.abort(); // no retry of an older write after this
    const last = this.#wanted ?? {};
    const value = canonicalJson({ ...last, ...note, lease });
    const put = this.etcd.put(this.key).value(value).lease(lease);
    try {
      // etcd compares are ANDed: "absent or mine" is two transactions.
      if ((await etcdCall('writing the node status', (o) => this.etcd.if(this.key, 'Lease', '==', lease).then(put).options(o).commit())).succeeded) return true;
      return (await etcdCall('writing the node status', (o) => this.etcd.if(this.key, 'Create', '==', 0).then(this.etcd.put(this.key).value(value).lease(lease)).options(o).commit())).succeeded;
    } catch (err) {
      this.log.warn('cannot write the node status', { error: (err as Error).message });
      return false;
    }
  }

  /** After the lease was re-granted: the old key is gone with the old lease, so write again. */
  rebind(lease: string): Promise<void> {
    if (this.#standingDown) return Promise.resolve();
    this.#lease = lease;
    this.#written = '';
    return this.#flush();
  }

  /** Stops retrying; the status stays until the lease expires. */
  stop(): void {
    this.#abort.abort();
  }

  // One write at a time; one that finds newer content asked for meanwhile writes that too.
  #flush(): Promise<void> {
    this.#running ??= this.#writeLatest().finally(() => (this.#running = undefined));
    return this.#running;
  }

  async #writeLatest(): Promise<void> {
    for (;;) {
      if (!this.#wanted || this.#abort.signal.aborted || this.#standingDown) return;
      const value = canonicalJson({ ...this.#wanted, lease: this.#lease });
      if (value === this.#written) return;
      try {
        await etcdCall('writing the node status', (o) => this.etcd.put(this.key).value(value).lease(this.#lease).options(o).exec());
      } catch (err) {
        this.#failed(err as Error);
        return;
      }
      this.#written = value;
      if (this.#failures > 0) this.log.info('node status written again', { failedAttempts: this.#failures });
      this.#failures = 0;
    }
  }

  #failed(err: Error): void {
    this.#failures++;
    this.#written = ''; // the outcome of a failed call is unknown
    if (this.#failures === 1 || this.#failures % 10 === 0) this.log.warn('cannot write node status; retrying', { error: err.message, attempts: this.#failures });
    if (this.#retrying) return;
    this.#retrying = true;
    void this.clock.sleep(backoffMs(this.#failures, 5_000, 200), this.#abort.signal).then(() => {
      this.#retrying = false;
      if (!this.#abort.signal.aborted) void this.#flush();
    });
  }
}
