// Start step 7: the reconcile loop, built on what the earlier steps started, then running until stopped.
import { statSync } from 'node:fs';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import type { Templates } from '../core/render/render-node.js';
import type { StateStore } from '../adapters/files/state-store.js';
import type { ComposeRunner } from '../adapters/docker/compose-runner.js';
import type { DockerObserver } from '../adapters/docker/docker-observer.js';
import { Reconciler, type PassReport, type ReconcilerOptions } from '../reconcile.js';
import type { EtcdInputs } from './watch-inputs.js';
import type { Xds } from './start-xds.js';

export interface LoopOptions {
  options: ReconcilerOptions;
  lease: string;
  etcd: EtcdInputs;
  docker: Pick<DockerObserver, 'list' | 'missingImages'>;
  compose: Pick<ComposeRunner, 'up' | 'check'>;
  templates: () => Promise<Templates>;
  state: StateStore;
  xds: Pick<Xds, 'publisher'>;
  report: (r: PassReport) => Promise<void>;
  clock: Clock;
  log: Logger;
}

export interface Loop {
  reconciler: Reconciler;
  /** Closes the triggers and waits for the pass in progress to end. */
  stop(): Promise<void>;
}

export async function startLoop(o: LoopOptions): Promise<Loop> {
  const reconciler = new Reconciler(o.options, {
    source: o.etcd.source, docker: o.docker, compose: o.compose, templates: o.templates, state: o.state,
    instances: o.etcd.instances, report: o.report, clock: o.clock, log: o.log, hostFiles: regularFiles,
    // Not before the registry was read: sidecars reconnecting to a restarted agent were sent clusters with no
    // endpoints and answered 503 "no healthy upstream" until the next pass (seen with Envoy 1.40). Its first
    // snapshot triggers a pass that publishes.
    publish: (plan, observed) => {
      if (!o.etcd.beforeRegistryRead(observed.instances)) o.xds.publisher.publish(plan.render.snapshots, observed.desired, observed.instances);
    },
  });
  await reconciler.init();
  reconciler.state.leaseId = o.lease;
  await o.state.save(reconciler.state);
  const running = reconciler.run();
  const stop = async () => {
    reconciler.triggers.close();
    await running;
  };
  return { reconciler, stop };
}

/** The paths that name regular files on this host (a few upstream TLS files; a stat each, every render). */
function regularFiles(paths: string[]): ReadonlySet<string> {
  return new Set(paths.filter((p) => {
    try {
      return statSync(p).isFile();
    } catch {
      return false;
    }
  }));
}
