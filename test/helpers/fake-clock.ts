// A clock for unit tests: time moves only when a test says so.
import type { Clock } from '../../agent/core/clock.js';

export const T0 = 1_700_000_000_000;

/** Time moves only when a test says so; sleepers wake in order, with the event loop drained in between. */
export class FakeClock implements Clock {
  t = T0;
  #timers: { at: number; seq: number; wake: () => void }[] = [];
  #seq = 0;

  now(): number {
    return this.t;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const timer = { at: this.t + ms, seq: this.#seq++, wake: () => resolve() };
      this.#timers.push(timer);
      signal?.addEventListener('abort', () => {
        this.#timers = this.#timers.filter((x) => x !== timer);
        resolve();
      }, { once: true });
    });
  }

  get pending(): number {
    return this.#timers.length;
  }

  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const due = this.#timers.filter((x) => x.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((x) => x !== due);
      this.t = due.at;
      due.wake();
    }
    this.t = end;
    await settle();
  }
}

/** Lets promise chains and setImmediate callbacks run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

