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
  /** Instances last deregistered (not asked again for the next state that is not healthy either). */
  #deregistered = new Set<string>();

  constructor(private readonly tracker: HealthTracker, private readonly registry: RegistryWriter, private readonly address: string, private readonly log: Logger, private readonly now: () => number) {
    tracker.onChange((key, state, since) => void this.#changed(key, state, since));
  }

  /** Every pass: the apps placed on this node and what Docker shows of their containers. */
  update(apps: AppWorkload[], containers: ContainerInfo[]): void {
    this.#apps = new Map(apps.map((a) => [instanceKey(a.service, a.version), a]));
    const wanted: TrackedInstance[] = apps.map((a) => ({ key: instanceKey(a.service, a.version), service: a.service, version: a.version, address: this.address, port: a.port, ...(a.health ? { health: a.health } : {}) }));
    this.tracker.setInstances(wanted);
    const byKey = new Map<string, ContainerInfo[]>();
    for (const c of containers) {
      if (c.role !== 'app' || !c.service || !c.version) continue;
      const key = instanceKey(c.service, c.version);
      byKey.set(key, [...(byKey.get(key) ?? []), c]);
    }
    for (const [key, list] of byKey) {
      const c = this.#instanceContainer(key, list);
      this.#containers.set(key, c.id);
      this.tracker.containerUpdate(key, { running: c.state === 'running', ...(c.startedAt ? { startedAt: c.startedAt } : {}), ...(c.health ? { dockerHealth: c.health } : {}) });
    }
    for (const key of this.#apps.keys()) if (!byKey.has(key)) this.tracker.containerUpdate(key, { running: false });
  }

  /**
   * The container that is the instance, when a listing shows several (a recreate lists the old one, stopped, beside
   * the new one): the running one, the current one first; else the current one; else any.
   */
  #instanceContainer(key: string, list: ContainerInfo[]): ContainerInfo {
    const current = this.#containers.get(key);
    const running = list.filter((c) => c.state === 'running').sort((a, b) => Number(b.id === current) - Number(a.id === current));
    return running[0] ?? list.find((c) => c.id === current) ?? list[0]!;
  }

  /** Docker events act at once, without waiting for the next pass. */
  onEvent(e: DockerEvent): void {
    if (!e.service || !e.version || e.composeService?.endsWith('-envoy')) return;
    const key = instanceKey(e.service, e.version);
    if (!this.#apps.has(key)) return;
    if (e.action === 'die' || e.action === 'stop' || e.action === 'destroy' || e.action === 'kill' || e.action === 'oom') {
      // A recreate destroys the old container after the new one started: that says nothing about the new one
      // (it made a healthy instance flap to stopped and back, with a delete and a put in etcd).
      const current = this.#containers.get(key);
      if (current !== undefined && current !== e.id) return;
      this.tracker.containerUpdate(key, { running: false });
    } else if (e.action === 'start' || e.action === 'restart') {
      this.#containers.set(key, e.id);
      // No start time from the event: its time is not Docker's State.StartedAt (a few ms later), and the next
      // listing's StartedAt then looked like a restart: the new container of a recreate went healthy → starting →
      // healthy. The start period counts from now; the listing brings the exact time.
      this.tracker.containerUpdate(key, { running: true });
    } else if (e.action.startsWith('health_status: ')) {
      const h = e.action.slice('health_status: '.length);
      if (h === 'healthy' || h === 'unhealthy' || h === 'starting') this.tracker.containerUpdate(key, { running: true, dockerHealth: h });
    }
  }

  async #changed(key: string, state: string, since: number): Promise<void> {
    const app = this.#apps.get(key);
    const [service, version] = key.split('/') as [string, string];
    const register = state === 'healthy' && app !== undefined;
    // stopped → starting is no news for the registry. Unknown instances are asked once: an adopted registration goes.
    if (!register && this.#deregistered.has(key)) return;
    if (register) this.#deregistered.delete(key);
    else this.#deregistered.add(key);
    const res = register
      ? await this.registry.register({ service, version, address: this.address, port: app.port, ...(this.#containers.get(key) ? { container: this.#containers.get(key)! } : {}), healthySince: new Date(since || this.now()).toISOString() })
      : await this.registry.deregister(service, version);
    // Said when etcd changed (or could not be written): a stopped instance going to starting deregisters nothing.
    const level = res.changed > 0 || !res.ok ? 'info' : 'debug';
    this.log[level](state === 'healthy' ? 'registered' : 'deregistered', { instance: key, health: state, ok: res.ok, ...(res.error ? { error: res.error } : {}) });
  }
}
