// Coalesces the reasons to run a pass (etcd, Docker events, template edits, timers) into one pending pass.

export class Triggers {
  #pending = new Set<string>();
  #wake: (() => void) | undefined;
  #closed = false;

  notify(reason: string): void {
    if (this.#closed) return;
    this.#pending.add(reason);
    this.#wake?.();
  }

  close(): void {
    this.#closed = true;
    this.#wake?.();
  }

  /** Yields the reasons gathered since the last pass; waits while there are none. */
  async *[Symbol.asyncIterator](): AsyncGenerator<string[]> {
    while (!this.#closed) {
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
