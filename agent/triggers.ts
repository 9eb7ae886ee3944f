// Coalesces the reasons to run a pass (etcd, Docker events, template edits, timers) into one pending pass.
import type { Clock } from './core/clock.js';

export class Triggers {
  #pending = new Set<string>();
  #wake: (() => void) | undefined;
  #closed = new AbortController();
  /** Set while hold() waits: sees every reason notified meanwhile. */
  #onNotify: ((reason: string) => void) | undefined;

  notify(reason: string): void {
    if (this.#closed.signal.aborted) return;
    this.#pending.add(reason);
    this.#onNotify?.(reason);
    this.#wake?.();
  }

  close(): void {
    this.#closed.abort();
    this.#wake?.();
  }

  /**
   * Holds the next pass back for `ms` (a backoff): reasons notified meanwhile wait and go together with it. Ends
   * sooner on close(), or — no sooner than `minMs` — once a reason that `wakes` accepts is pending: such a reason
   * may remove the cause of the failure (a desired change, Docker answering again), so it need not wait it out.
   */
  async hold(clock: Clock, ms: number, minMs: number, wakes: (reason: string) => boolean): Promise<void> {
    const early = new AbortController();
    const onClose = () => early.abort();
    this.#closed.signal.addEventListener('abort', onClose, { once: true });
    try {
      await clock.sleep(Math.min(ms, minMs), early.signal);
      if (early.signal.aborted || ms <= minMs || [...this.#pending].some(wakes)) return;
      this.#onNotify = (reason) => {
        if (wakes(reason)) early.abort();
      };
      await clock.sleep(ms - minMs, early.signal);
    } finally {
      this.#onNotify = undefined;
      this.#closed.signal.removeEventListener('abort', onClose);
    }
  }

  /** Yields the reasons gathered since the last pass; waits while there are none. */
  async *[Symbol.asyncIterator](): AsyncGenerator<string[]> {
    while (!this.#closed.signal.aborted) {
      if (this.#pending.size === 0) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        this.#wake = undefined;
        continue;
      }
      const reasons = [...this.#pending];
      this.#pending.clear();
      yield reasons;
    }
  }
}
