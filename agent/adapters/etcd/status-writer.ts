// `<p>/nodes/<node>/status` under the node's lease, written only when its content changes (an idle agent writes nothing).
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../../core/logger.js';
import { canonicalJson } from '../../core/model/canonical.js';

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
  #last = '';
  #lease: string;
  #standingDown = false;

  constructor(private readonly etcd: Etcd3, private readonly key: string, lease: string, private readonly log: Logger) {
    this.#lease = lease;
  }

  async write(status: NodeStatus): Promise<void> {
    if (this.#standingDown) return;
    const value = canonicalJson({ ...status, lease: this.#lease });
    if (value === this.#last) return;
    try {
      await this.etcd.put(this.key).value(value).lease(this.#lease).exec();
      this.#last = value;
    } catch (err) {
      this.log.warn('cannot write node status; will retry on the next pass', { error: (err as Error).message });
    }
  }

  /**
   * Another agent holds the node, and its status is its own: from now on nothing is written, except once
   * `note` (under `lease`) merged into the last status, and only where no other lease holds the key.
   * Returns whether the note was written.
   */
  async standDown(lease: string, note: Record<string, unknown>): Promise<boolean> {
    if (this.#standingDown) return false;
    this.#standingDown = true;
    const last = this.#last ? (JSON.parse(this.#last) as NodeStatus) : {};
    const value = canonicalJson({ ...last, ...note, lease });
    const put = this.etcd.put(this.key).value(value).lease(lease);
    try {
      // etcd compares are ANDed: "absent or mine" is two transactions.
      if ((await this.etcd.if(this.key, 'Lease', '==', lease).then(put).commit()).succeeded) return true;
      return (await this.etcd.if(this.key, 'Create', '==', 0).then(this.etcd.put(this.key).value(value).lease(lease)).commit()).succeeded;
    } catch (err) {
      this.log.warn('cannot write the node status', { error: (err as Error).message });
      return false;
    }
  }

  /** After the lease was re-granted: the old key is gone with the old lease, so write again. */
  async rebind(lease: string): Promise<void> {
    if (this.#standingDown) return;
    this.#lease = lease;
    const last = this.#last;
    this.#last = '';
    if (last) await this.write(JSON.parse(last) as NodeStatus);
  }
}
