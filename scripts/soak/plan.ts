// The soak's fault plan, pure: a seeded generator gives the same faults, with the same parameters, in the same
// order for the same seed (how long a run lasts only decides how many of them are played).

/** mulberry32: small, fast and good enough to pick faults; the whole sequence follows from the seed. */
export class Rng {
  #s: number;

  constructor(seed: number) {
    this.#s = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.#s = (this.#s + 0x6d2b79f5) >>> 0;
    let t = this.#s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)]!;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }
}

/** A new catch-all split of api between v1 and v2 (v2 gets 100 - v1), pushed with `meshlet route` or a plain etcd put. */
export interface RouteChange {
  v1: number;
  via: 'cli' | 'put';
}

export type Fault =
  /** The agent's etcd connection through the proxy: refused, or accepted and never answered, then restored. */
  | { kind: 'etcd-cut'; mode: 'refuse' | 'hold'; ms: number; change?: RouteChange }
  /** etcd itself stopped (SIGSTOP), then thawed (SIGCONT). */
  | { kind: 'etcd-freeze'; ms: number }
  /** The soak's private dockerd stopped (its containers die with it) and started again after downMs. */
  | { kind: 'dockerd-restart'; downMs: number; change?: RouteChange }
  /** The agent SIGKILLed, and started again with the same flags after downMs. */
  | { kind: 'agent-kill'; downMs: number; change?: RouteChange }
  | { kind: 'route-change'; change: RouteChange }
  /** A new env value for one app version (compose service `workload`): that one container is recreated. */
  | { kind: 'env-change'; workload: string };

export type FaultKind = Fault['kind'];

/** What the report groups by: the kind, and the cut's mode. */
export function faultLabel(f: Fault): string {
  return f.kind === 'etcd-cut' ? `etcd-cut/${f.mode}` : f.kind;
}

/** One line for the progress log. */
export function describe(f: Fault): string {
  const change = 'change' in f && f.change && f.kind !== 'route-change' ? ` + route v1=${f.change.v1} via ${f.change.via} meanwhile` : '';
  switch (f.kind) {
    case 'etcd-cut': return `etcd cut (${f.mode}) for ${f.ms} ms${change}`;
    case 'etcd-freeze': return `etcd frozen for ${f.ms} ms`;
    case 'dockerd-restart': return `dockerd restart, down ${f.downMs} ms more${change}`;
    case 'agent-kill': return `agent SIGKILL, restarted after ${f.downMs} ms${change}`;
    case 'route-change': return `route api v1=${f.change.v1},v2=${100 - f.change.v1} via ${f.change.via}`;
    case 'env-change': return `env change of ${f.workload}`;
  }
}

const WEIGHTS: readonly [FaultKind, number][] = [
  ['route-change', 3],
  ['etcd-cut', 2],
  ['etcd-freeze', 2],
  ['agent-kill', 2],
  ['dockerd-restart', 1],
  ['env-change', 1],
];

export interface PlanOptions {
  /** The agent's lease TTL: cuts, freezes and agent downtimes go up to 1.5× it. */
  leaseTtlMs: number;
  /** Compose services whose env an env change may touch. */
  workloads: readonly string[];
}

/** The next fault and how long to let the mesh run quietly after it recovered. */
export function nextFault(rng: Rng, opts: PlanOptions): { fault: Fault; settleMs: number } {
  const total = WEIGHTS.reduce((s, [, w]) => s + w, 0);
  let r = rng.next() * total;
  let kind: FaultKind = WEIGHTS[0]![0];
  for (const [k, w] of WEIGHTS) {
    if ((r -= w) < 0) {
      kind = k;
      break;
    }
  }
  const upTo = Math.round(opts.leaseTtlMs * 1.5);
  const route = (): RouteChange => ({ v1: rng.int(0, 10) * 10, via: rng.pick(['cli', 'put'] as const) });
  const meanwhile = rng.chance(0.3);
  const change = route();
  let fault: Fault;
  switch (kind) {
    case 'etcd-cut': fault = { kind, mode: rng.pick(['refuse', 'hold'] as const), ms: rng.int(1_000, upTo), ...(meanwhile ? { change } : {}) }; break;
    case 'etcd-freeze': fault = { kind, ms: rng.int(1_000, upTo) }; break;
    case 'dockerd-restart': fault = { kind, downMs: rng.int(0, 3_000), ...(meanwhile ? { change } : {}) }; break;
    case 'agent-kill': fault = { kind, downMs: rng.int(0, upTo), ...(meanwhile ? { change } : {}) }; break;
    case 'route-change': fault = { kind, change }; break;
    case 'env-change': fault = { kind, workload: rng.pick(opts.workloads) }; break;
  }
  return { fault, settleMs: rng.int(1_000, 5_000) };
}
