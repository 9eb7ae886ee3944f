// Logs a run of failures once per state change: the first failure and a change of reason at its level, the
// repeats at debug (with a summary at most every few minutes), and the recovery once, with the count and how long.
// Without it a Docker outage logged a "pass failed" error for every pass (33 in 30 s, 600 under a trigger storm).
import type { Clock } from './core/clock.js';
import type { Logger } from './core/logger.js';

export interface StreakOptions {
  /** Level of the first failure and of a change of reason. */
  level: 'error' | 'warn';
  /** A repeat is summarised (count, duration) at most this often; 0: never. */
  summaryEveryMs?: number;
}

const DEFAULT_SUMMARY_MS = 5 * 60_000;

interface Run {
  /** What makes two failures "the same": the failed step and its message. */
  key: string;
  line: string;
  fields: Record<string, unknown>;
  /** Failures of this reason in a row, and of every reason since the last success. */
  count: number;
  total: number;
  since: number;
  /** When the streak began (its first failure, whatever the reason). */
  began: number;
  lastLoggedAt: number;
}

export class FailureStreak {
  #run: Run | undefined;

  constructor(private readonly clock: Clock, private readonly log: Logger, private readonly opts: StreakOptions) {}

  /** Failures since the last success (0: not failing). */
  get failures(): number {
    return this.#run?.total ?? 0;
  }

  /** Counts one failure; logs it if it is the first, or a reason other than the last one's, or a summary is due. */
  failed(key: string, line: string, fields: Record<string, unknown>): void {
    const now = this.clock.now();
    const run = this.#run;
    if (run?.key === key) {
      run.count++;
      run.total++;
      const every = this.opts.summaryEveryMs ?? DEFAULT_SUMMARY_MS;
      if (every > 0 && now - run.lastLoggedAt >= every) {
        run.lastLoggedAt = now;
        this.log.warn(`${line} (still)`, { ...fields, failures: run.total, forMs: now - run.began });
      } else {
        this.log.debug(`${line} (again)`, { ...fields, failures: run.total });
      }
      return;
    }
    // A first failure, or another reason: said once, with what came before.
    const previous = run ? { previous: { ...run.fields, failures: run.count, forMs: now - run.since } } : {};
    this.log[this.opts.level](line, { ...fields, ...previous });
    this.#run = { key, line, fields, count: 1, total: (run?.total ?? 0) + 1, since: now, began: run?.began ?? now, lastLoggedAt: now };
  }

  /** A success: if failures came before, one line says how many and for how long. */
  recovered(line: string, fields: Record<string, unknown> = {}): void {
    const run = this.#run;
    if (!run) return;
    this.#run = undefined;
    this.log.info(line, { ...fields, failures: run.total, forMs: this.clock.now() - run.began, lastError: run.key });
  }
}
