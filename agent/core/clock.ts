// Time is injected (STYLE 5): tests pass a fake clock, the agent passes systemClock.

export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const t = setTimeout(done, ms);
      function done() {
        signal?.removeEventListener('abort', done);
        clearTimeout(t);
        resolve();
      }
      signal?.addEventListener('abort', done, { once: true });
    }),
};

/** Capped exponential backoff: 200 ms, 400 ms, … up to `maxMs`. */
export function backoffMs(attempt: number, maxMs = 10_000, baseMs = 200): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 20));
}

/**
 * `ms` spread by ±`spread` (a share of it) with `random` in [0, 1), never above `capMs`: agents that failed
 * together (a dockerd restart, an etcd outage) do not retry in step.
 */
export function jittered(ms: number, capMs: number, random: () => number = Math.random, spread = 0.2): number {
  return Math.min(capMs, Math.round(ms * (1 - spread + 2 * spread * random())));
}
