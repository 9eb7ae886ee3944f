// Start step 4: health probes and tracker, this node's registry under the lease, the registration that binds
// them, and the watch on the node's drain mark.
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import type { Keys } from '../core/model/keys.js';
import { Registry } from '../adapters/etcd/etcd-registry.js';
import { EtcdDesiredSource } from '../adapters/etcd/etcd-source.js';
import { HealthTracker } from '../health/health-tracker.js';
import { HostProbes } from '../health/probes.js';
import { Registration } from '../health/registration.js';
import { runAll } from './shutdown.js';

export interface RegistrationOptions {
  etcd: Etcd3;
  keys: Keys;
  node: string;
  lease: string;
  /** The lease was taken back after a restart: what etcd holds for this node is adopted, not rewritten. */
  adopted: boolean;
  advertiseAddress: string;
  /** This node's locality, carried in its Instance JSON. */
  region?: string;
  zone?: string;
  /** Asks for a pass (after a drain or undrain). */
  notify: (reason: string) => void;
  clock: Clock;
  log: Logger;
}

export interface Registering {
  registry: Registry;
  tracker: HealthTracker;
  registration: Registration;
  /** Stops probing and writing; registrations stay in etcd until the lease expires. */
  stop(): Promise<void>;
}

function locality(o: { region?: string; zone?: string }): { region?: string; zone?: string } {
  return { ...(o.region !== undefined ? { region: o.region } : {}), ...(o.zone !== undefined ? { zone: o.zone } : {}) };
}

export async function startRegistration(o: RegistrationOptions): Promise<Registering> {
  const registry = new Registry({ etcd: o.etcd, prefix: o.keys.prefix, node: o.node, lease: o.lease, clock: o.clock, log: o.log, ...locality(o) });
  // A restart within the TTL keeps its lease: take over what is registered instead of rewriting it.
  if (o.adopted) await registry.adopt().catch((err) => o.log.warn('cannot read this node\'s registrations', { error: (err as Error).message }));
  const probes = new HostProbes();
  const tracker = new HealthTracker(probes, o.clock, o.log);
  const registration = new Registration(tracker, registry, o.advertiseAddress, o.log, () => o.clock.now());
  const drainKey = o.keys.nodeDrain(o.node);
  const drainWatch = new EtcdDesiredSource(o.etcd, drainKey, () => {
    const drained = drainWatch.current()?.entries.has(drainKey) ?? false;
    if (drained === registry.drained) return;
    o.log.info(drained ? 'node drained: deregistering every instance' : 'node undrained: registering healthy instances');
    void (drained ? registry.drain() : registry.undrain());
    o.notify(drained ? 'drained' : 'undrained');
  }, o.clock, o.log);
  drainWatch.start();
  const stop = runAll([
    ['drain watch', () => drainWatch.stop()],
    ['health probes', () => {
      tracker.stop();
      probes.close();
    }],
    // Registrations stay in etcd until the lease expires: a quick restart is invisible to callers.
    ['registry', () => registry.stop()],
  ]);
  return { registry, tracker, registration, stop };
}
