// Binds health to the registry: each app instance placed on this node is tracked (probes, Docker's health,
// container events) and registered the moment it turns healthy, deregistered the moment it is not.
import type { Logger } from '../core/logger.js';
import type { HealthCheck } from '../core/model/model.js';
import type { ContainerInfo, DockerEvent } from '../adapters/docker/docker-observer.js';
import type { Registry } from '../adapters/etcd/etcd-registry.js';

/** The part of the Registry that Registration writes through (a recording fake in unit tests). */
export type RegistryWriter = Pick<Registry, 'register' | 'deregister'>;
import type { HealthTracker, TrackedInstance } from './health-tracker.js';
import { instanceKey } from './health-tracker.js';

export interface AppWorkload {
  service: string;
  version: string;
  port: number;
  health?: HealthCheck;
}

export class Registration {
  #apps = new Map<string, AppWorkload>();
  #containers = new Map<string, string>();

  constructor(private readonly tracker: HealthTracker, private readonly registry: RegistryWriter, private readonly address: string, private readonly log: Logger, private readonly now: () => number) {
    tracker.onChange((key, state, since) => void this.#changed(key, state, since));
  }

  /** Every pass: the apps placed on this node and what Docker shows of their containers. */
  update(apps: AppWorkload[], containers: ContainerInfo[]): void {
    this.#apps = new Map(apps.map((a) => [instanceKey(a.service, a.version), a]));
    const wanted: TrackedInstance[] = apps.map((a) => ({ key: instanceKey(a.service, a.version), service: a.service, version: a.version, address: this.address, port: a.port, ...(a.health ? { health: a.health } : {}) }));
    this.tracker.setInstances(wanted);
    for (const c of containers) {
      if (c.role !== 'app' || !c.service || !c.version) continue;
      const key = instanceKey(c.service, c.version);
      this.#containers.set(key, c.id);
      this.tracker.containerUpdate(key, { running: c.state === 'running', ...(c.startedAt ? { startedAt: c.startedAt } : {}), ...(c.health ? { dockerHealth: c.health } : {}) });
    }
    for (const key of this.#apps.keys()) {
      if (!containers.some((c) => c.role === 'app' && c.service && c.version && instanceKey(c.service, c.version) === key)) this.tracker.containerUpdate(key, { running: false });
    }
  }

  /** Docker events act at once, without waiting for the next pass. */
  onEvent(e: DockerEvent): void {
    if (!e.service || !e.version || e.composeService?.endsWith('-envoy')) return;
    const key = instanceKey(e.service, e.version);
    if (!this.#apps.has(key)) return;
    if (e.action === 'die' || e.action === 'stop' || e.action === 'destroy' || e.action === 'kill' || e.action === 'oom') {
      this.tracker.containerUpdate(key, { running: false });
    } else if (e.action === 'start' || e.action === 'restart') {
      this.#containers.set(key, e.id);
      this.tracker.containerUpdate(key, { running: true, startedAt: Number(e.timeNano / 1_000_000n) });
    } else if (e.action.startsWith('health_status: ')) {
      const h = e.action.slice('health_status: '.length);
      if (h === 'healthy' || h === 'unhealthy' || h === 'starting') this.tracker.containerUpdate(key, { running: true, dockerHealth: h });
    }
  }

  async #changed(key: string, state: string, since: number): Promise<void> {
    const app = this.#apps.get(key);
    const [service, version] = key.split('/') as [string, string];
    const res = state === 'healthy' && app
      ? await this.registry.register({ service, version, address: this.address, port: app.port, ...(this.#containers.get(key) ? { container: this.#containers.get(key)! } : {}), healthySince: new Date(since || this.now()).toISOString() })
      : await this.registry.deregister(service, version);
    this.log.info(state === 'healthy' ? 'registered' : 'deregistered', { instance: key, health: state, ok: res.ok, ...(res.error ? { error: res.error } : {}) });
  }
}
