// One shutdown for everything a start took: steps run in reverse order of start, every step runs,
// failures are reported together (nomad's destroy hooks). A failed start abandons instead of stopping.
import type { Logger } from '../core/logger.js';

export interface CleanupStep {
  name: string;
  /** A clean stop (SIGTERM): leave containers and registrations for the next agent. */
  stop: () => unknown;
  /** After a failed start: give back what would otherwise stay (default: the same as stop). */
  abandon?: () => unknown;
}

/** What every start step returns beside what it started. */
export interface Stoppable {
  stop(): unknown;
  abandon?(): unknown;
}

export type ShutdownMode = 'stop' | 'abandon';

export class Shutdown {
  #steps: CleanupStep[] = [];
  #done: Promise<string[]> | undefined;

  /** Registers a cleanup; the last one added runs first. */
  add(name: string, stop: () => unknown, abandon?: () => unknown): void {
    this.#steps.push({ name, stop, ...(abandon ? { abandon } : {}) });
  }

  /** Registers what a start step returned (its own stop, and abandon if it has one); returns it unchanged. */
  push<T extends Stoppable>(name: string, started: T): T {
    this.add(name, () => started.stop(), started.abandon ? () => started.abandon!() : undefined);
    return started;
  }

  /** Runs every step once (a second call waits for the first); returns the failures as `step: message`. */
  run(mode: ShutdownMode = 'stop'): Promise<string[]> {
    this.#done ??= this.#runAll(mode);
    return this.#done;
  }

  async #runAll(mode: ShutdownMode): Promise<string[]> {
    const failures: string[] = [];
    for (const step of [...this.#steps].reverse()) {
      try {
        await (mode === 'abandon' && step.abandon ? step.abandon() : step.stop());
      } catch (err) {
        failures.push(`${step.name}: ${(err as Error).message}`);
      }
    }
    return failures;
  }
}

/** Logs how a shutdown went. */
export function reportShutdown(log: Logger, failures: string[], cleanMessage: string): void {
  if (failures.length > 0) log.warn('shutdown finished with errors', { failures });
  else log.info(cleanMessage);
}

/** One stop made of several cleanups run in this order, all of them; their failures become one error. */
export function runAll(steps: [name: string, fn: () => unknown][]): () => Promise<void> {
  return async () => {
    const failures: string[] = [];
    for (const [name, fn] of steps) {
      try {
        await fn();
      } catch (err) {
        failures.push(`${name}: ${(err as Error).message}`);
      }
    }
    if (failures.length > 0) throw new Error(failures.join('; '));
  };
}
