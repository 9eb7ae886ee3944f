// The inputs are built before the loop they wake (the loop needs them to exist): they reach it through
// this handle, which holds their reasons until the loop is attached.
import type { Logger } from '../core/logger.js';
import type { AgentState } from '../adapters/files/state-store.js';
import type { Reconciler } from '../reconcile.js';

export class LoopHandle {
  #loop: Reconciler | undefined;
  #pending: string[] = [];

  constructor(private readonly log: Logger) {}

  attach(loop: Reconciler): void {
    this.#loop = loop;
    for (const reason of this.#pending.splice(0)) loop.triggers.notify(reason);
  }

  /** Asks for a pass. */
  notify(reason: string): void {
    if (this.#loop) this.#loop.triggers.notify(reason);
    else this.#pending.push(reason);
  }

  /** A change of routes or endpoints reaches the sidecars even while a pass is busy with compose. */
  publishNow(): void {
    void this.#loop?.publishNow().catch((err: unknown) => this.log.warn('cannot publish xDS ahead of the pass', { error: (err as Error).message }));
  }

  /** The loop's state (admin ports, lease id), once the loop exists. */
  get state(): AgentState | undefined {
    return this.#loop?.state;
  }
}
