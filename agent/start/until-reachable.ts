// Start-up retries: an outside system that is away is waited for, with capped backoff, until it answers
// or the agent is told to stop (the abort signal ends the wait and the call in flight at once).
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import { backoffMs } from '../core/clock.js';
import { MeshletError } from '../core/errors.js';

/** Thrown when the abort signal ends a start step; run-agent treats it as a clean stop. */
export class StartAborted extends MeshletError {
  constructor(what: string) {
    super(`stopped while ${what}`);
  }
}

/** Resolves like `p`, or rejects with StartAborted as soon as `signal` aborts (p keeps running, unobserved). */
export function orAbort<T>(p: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
  if (signal.aborted) {
    p.catch(() => {});
    return Promise.reject(new StartAborted(what));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new StartAborted(what));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Retries `fn` with capped backoff until it succeeds; a MeshletError that is not recoverable ends it, so does `signal`. */
export async function untilReachable<T>(what: string, fn: () => Promise<T>, clock: Clock, log: Logger, signal: AbortSignal): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await orAbort(fn(), signal, `waiting: ${what}`);
    } catch (err) {
      if (err instanceof StartAborted) throw err;
      if (err instanceof MeshletError && !err.recoverable) throw err;
      if (signal.aborted) throw new StartAborted(`waiting: ${what}`);
      const wait = backoffMs(attempt, 10_000, 500);
      if (attempt === 1 || attempt % 10 === 0) log.error(`${what}; retrying`, { error: (err as Error).message, retryInMs: wait, attempt });
      await clock.sleep(wait, signal);
      if (signal.aborted) throw new StartAborted(`waiting: ${what}`);
    }
  }
}

/** Rejects if `p` takes longer than `ms`: etcd3 calls have no deadline of their own, and a cleanup must not hang. */
export async function within<T>(ms: number, p: Promise<T>, what: string, clock: Clock): Promise<T> {
  const timer = new AbortController();
  const late = clock.sleep(ms, timer.signal).then(() => {
    if (!timer.signal.aborted) throw new Error(`${what}: no answer within ${ms} ms`);
  });
  try {
    return (await Promise.race([p, late])) as T;
  } finally {
    timer.abort();
  }
}
