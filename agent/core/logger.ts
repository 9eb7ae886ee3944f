// Logging is injected (STYLE 5): tests pass silentLogger or a recording one, the agent passes jsonLogger.

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
