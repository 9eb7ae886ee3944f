// Percentiles and the one-JSON-line-per-figure output every benchmark prints.

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx]!;
}

export function report(name: string, unit: string, samples: number[], extra: Record<string, unknown> = {}): void {
  const s = [...samples].sort((a, b) => a - b);
  const round = (x: number) => Math.round(x * 1000) / 1000;
  console.log(JSON.stringify({ name, unit, p50: round(percentile(s, 50)), p99: round(percentile(s, 99)), n: s.length, ...extra }));
}

export async function time<T>(fn: () => T | Promise<T>): Promise<[number, T]> {
  const t0 = process.hrtime.bigint();
  const v = await fn();
  return [Number(process.hrtime.bigint() - t0) / 1e6, v];
}
