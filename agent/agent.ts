// The agent daemon: wires etcd, the lease, Docker, compose and file watchers to the reconcile loop.
import { mkdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import chokidar from 'chokidar';
import type { Etcd3 } from 'etcd3';
import type { Clock } from './core/clock.js';
import type { Logger } from './core/logger.js';
import type { Instance } from './core/model/model.js';
import { backoffMs } from './core/clock.js';
import { keys } from './core/model/keys.js';
import { projectName } from './core/model/ids.js';
import type { PortRange } from './core/render/admin-ports.js';
import { ConflictError, MeshletError } from './core/errors.js';
import { createEtcd, type EtcdConnection } from './adapters/etcd/etcd-client.js';
import { NodeLease } from './adapters/etcd/etcd-lease.js';
import { claimNode, reclaimNode } from './adapters/etcd/node-claim.js';
import { EtcdDesiredSource } from './adapters/etcd/etcd-source.js';
import { StateStore } from './adapters/files/state-store.js';
import { StatusWriter } from './adapters/etcd/status-writer.js';
import { detectCompose, type ComposeMode } from './adapters/docker/compose-runner.js';
import { DockerApiObserver } from './adapters/docker/docker-observer.js';
import { createDocker } from './adapters/docker/docker.js';
import { DEFAULT_TEMPLATES_DIR, loadTemplates } from './adapters/files/templates.js';
import { Reconciler, type PassReport } from './reconcile.js';
import { Registry } from './adapters/etcd/etcd-registry.js';
import { instancesFromRegistry } from './adapters/etcd/registry-reader.js';
import { HealthTracker } from './health/health-tracker.js';
import { HostProbes } from './health/probes.js';
import { Registration } from './health/registration.js';
import { SnapshotCache } from './xds/snapshot-cache.js';
import { AdsServer } from './xds/ads-server.js';
import { XdsPublisher } from './xds/publisher.js';
import { ContainerProblems, sidecarStatus, type ContainerProblem } from './xds/sidecar-status.js';
import { meshletVersion } from './version.js';

export interface AgentOptions {
  node: string;
  etcd: EtcdConnection;
  stateDir: string;
  advertiseAddress: string;
  xdsPort: number;
  compose: ComposeMode;
  sidecarImage: string;
  templatesDir?: string;
  leaseTtl: number;
  adminPorts: PortRange;
  /** Seconds between drift checks when nothing else happens. */
  resyncInterval: number;
  dockerHost?: string;
}

export interface RunningAgent {
  reconciler: Reconciler;
  xds: { cache: SnapshotCache; server: AdsServer; port: number };
  registry: Registry;
  tracker: HealthTracker;
  lease: NodeLease;
  source: EtcdDesiredSource;
  status: StatusWriter;
  etcd: Etcd3;
  /** Leaves containers and registrations as they are; the lease simply stops being renewed. */
  stop(): Promise<void>;
}

/** Retries `fn` with capped backoff until it succeeds; a MeshletError that is not recoverable ends it. */
async function untilReachable<T>(what: string, fn: () => Promise<T>, clock: Clock, log: Logger, signal: AbortSignal): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof MeshletError && !err.recoverable) throw err;
      if (signal.aborted) throw err;
      const wait = backoffMs(attempt, 10_000, 500);
      if (attempt === 1 || attempt % 10 === 0) log.error(`${what}; retrying`, { error: (err as Error).message, retryInMs: wait, attempt });
      await clock.sleep(wait, signal);
    }
  }
}

export async function startAgent(opts: AgentOptions, clock: Clock, log: Logger, signal: AbortSignal): Promise<RunningAgent> {
  const stateDir = resolve(opts.stateDir);
  await mkdir(join(stateDir, 'compose'), { recursive: true });
  const k = keys(opts.etcd.prefix);
  const project = projectName(opts.node);
  const store = new StateStore(stateDir);
  const saved = await store.load(opts.node);
  const etcd = createEtcd({ ...opts.etcd, retries: 0 });
  const endpoints = opts.etcd.endpoints.join(',');

  const lease = new NodeLease(etcd, opts.leaseTtl, clock, log);
  const { id, adopted } = await untilReachable(`cannot reach etcd at ${endpoints}`, () => lease.start(saved.leaseId), clock, log, signal);
  try {
    await claimNode(etcd, k, opts.node, id);
  } catch (err) {
    if (err instanceof ConflictError && !adopted) await lease.revoke().catch(() => {});
    else await lease.stop();
    etcd.close();
    throw err;
  }
  log.info('agent started', { node: opts.node, lease: id, leaseAdopted: adopted, project, stateDir });

  const registry = new Registry({ etcd, prefix: k.prefix, node: opts.node, lease: id, clock, log });
  // A restart within the TTL keeps its lease: take over what is registered instead of rewriting it.
  if (adopted) await registry.adopt().catch((err) => log.warn('cannot read this node\'s registrations', { error: (err as Error).message }));
  const probes = new HostProbes();
  const tracker = new HealthTracker(probes, clock, log);
  const registration = new Registration(tracker, registry, opts.advertiseAddress, log, () => clock.now());
  let drained = false;

  const cache = new SnapshotCache();
  const ads = new AdsServer({ cache, log, clock });
  let xdsPort: number;
  try {
    xdsPort = await ads.start(opts.xdsPort);
  } catch (err) {
    await lease.stop();
    etcd.close();
    throw new ConflictError(`cannot serve xDS on 127.0.0.1:${opts.xdsPort}: ${(err as Error).message} (is another agent or program using the port? see --xds-port)`);
  }
  const publisher = new XdsPublisher(cache, log);

  const compose = await detectCompose(opts.compose, { dockerHost: opts.dockerHost });
  const docker = new DockerApiObserver(createDocker(opts.dockerHost));
  const templatesDir = opts.templatesDir ?? DEFAULT_TEMPLATES_DIR;
  const status = new StatusWriter(etcd, k.nodeStatus(opts.node), id, log);
  let reconciler!: Reconciler;
  // A change of routes or endpoints reaches the sidecars even while a pass is busy with compose.
  const publishNow = () => void reconciler.publishNow().catch((err: unknown) => log.warn('cannot publish xDS ahead of the pass', { error: (err as Error).message }));
  const source = new EtcdDesiredSource(etcd, k.desired, () => {
    reconciler.triggers.notify('etcd');
    publishNow();
  }, clock, log);
  // Everyone's healthy instances (endpoints for xDS), and this node's drain mark: both snapshot + watch.
  const registrySource = new EtcdDesiredSource(etcd, k.registry, () => {
    reconciler.triggers.notify('registry');
    publishNow();
  }, clock, log);
  const drainKey = k.nodeDrain(opts.node);
  const drainSource = new EtcdDesiredSource(etcd, drainKey, () => {
    const now = drainSource.current()?.entries.has(drainKey) ?? false;
    if (now === drained) return;
    drained = now;
    log.info(drained ? 'node drained: deregistering every instance' : 'node undrained: registering healthy instances');
    void (drained ? registry.drain() : registry.undrain());
    reconciler.triggers.notify(drained ? 'drained' : 'undrained');
  }, clock, log);
  const warnOnce = new Set<string>();
  // Lists made before the registry's first snapshot was read: they hold no endpoints only because nothing was read yet.
  const unread = new WeakSet<Instance[]>();
  const instances = () => {
    const snap = registrySource.current();
    const list = instancesFromRegistry(k.prefix, snap?.entries ?? new Map(), (msg, fields) => {
      const key = `${msg} ${JSON.stringify(fields ?? {})}`;
      if (!warnOnce.has(key)) log.warn(msg, fields);
      warnOnce.add(key);
    });
    if (!snap) unread.add(list);
    return list;
  };

  // Templates are read once and again after any change in their folder (the file watcher below).
  let templatesCache: ReturnType<typeof loadTemplates> | undefined;
  const templates = () => (templatesCache ??= loadTemplates(templatesDir).catch((err) => {
    templatesCache = undefined;
    throw err;
  }));
  let lastReport: PassReport | undefined;
  const problems = new ContainerProblems(docker, () => clock.now());
  let containerProblems: ContainerProblem[] = [];
  const report = async (r: PassReport) => {
    lastReport = r;
    if (r.plan) registration.update(r.plan.apps, r.containers);
    containerProblems = await problems.describe(r.containers).catch((err: Error) => {
      log.warn('cannot describe the containers that are down', { error: err.message });
      return containerProblems;
    });
    await writeStatus(r);
  };
  const writeStatus = async (r: PassReport) => {
    const xds = publisher.clientStatus(ads.clients());
    await status.write({
      node: opts.node,
      agentVersion: meshletVersion(),
      host: hostname(),
      pid: process.pid,
      lease: lease.id,
      leaseTtl: opts.leaseTtl,
      desiredRevision: r.desiredRevision,
      appliedRevision: r.appliedRevision,
      lastApply: r.lastApply,
      rejected: r.rejected.map((i) => ({ key: i.doc.source, kind: i.doc.kind, name: i.doc.name, path: i.path, message: i.message })),
      composeRuns: r.composeRuns,
      workloads: r.plan ? Object.keys(r.plan.render.bootstraps) : [],
      drained,
      registered: registry.current().map((i) => `${i.service}/${i.version}`),
      xds,
      xdsErrors: publisher.errors(),
      sidecars: sidecarStatus(opts.node, r.plan?.render.adminPorts ?? reconciler.state.adminPorts, xds),
      containers: containerProblems,
    });
  };
  // ACKs and NACKs change the status; many arrive together after a push, so they are written at most every 200 ms.
  let xdsStatusTimer: NodeJS.Timeout | undefined;
  const offAds = ads.on(() => {
    xdsStatusTimer ??= setTimeout(() => {
      xdsStatusTimer = undefined;
      if (lastReport) void writeStatus(lastReport);
    }, 200);
  });
  reconciler = new Reconciler(
    { node: opts.node, project, stateDir, prefix: k.prefix, advertiseAddress: opts.advertiseAddress, sidecarImage: opts.sidecarImage, xdsPort: opts.xdsPort, adminPorts: opts.adminPorts },
    {
      source, docker, compose, templates, state: store, instances, report, clock, log,
      // Not before the registry was read: sidecars reconnecting to a restarted agent were sent clusters with no
      // endpoints and answered 503 "no healthy upstream" until the next pass (seen with Envoy 1.40). Its first
      // snapshot triggers a pass that publishes.
      publish: (plan, observed) => {
        if (!unread.has(observed.instances)) publisher.publish(plan.render.snapshots, observed.desired, observed.instances);
      },
    },
  );
  await reconciler.init();
  reconciler.state.leaseId = id;
  await store.save(reconciler.state);

  lease.on('regranted', (newId) => {
    reconciler.state.leaseId = newId;
    void store.save(reconciler.state);
    void reclaimNode(etcd, k, opts.node, newId).catch((err) => log.warn('cannot re-claim the node', { error: (err as Error).message }));
    void status.rebind(newId);
    void registry.rebind(newId);
    reconciler.triggers.notify('lease re-granted');
  });

  const watch = docker.watch(project, {
    event: (e) => {
      registration.onEvent(e);
      reconciler.triggers.notify(`docker ${e.action} ${e.composeService ?? e.id.slice(0, 12)}`);
    },
    resync: () => reconciler.triggers.notify('docker resync'),
    error: (err) => log.warn('docker event feed interrupted; reconnecting', { error: err.message }),
  });
  // Template edits and hand edits of the compose file both start a pass (the latter is then overwritten).
  const files = chokidar.watch([templatesDir, join(stateDir, 'compose')], { ignoreInitial: true, depth: 1 });
  files.on('all', (event, path) => {
    if (typeof path !== 'string' || path.includes('/.')) return;
    if (resolve(path).startsWith(resolve(templatesDir))) templatesCache = undefined;
    reconciler.triggers.notify(`file ${event} ${path}`);
  });
  files.on('error', (err) => log.warn('file watcher error', { error: String(err) }));
  const timer = setInterval(() => reconciler.triggers.notify('drift check'), opts.resyncInterval * 1000);
  timer.unref();

  source.start();
  registrySource.start();
  drainSource.start();
  const loop = reconciler.run();

  const stop = async () => {
    // Every cleanup step runs; failures are reported together (shutdown policy).
    const failures: string[] = [];
    const step = async (name: string, fn: () => unknown) => {
      try {
        await fn();
      } catch (err) {
        failures.push(`${name}: ${(err as Error).message}`);
      }
    };
    clearInterval(timer);
    offAds();
    if (xdsStatusTimer) clearTimeout(xdsStatusTimer);
    await step('triggers', () => reconciler.triggers.close());
    await step('loop', () => loop);
    await step('docker events', () => watch.close());
    await step('file watcher', () => files.close());
    await step('xDS server', () => ads.stop());
    await step('health probes', () => {
      tracker.stop();
      probes.close();
    });
    // Registrations stay in etcd until the lease expires: a quick restart is invisible to callers.
    await step('registry', () => registry.stop());
    await step('etcd watches', () => Promise.all([source.stop(), registrySource.stop(), drainSource.stop()]));
    await step('lease', () => lease.stop());
    await step('etcd client', () => etcd.close());
    if (failures.length > 0) log.warn('shutdown finished with errors', { failures });
    else log.info('agent stopped; containers and registrations are left in place until the lease expires');
  };
  return { reconciler, registry, tracker, xds: { cache, server: ads, port: xdsPort }, lease, source, status, etcd, stop };
}
