// Start step 6: the node status under the lease, written after every pass and again when sidecars ACK or NACK.
import { hostname } from 'node:os';
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import type { Keys } from '../core/model/keys.js';
import type { NodeLease } from '../adapters/etcd/etcd-lease.js';
import type { Registry } from '../adapters/etcd/etcd-registry.js';
import { StatusWriter } from '../adapters/etcd/status-writer.js';
import type { PassReport } from '../reconcile.js';
import type { Registration } from '../health/registration.js';
import type { ContainerLogs } from '../adapters/docker/docker-observer.js';
import { ContainerProblems, sidecarStatus, type ContainerProblem } from '../xds/sidecar-status.js';
import type { Xds } from './start-xds.js';
import type { LoopHandle } from './loop-handle.js';
import { meshletVersion } from '../version.js';

// ACKs and NACKs change the status; many arrive together after a push, so they are written at most every 200 ms.
const ADS_STATUS_DELAY_MS = 200;

export interface StatusOptions {
  etcd: Etcd3;
  keys: Keys;
  node: string;
  lease: NodeLease;
  leaseTtl: number;
  xds: Pick<Xds, 'server' | 'publisher'>;
  registry: Registry;
  registration: Registration;
  /** Log tails of troubled containers. */
  logs: ContainerLogs;
  loop: LoopHandle;
  clock: Clock;
  log: Logger;
}

export interface StatusReporting {
  status: StatusWriter;
  /** The loop's report hook: registration first, then the status. */
  report(r: PassReport): Promise<void>;
  stop(): void;
}

export function reportStatus(o: StatusOptions): StatusReporting {
  const status = new StatusWriter(o.etcd, o.keys.nodeStatus(o.node), o.lease.id, o.clock, o.log);
  const problems = new ContainerProblems(o.logs, () => o.clock.now());
  let containerProblems: ContainerProblem[] = [];
  let lastReport: PassReport | undefined;

  const writeStatus = async (r: PassReport) => {
    const xds = o.xds.publisher.clientStatus(o.xds.server.clients());
    await status.write({
      node: o.node,
      agentVersion: meshletVersion(),
      host: hostname(),
      pid: process.pid,
      lease: o.lease.id,
      leaseTtl: o.leaseTtl,
      desiredRevision: r.desiredRevision,
      appliedRevision: r.appliedRevision,
      lastApply: r.lastApply,
      rejected: r.rejected.map((i) => ({ key: i.doc.source, kind: i.doc.kind, name: i.doc.name, path: i.path, message: i.message })),
      composeRuns: r.composeRuns,
      workloads: r.plan ? Object.keys(r.plan.render.bootstraps) : [],
      drained: o.registry.drained,
      registered: o.registry.current().map((i) => `${i.service}/${i.version}`),
      xds,
      xdsErrors: o.xds.publisher.errors(),
      sidecars: sidecarStatus(o.node, r.plan?.render.adminPorts ?? o.loop.state?.adminPorts ?? {}, xds),
      containers: containerProblems,
    });
  };
  const report = async (r: PassReport) => {
    lastReport = r;
    if (r.plan) o.registration.update(r.plan.apps, r.containers);
    containerProblems = await problems.describe(r.containers).catch((err: Error) => {
      o.log.warn('cannot describe the containers that are down', { error: err.message });
      return containerProblems;
    });
    await writeStatus(r);
  };

  let timer: NodeJS.Timeout | undefined;
  const offAds = o.xds.server.on(() => {
    timer ??= setTimeout(() => {
      timer = undefined;
      if (lastReport) void writeStatus(lastReport);
    }, ADS_STATUS_DELAY_MS);
  });
  const stop = () => {
    offAds();
    if (timer) clearTimeout(timer);
    status.stop();
  };
  return { status, report, stop };
}
