// Time and logging are injected (STYLE 5): tests pass fakes, the agent passes these.

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

export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
}

/** One JSON object per line on stderr (journald keeps it as is). */
export function jsonLogger(level: 'debug' | 'info' = 'info', write: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Logger {
  const emit = (lvl: string) => (msg: string, fields: Record<string, unknown> = {}) => write(JSON.stringify({ time: new Date().toISOString(), level: lvl, msg, ...fields }));
  return { info: emit('info'), warn: emit('warn'), error: emit('error'), debug: level === 'debug' ? emit('debug') : () => {} };
}

export const silentLogger: Logger = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} };

/** Capped exponential backoff: 200 ms, 400 ms, … up to `maxMs`. */
export function backoffMs(attempt: number, maxMs = 10_000, baseMs = 200): number {
  return Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 20));
}
