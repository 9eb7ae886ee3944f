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

  constructor(private readonly etcd: Etcd3, private readonly key: string, lease: string, private readonly log: Logger) {
    this.#lease = lease;
  }

  async write(status: NodeStatus): Promise<void> {
    const value = canonicalJson({ ...status, lease: this.#lease });
    if (value === this.#last) return;
    try {
      await this.etcd.put(this.key).value(value).lease(this.#lease).exec();
      this.#last = value;
    } catch (err) {
      this.log.warn('cannot write node status; will retry on the next pass', { error: (err as Error).message });
    }
  }

  /** After the lease was re-granted: the old key is gone with the old lease, so write again. */
  async rebind(lease: string): Promise<void> {
    this.#lease = lease;
    const last = this.#last;
    this.#last = '';
    if (last) await this.write(JSON.parse(last) as NodeStatus);
  }
}
