// Start steps 5 and 7: what wakes the loop. The etcd sources are opened before the loop (it reads them)
// and started with the Docker event feed, the file watcher and the drift timer once the loop runs.
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import type { Keys } from '../core/model/keys.js';
import type { Instance } from '../core/model/model.js';
import { EtcdDesiredSource } from '../adapters/etcd/etcd-source.js';
import { RegistryReader } from '../adapters/etcd/registry-reader.js';
import type { DockerEvent, DockerObserver } from '../adapters/docker/docker-observer.js';
import { watchFolders, type FileChange } from '../adapters/files/file-watcher.js';
import type { LoopHandle } from './loop-handle.js';
import { runAll } from './shutdown.js';
import { FailureStreak } from '../failure-streak.js';

export interface EtcdInputs {
  /** The desired state (snapshot + watch). */
  source: EtcdDesiredSource;
  /** Everyone's healthy instances (endpoints for xDS), snapshot + watch. */
  registrySource: EtcdDesiredSource;
  /** Every valid registered instance; a bad entry is warned about once per value. */
  instances(): Instance[];
  /** The list was made before the registry's first snapshot was read: it is empty only because nothing was read yet. */
  beforeRegistryRead(list: Instance[]): boolean;
}

/**
 * Opens the desired-state and registry sources (not started: watchInputs starts them). `onRegistry` sees every
 * registry snapshot (this node's own keys are checked there: a registration deleted by hand comes back).
 */
export function openEtcdInputs(etcd: Etcd3, k: Keys, loop: LoopHandle, clock: Clock, log: Logger, onRegistry?: (seen: ReadonlyMap<string, { value: string }>) => void, own?: OwnInstances): EtcdInputs {
  const source = new EtcdDesiredSource(etcd, k.desired, () => {
    loop.notify('etcd');
    loop.publishNow();
  }, clock, log);
  const registrySource = new EtcdDesiredSource(etcd, k.registry, () => {
    const snap = registrySource.current();
    if (snap) onRegistry?.(snap.entries);
    loop.notify('registry');
    loop.publishNow();
  }, clock, log);
  const reader = new RegistryReader(k.prefix, (msg, fields) => log.warn(msg, fields));
  const unread = new WeakSet<Instance[]>();
  const instances = () => {
    const snap = registrySource.current();
    const read = reader.read(snap?.entries ?? new Map());
    const list = own ? withOwn(read, own) : read;
    if (!snap) unread.add(list);
    return list;
  };
  return { source, registrySource, instances, beforeRegistryRead: (list) => unread.has(list) };
}

/** This node's registrations as the agent holds them (what it has put, or is putting, under its lease). */
export interface OwnInstances {
  node: string;
  current(): Instance[];
}

/**
 * Other nodes' instances as etcd has them, this node's as the agent holds them. When the lease expires (etcd
 * frozen or cut past the TTL) etcd deletes this node's keys until the agent puts them back under a new lease;
 * taken from etcd alone, this host's sidecars lost their local endpoints for that moment and answered 503
 * (seen in the soak run). The agent knows which of its instances are healthy, so its own sidecars keep them.
 */
function withOwn(read: Instance[], own: OwnInstances): Instance[] {
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  return [...read.filter((i) => i.node !== own.node), ...own.current()]
    .sort((a, b) => cmp(a.service, b.service) || cmp(a.version, b.version) || cmp(a.node, b.node));
}

export interface InputOptions {
  etcd: EtcdInputs;
  docker: Pick<DockerObserver, 'watch'>;
  project: string;
  /** Every container event goes here first (health and registration), then wakes the loop. */
  onDockerEvent: (e: DockerEvent) => void;
  folders: { templates: string; compose: string };
  /** A template changed: the cached templates must be read again. */
  onTemplatesChanged: () => void;
  /** Seconds between drift checks when nothing else happens. */
  resyncInterval: number;
  /** Runs with every drift check (the registry reads its own keys back). */
  onDriftCheck?: () => void;
  clock: Clock;
  log: Logger;
}

export interface Inputs {
  /** Stops every input; the loop then sees no more reasons. */
  stop(): Promise<void>;
}

export function watchInputs(loop: LoopHandle, o: InputOptions): Inputs {
  // While dockerd is away the feed retries every few seconds: its loss is logged once, its return once.
  const feedDown = new FailureStreak(o.clock, o.log, { level: 'warn' });
  const watch = o.docker.watch(o.project, {
    event: (e) => {
      o.onDockerEvent(e);
      loop.notify(`docker ${e.action} ${e.composeService ?? e.id.slice(0, 12)}`);
    },
    resync: () => {
      feedDown.recovered('docker event feed back');
      loop.notify('docker resync');
    },
    lost: (err) => feedDown.failed('lost', 'docker event feed interrupted; reconnecting', { error: err.message }),
    error: (err) => o.log.warn('docker event feed: an event could not be handled', { error: err.message }),
  });
  const files = watchFolders(o.folders, (c: FileChange) => {
    if (c.folder === 'templates') o.onTemplatesChanged();
    // "template …" may fix a failed apply (it ends a backoff); "file …" is a hand edit of the compose folder.
    loop.notify(`${c.folder === 'templates' ? 'template' : 'file'} ${c.event} ${c.path}`);
  }, o.log);
  const timer = setInterval(() => {
    o.onDriftCheck?.();
    loop.notify('drift check');
  }, o.resyncInterval * 1000);
  timer.unref();
  o.etcd.source.start();
  o.etcd.registrySource.start();
  const stop = runAll([
    ['drift timer', () => clearInterval(timer)],
    ['docker events', () => watch.close()],
    ['file watcher', () => files.close()],
    ['etcd watches', () => Promise.all([o.etcd.source.stop(), o.etcd.registrySource.stop()])],
  ]);
  return { stop };
}
