// A Logger that keeps every line (level, message, fields, clock time) for tests that count or read log lines.
import type { Logger } from '../../agent/core/logger.js';

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  fields: Record<string, unknown>;
  /** Date.now() when logged, or the injected clock's time. */
  at: number;
}

export class RecordingLogger implements Logger {
  readonly lines: LogLine[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  info(msg: string, fields: Record<string, unknown> = {}): void {
    this.lines.push({ level: 'info', msg, fields, at: this.now() });
  }

  warn(msg: string, fields: Record<string, unknown> = {}): void {
    this.lines.push({ level: 'warn', msg, fields, at: this.now() });
  }

  error(msg: string, fields: Record<string, unknown> = {}): void {
    this.lines.push({ level: 'error', msg, fields, at: this.now() });
  }

  debug(msg: string, fields: Record<string, unknown> = {}): void {
    this.lines.push({ level: 'debug', msg, fields, at: this.now() });
  }

  /** Lines at info or above logged at or after `since`, optionally only those whose message matches. */
  since(since: number, msg?: RegExp): LogLine[] {
    return this.lines.filter((l) => l.level !== 'debug' && l.at >= since && (!msg || msg.test(l.msg)));
  }
}
