// The agent daemon: a short list of start steps, each returning what it started and its own stop, then
// one shutdown that runs those stops in reverse order (nomad's alloc runner hooks).
import { join, resolve } from 'node:path';
import type { Etcd3 } from 'etcd3';
import type { Clock } from './core/clock.js';
import type { Logger } from './core/logger.js';
import { keys, type Keys } from './core/model/keys.js';
import { projectName } from './core/model/ids.js';
import type { PortRange } from './core/render/admin-ports.js';
import { createEtcd, type EtcdConnection } from './adapters/etcd/etcd-client.js';
import type { NodeLease } from './adapters/etcd/etcd-lease.js';
import type { EtcdDesiredSource } from './adapters/etcd/etcd-source.js';
import type { Registry } from './adapters/etcd/etcd-registry.js';
import type { StatusWriter } from './adapters/etcd/status-writer.js';
import { StateStore } from './adapters/files/state-store.js';
import { cachedTemplates, DEFAULT_TEMPLATES_DIR } from './adapters/files/templates.js';
import type { ComposeMode } from './adapters/docker/compose-runner.js';
import type { HealthTracker } from './health/health-tracker.js';
import type { Reconciler, ReconcilerOptions } from './reconcile.js';
import type { SnapshotCache } from './xds/snapshot-cache.js';
import type { AdsServer } from './xds/ads-server.js';
import { Shutdown, reportShutdown } from './start/shutdown.js';
import { StartAborted } from './start/until-reachable.js';
import { joinCluster } from './start/join-cluster.js';
import { holdClaim } from './start/hold-claim.js';
import { makeStateDir } from './start/state-dir.js';
import { startXds } from './start/start-xds.js';
import { connectDocker, realDocker, type DockerAccess } from './start/connect-docker.js';
import { startRegistration } from './start/start-registration.js';
import { openEtcdInputs, watchInputs } from './start/watch-inputs.js';
import { reportStatus } from './start/report-status.js';
import { startLoop } from './start/start-loop.js';
import { LoopHandle } from './start/loop-handle.js';

export interface AgentOptions {
  node: string;
  etcd: EtcdConnection;
  stateDir: string;
  advertiseAddress: string;
  /** This node's locality (for localityLbSetting); absent: region `meshlet`, zone the node's name. */
  region?: string;
  zone?: string;
  xdsPort: number;
  /** The domain of FQDN hosts (--cluster-domain; default cluster.local). */
  clusterDomain?: string;
  compose: ComposeMode;
  sidecarImage: string;
  templatesDir?: string;
  leaseTtl: number;
  adminPorts: PortRange;
  /** Seconds between drift checks when nothing else happens. */
  resyncInterval: number;
  dockerHost?: string;
}

/** The outside systems the agent opens; tests pass fakes. */
export interface AgentOutside {
  etcd(conn: EtcdConnection): Etcd3;
  docker: DockerAccess;
}

export const realOutside: AgentOutside = { etcd: createEtcd, docker: realDocker };

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

/**
 * Starts every part in order. A failure (or the signal) after the lease was granted gives back what was
 * taken (claim, lease, xDS port, timers) before the error goes on to cli.ts, which picks the exit code.
 */
export async function startAgent(opts: AgentOptions, clock: Clock, log: Logger, signal: AbortSignal, outside: AgentOutside = realOutside): Promise<RunningAgent> {
  const k = keys(opts.etcd.prefix);
  const project = projectName(opts.node);
  const { stateDir, store, saved, templatesDir } = await openStateDir(opts, clock, log);
  const shutdown = new Shutdown();
  const checkpoint = (next: string) => {
    if (signal.aborted) throw new StartAborted(`starting: ${next}`);
  };
  try {
    const etcd = outside.etcd({
      ...opts.etcd,
      retries: 0,
      members: {
        down: (member, reason) => log.warn('etcd member down; calls and watches go to the others', { member, reason }),
        up: (member) => log.info('etcd member answers again', { member }),
      },
    });
    shutdown.add('etcd client', () => etcd.close());
    const on = { etcd, keys: k, node: opts.node, clock, log };
    const cluster = shutdown.push('lease and node claim', await joinCluster({ ...on, leaseTtl: opts.leaseTtl, savedLease: saved.leaseId, stateDir, endpoints: opts.etcd.endpoints.join(','), signal }));
    shutdown.push('state dir', await makeStateDir(stateDir));
    log.info('agent started', { node: opts.node, lease: cluster.id, leaseAdopted: cluster.adopted, project, stateDir });
    checkpoint('xDS');
    const xds = shutdown.push('xDS server', await startXds(opts.xdsPort, clock, log));
    checkpoint('Docker');
    const host = shutdown.push('docker', await connectDocker(opts.compose, opts.dockerHost, clock, outside.docker));
    const loop = new LoopHandle(log);
    const health = shutdown.push('registration', await startRegistration({ ...on, lease: cluster.id, adopted: cluster.adopted, advertiseAddress: opts.advertiseAddress, ...localityOpts(opts), notify: (r) => loop.notify(r) }));
    // Registry anti-entropy: a watch event that no longer shows this node's keys as written, and every drift
    // check, read them back; what someone else deleted or changed is put back.
    const inputs = openEtcdInputs(etcd, k, loop, clock, log, (seen) => {
      if (!health.registry.heldIn(seen)) void health.registry.repair('registry watch');
    }, { node: opts.node, current: () => health.registry.current() });
    const status = shutdown.push('status', reportStatus({ ...on, lease: cluster.lease, leaseTtl: opts.leaseTtl, xds, registry: health.registry, registration: health.registration, logs: host.docker, loop }));
    const templates = cachedTemplates(templatesDir);
    const { reconciler } = shutdown.push('loop', await startLoop({
      options: loopOptions(opts, project, stateDir, k), lease: cluster.id, etcd: inputs, docker: host.docker, compose: host.compose,
      templates: templates.get, state: store, xds, report: status.report, clock, log,
    }));
    loop.attach(reconciler);
    shutdown.push('node claim', holdClaim({
      node: opts.node, lease: cluster.lease, claim: cluster.claim, reconciler, registry: health.registry, status: status.status,
      remember: (lease) => {
        reconciler.state.leaseId = lease;
        void store.save(reconciler.state);
      },
      checkEveryMs: opts.leaseTtl * 1000, clock, log,
    }));
    shutdown.push('inputs', watchInputs(loop, {
      etcd: inputs, docker: host.docker, project, onDockerEvent: (e) => health.registration.onEvent(e),
      folders: { templates: templatesDir, compose: join(stateDir, 'compose') }, onTemplatesChanged: templates.invalidate,
      resyncInterval: opts.resyncInterval, onDriftCheck: () => void health.registry.repair('drift check'), clock, log,
    }));
    const stop = async () => {
      // No lease is granted once stop was asked, however long the other steps take (a frozen etcd can make
      // the old one expire meanwhile): the keepalive ends now, and the step that stops it later just waits for it.
      void cluster.lease.stop();
      reportShutdown(log, await shutdown.run('stop'), 'agent stopped; containers and registrations are left in place until the lease expires');
    };
    return { reconciler, registry: health.registry, tracker: health.tracker, xds: { cache: xds.cache, server: xds.server, port: xds.port }, lease: cluster.lease, source: inputs.source, status: status.status, etcd, stop };
  } catch (err) {
    if (!(err instanceof StartAborted)) log.error('the agent cannot start; giving back what it took', { error: (err as Error).message });
    const failures = await shutdown.run('abandon');
    if (failures.length > 0) log.warn('giving back what the start took failed in part', { failures });
    throw err;
  }
}

/** Reads what the last run left (nothing yet is created: see makeStateDir). */
async function openStateDir(opts: AgentOptions, clock: Clock, log: Logger): Promise<{ stateDir: string; store: StateStore; saved: Awaited<ReturnType<StateStore['load']>>; templatesDir: string }> {
  const stateDir = resolve(opts.stateDir);
  const store = new StateStore(stateDir, { log, now: () => clock.now() });
  return { stateDir, store, saved: await store.load(opts.node), templatesDir: opts.templatesDir ?? DEFAULT_TEMPLATES_DIR };
}

function loopOptions(opts: AgentOptions, project: string, stateDir: string, k: Keys): ReconcilerOptions {
  return { node: opts.node, project, stateDir, prefix: k.prefix, advertiseAddress: opts.advertiseAddress, sidecarImage: opts.sidecarImage, xdsPort: opts.xdsPort, adminPorts: opts.adminPorts, ...localityOpts(opts), ...(opts.clusterDomain ? { clusterDomain: opts.clusterDomain } : {}) };
}

function localityOpts(o: { region?: string; zone?: string }): { region?: string; zone?: string } {
  return { ...(o.region !== undefined ? { region: o.region } : {}), ...(o.zone !== undefined ? { zone: o.zone } : {}) };
}
