// What a soak run counts, and its report: one JSON line per figure, what differed on stderr.

export class Tally {
  readonly faults = new Map<string, number>();
  readonly recoveries = new Map<string, number[]>();
  /** How long one observation and check of every invariant took: the resolution of the recovery times. */
  readonly observeMs: number[] = [];
  readonly requests = new Map<string, { total: number; failed: number; samples: string[] }>();
  checks = { passed: 0, failed: 0 };
  recreates = { expected: 0, unexpected: 0 };
  /** Agent exits with code 4 while starting (etcd or Docker unreachable): restarted, as systemd would. */
  startExits = 0;
  /** Every invariant that did not hold, with the fault it followed: the run fails if there is any. */
  readonly problems: string[] = [];

  fault(label: string): void {
    this.faults.set(label, (this.faults.get(label) ?? 0) + 1);
  }

  recovered(label: string, ms: number): void {
    this.recoveries.set(label, [...(this.recoveries.get(label) ?? []), ms]);
  }

  /** `failures`: the failed requests' answers (status 0: none); a few distinct ones are kept as samples. */
  traffic(label: string, total: number, failed: number, failures: { status: number; body: string }[] = []): void {
    const r = this.requests.get(label) ?? { total: 0, failed: 0, samples: [] };
    for (const f of failures) {
      const s = `${f.status} ${f.body.trim().slice(0, 80)}`;
      if (r.samples.length < 3 && !r.samples.includes(s)) r.samples.push(s);
    }
    this.requests.set(label, { total: r.total + total, failed: r.failed + failed, samples: r.samples });
  }

  observed(ms: number): void {
    this.observeMs.push(Math.round(ms));
  }

  problem(text: string): void {
    this.problems.push(text);
  }

  get ok(): boolean {
    return this.problems.length === 0 && this.checks.failed === 0 && this.recreates.unexpected === 0;
  }

  lines(extra: Record<string, unknown>): string[] {
    const out = [JSON.stringify({ name: 'soak faults', unit: 'count', byKind: Object.fromEntries([...this.faults].sort()), n: sum([...this.faults.values()]), ...extra })];
    out.push(JSON.stringify({ name: 'soak checks', unit: 'count', passed: this.checks.passed, failed: this.checks.failed }));
    out.push(JSON.stringify({ name: 'soak container recreates', unit: 'count', expected: this.recreates.expected, unexpected: this.recreates.unexpected }));
    out.push(JSON.stringify({ name: 'soak agent exits at start (code 4, etcd or Docker unreachable; restarted after 2 s)', unit: 'count', value: this.startExits }));
    for (const [label, r] of [...this.requests].sort()) {
      out.push(JSON.stringify({ name: `soak failed requests during ${label}`, unit: 'requests', failed: r.failed, total: r.total, ...(r.samples.length ? { samples: r.samples } : {}) }));
    }
    for (const [label, ms] of [...this.recoveries].sort()) {
      out.push(JSON.stringify({ name: `soak recovery after ${label}`, unit: 'ms', p50: percentile(ms, 50), p99: percentile(ms, 99), n: ms.length }));
    }
    out.push(JSON.stringify({ name: 'soak one observation of every invariant (recovery times are at this resolution, plus 50 ms in the first 2 s, 200 ms after)', unit: 'ms', p50: percentile(this.observeMs, 50), p99: percentile(this.observeMs, 99), n: this.observeMs.length }));
    out.push(JSON.stringify({ name: 'soak invariants', unit: 'count', failed: this.problems.length, ok: this.ok }));
    return out;
  }
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** Nearest-rank percentile. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}
