// One health state per app instance of this node: starting → healthy ⇄ unhealthy, and stopped while its
// container does not run. Docker's semantics for interval, timeout, retries and start period; http, tcp
// and grpc checks are probed here on the injected clock, an exec check is Docker's own (its verdict is
// authoritative), and an instance without a check is healthy as soon as it runs.
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import type { HealthCheck } from '../core/model/model.js';
import type { ProbedCheck, ProbeResult, ProbeRunner } from './probes.js';

export type HealthState = 'starting' | 'healthy' | 'unhealthy' | 'stopped';

/** An instance the agent wants on this node. `address` is where it is probed (and registered). */
export interface TrackedInstance {
  key: string;
  service: string;
  version: string;
  address: string;
  port: number;
  health?: HealthCheck;
}

/** What the Docker observer knows of the instance's container. */
export interface ContainerStatus {
  running: boolean;
  /** Docker's State.StartedAt (ISO text, or ms since the epoch). A new value while running is a restart. */
  startedAt?: string | number;
  /** State.Health.Status; absent when the container has no Docker health check. */
  dockerHealth?: 'starting' | 'healthy' | 'unhealthy';
}

export interface InstanceHealth {
  key: string;
  state: HealthState;
  /** Clock time (ms) of the last state change. */
  since: number;
  /** Consecutive failed probes that counted (start-period failures do not). */
  failures: number;
  detail: string;
}

export type HealthListener = (key: string, state: HealthState, since: number) => void;

/** The key one instance is tracked (and registered) under: one compose service per version on a node. */
export function instanceKey(service: string, version: string): string {
  return `${service}/${version}`;
}

interface Item {
  spec: TrackedInstance;
  specText: string;
  health: InstanceHealth;
  /** Whether the item has seen its container running since it was (re)set. */
  running: boolean;
  /** When the current run of the container started (clock ms): the start period counts from here. */
  startedAtMs: number;
  loop?: AbortController;
}

export class HealthTracker {
  #items = new Map<string, Item>();
  #containers = new Map<string, ContainerStatus>();
  #listeners = new Set<HealthListener>();

  constructor(private readonly probes: ProbeRunner, private readonly clock: Clock, private readonly log: Logger) {}

  /** Calls `listener` on every state change; returns the function that unsubscribes it. */
  onChange(listener: HealthListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * The instances wanted on this node, the whole list each pass: new ones are added (state starting), gone
   * ones stop being probed (reported once as stopped), changed ones (target or check) start over.
   */
  setInstances(list: readonly TrackedInstance[]): void {
    const wanted = new Map(list.map((i) => [i.key, i]));
    for (const [key, item] of this.#items) {
      if (wanted.has(key)) continue;
      this.#stopLoop(item);
      this.probes.release(key);
      this.#items.delete(key);
      this.#set(item, 'stopped', 'no longer wanted on this node');
    }
    for (const key of this.#containers.keys()) if (!wanted.has(key)) this.#containers.delete(key);
    for (const spec of wanted.values()) {
      const specText = JSON.stringify([spec.service, spec.version, spec.address, spec.port, spec.health ?? null]);
      const item = this.#items.get(spec.key);
      if (item?.specText === specText) continue;
      if (item) {
        this.#stopLoop(item);
        this.probes.release(spec.key);
        item.spec = spec;
        item.specText = specText;
        item.running = false;
        this.#set(item, 'starting', 'target or check changed');
        this.#evaluate(item, false);
      } else {
        const fresh: Item = { spec, specText, running: false, startedAtMs: this.clock.now(), health: { key: spec.key, state: 'starting', since: this.clock.now(), failures: 0, detail: 'waiting for its container' } };
        this.#items.set(spec.key, fresh);
        this.#evaluate(fresh, false);
      }
    }
  }

  /** From the Docker observer (events and lists). Missing fields keep their last value while the container runs. */
  containerUpdate(key: string, status: ContainerStatus): void {
    const prev = this.#containers.get(key);
    const stillRunning = status.running && prev?.running === true;
    const next: ContainerStatus = { running: status.running };
    const startedAt = status.startedAt ?? (stillRunning ? prev?.startedAt : undefined);
    if (startedAt !== undefined) next.startedAt = startedAt;
    const dockerHealth = status.dockerHealth ?? (stillRunning ? prev?.dockerHealth : undefined);
    if (dockerHealth !== undefined) next.dockerHealth = dockerHealth;
    this.#containers.set(key, next);
    // Docker may restart a container without us seeing it stop (a missed event): a new start time says so.
    const before = stillRunning ? prev?.startedAt : undefined;
    const restarted = before !== undefined && status.startedAt !== undefined && startMs(before) !== startMs(status.startedAt);
    const item = this.#items.get(key);
    if (item) this.#evaluate(item, restarted);
  }

  snapshot(): Map<string, InstanceHealth> {
    return new Map([...this.#items].map(([k, item]) => [k, { ...item.health }]));
  }

  /** Stops every probe loop (the agent is shutting down). */
  stop(): void {
    for (const [key, item] of this.#items) {
      this.#stopLoop(item);
      this.probes.release(key);
    }
  }

  #evaluate(item: Item, restarted: boolean): void {
    const c = this.#containers.get(item.spec.key);
    if (!c) return; // nothing known yet: stays starting, unprobed
    if (!c.running) {
      item.running = false;
      item.health.failures = 0;
      this.#stopLoop(item);
      this.#set(item, 'stopped', 'container not running');
      return;
    }
    const check = item.spec.health;
    if (restarted || !item.running) {
      item.running = true;
      item.health.failures = 0;
      item.startedAtMs = c.startedAt !== undefined ? startMs(c.startedAt) : this.clock.now();
      if (!Number.isFinite(item.startedAtMs)) item.startedAtMs = this.clock.now();
      // A check of ours gives the verdict; without one (or with Docker's) the container's state does.
      if (check && check.kind !== 'exec') {
        this.#set(item, 'starting', restarted ? 'container restarted' : 'container running; probing');
        this.#startLoop(item, check);
      }
    }
    if (!check) this.#set(item, 'healthy', 'running (no health check)');
    else if (check.kind === 'exec') this.#set(item, c.dockerHealth ?? 'starting', `Docker health: ${c.dockerHealth ?? 'not reported yet'}`);
  }

  #startLoop(item: Item, check: ProbedCheck): void {
    this.#stopLoop(item);
    const ac = new AbortController();
    item.loop = ac;
    void this.#probeLoop(item, check, ac.signal).catch((err: unknown) => this.log.error('health probe loop failed', { instance: item.spec.key, error: String(err) }));
  }

  #stopLoop(item: Item): void {
    item.loop?.abort();
    item.loop = undefined;
  }

  // First probe at once (as Consul and Nomad do), then one interval after each probe ends (as Docker does).
  async #probeLoop(item: Item, check: ProbedCheck, signal: AbortSignal): Promise<void> {
    const { intervalMs, timeoutMs } = check.timing;
    while (!signal.aborted) {
      const result = await this.#probeOnce(item.spec, check, timeoutMs);
      if (signal.aborted) return;
      this.#record(item, check, result);
      await this.clock.sleep(intervalMs, signal);
    }
  }

  /** The probe, cut off on the tracker's clock at its timeout whatever the probe runner does. */
  async #probeOnce(spec: TrackedInstance, check: ProbedCheck, timeoutMs: number): Promise<ProbeResult> {
    const timer = new AbortController();
    const timedOut = this.clock.sleep(timeoutMs, timer.signal).then((): ProbeResult => ({ ok: false, detail: `probe timed out after ${timeoutMs} ms` }));
    const probed = this.probes.probe(spec.key, spec.address, spec.port, check, timeoutMs).catch((err: unknown): ProbeResult => ({ ok: false, detail: `probe failed: ${(err as Error)?.message ?? String(err)}` }));
    try {
      return await Promise.race([probed, timedOut]);
    } finally {
      timer.abort();
    }
  }

  // Docker: `retries` consecutive failures make it unhealthy; during the start period a failure does not
  // count while the instance is still starting, and a success makes it healthy at once.
  #record(item: Item, check: ProbedCheck, r: ProbeResult): void {
    const h = item.health;
    if (r.ok) {
      h.failures = 0;
      this.#set(item, 'healthy', r.detail);
      return;
    }
    const inStartPeriod = h.state === 'starting' && this.clock.now() < item.startedAtMs + check.timing.startPeriodMs;
    if (!inStartPeriod) h.failures++;
    h.detail = inStartPeriod ? `${r.detail} (in start period: not counted)` : r.detail;
    if (h.failures >= Math.max(1, check.timing.retries)) this.#set(item, 'unhealthy', r.detail);
  }

  #set(item: Item, state: HealthState, detail: string): void {
    const h = item.health;
    h.detail = detail;
    if (h.state === state) return;
    const from = h.state;
    h.state = state;
    h.since = this.clock.now();
    this.log.info('instance health changed', { instance: item.spec.key, from, to: state, detail });
    for (const l of this.#listeners) {
      try {
        l(item.spec.key, state, h.since);
      } catch (err) {
        this.log.error('health listener threw', { instance: item.spec.key, error: String(err) });
      }
    }
  }
}

function startMs(t: string | number): number {
  return typeof t === 'number' ? t : Date.parse(t);
}
