// Durations as operators write them (Go/Istio style: "1.5s", "100ms", "1m30s") and as Envoy wants them ("1.500s").

const UNIT_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const PART = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;

/** Milliseconds, or undefined when the text is not a duration. */
export function parseDuration(text: string): number | undefined {
  if (text === '' || text === '0') return text === '0' ? 0 : undefined;
  let ms = 0;
  PART.lastIndex = 0;
  while (PART.lastIndex < text.length) {
    const start = PART.lastIndex;
    const m = PART.exec(text);
    if (!m || m.index !== start) return undefined;
    ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  }
  return Math.round(ms * 1e6) / 1e6;
}

/** Envoy/protobuf JSON form: seconds with up to 9 fractional digits and an "s" suffix. */
export function envoyDuration(ms: number): string {
  const nanos = Math.round(ms * 1e6);
  const seconds = Math.floor(nanos / 1e9);
  const frac = nanos % 1e9;
  if (frac === 0) return `${seconds}s`;
  return `${seconds}.${String(frac).padStart(9, '0').replace(/0+$/, '')}s`;
}

/** Docker Compose form ("1500ms", "2s"). */
export function composeDuration(ms: number): string {
  return Number.isInteger(ms / 1000) ? `${ms / 1000}s` : `${Math.round(ms)}ms`;
}
