// The agent's loop: for every batch of triggers, read desired → render → publish xDS → plan → apply → remember → report.
import { join } from 'node:path';
import type { Issue } from './core/model/issues.js';
import { sortIssues } from './core/model/issues.js';
import { allTlsFiles } from './core/xds/missing-tls-files.js';
import type { Document, Instance } from './core/model/model.js';
import type { Clock } from './core/clock.js';
import type { Logger } from './core/logger.js';
import { backoffMs, jittered } from './core/clock.js';
import type { Templates } from './core/render/render-node.js';
import type { DesiredView, PassPlan, PassRender } from './core/render/plan.js';
import { planPass, renderPass } from './core/render/plan.js';
import { keepFilesOnDisk } from './core/render/keep-files-on-disk.js';
import { nextLastApply, nextState, type LastApply } from './core/render/next-state.js';
import { acceptValid } from './core/documents/desired.js';
import { checkEtcdEntry } from './core/documents/etcd-docs.js';
import type { Checked, Refused } from './core/documents/draft.js';
import type { PortRange } from './core/render/admin-ports.js';
import type { DesiredSource } from './adapters/etcd/etcd-source.js';
import type { ComposeRunner } from './adapters/docker/compose-runner.js';
import type { ContainerInfo, DockerObserver } from './adapters/docker/docker-observer.js';
import type { AgentState, StateStore } from './adapters/files/state-store.js';
import { readRenderedFiles, sidecarAdminPorts } from './adapters/files/earlier-render.js';
import { ComposeApply } from './apply-compose.js';
import { Triggers } from './triggers.js';
import { FailureStreak } from './failure-streak.js';

export { COMPOSE_PATH, LAST_GOOD_PATH } from './apply-compose.js';

export interface ReconcilerOptions {
  node: string;
  project: string;
  stateDir: string;
  prefix: string;
  advertiseAddress: string;
  /** This node's locality (agent flags --region, --zone). */
  region?: string;
  zone?: string;
  sidecarImage: string;
  xdsPort: number;
  adminPorts: PortRange;
  clusterDomain?: string;
}

export interface ReconcilerDeps {
  source: DesiredSource;
  docker: Pick<DockerObserver, 'list' | 'missingImages'>;
  compose: Pick<ComposeRunner, 'up' | 'check'>;
  templates: () => Promise<Templates>;
  state: StateStore;
  /** Healthy instances of every node, for endpoints (the registry). */
  instances?: () => Instance[];
  /** Called as soon as a pass has rendered, before Docker is consulted (xDS publishing). */
  publish?: (rendered: PassRender, wanted: DesiredView) => void;
  /** Which of these host files exist as regular files (upstream TLS files, checked each render). */
  hostFiles?: (paths: string[]) => ReadonlySet<string>;
  /** Called after every pass with what the node status should say. */
  report: (r: PassReport) => Promise<void>;
  clock: Clock;
  log: Logger;
  /** For the backoff's jitter (tests pass a fixed one). */
  random?: () => number;
  /** A failure that goes on is summarised in the log this often (default 5 minutes). */
  failureSummaryMs?: number;
}

/** Backoff after the n-th failed pass in a row: 0.5 s, 1 s, 2 s … up to 30 s, each ±20 %. */
export const RETRY_FIRST_MS = 500;
export const RETRY_MAX_MS = 30_000;
/** A reason that may remove the cause ends a backoff, but no sooner than this after the failure. */
export const RETRY_FLOOR_MS = 1_000;

/**
 * Reasons that may remove the cause of a failure: a desired change (the operator fixed it), Docker's event feed
 * reconnecting (the daemon answers again), a template edit. Docker events, registry changes and timers do not:
 * they came in storms while Docker was away and made a failing pass every few ms.
 */
export function mayFixFailure(reason: string): boolean {
  return reason === 'etcd' || reason === 'docker resync' || reason.startsWith('template ');
}

export interface PassReport {
  desiredRevision: number;
  appliedRevision?: number;
  rejected: Issue[];
  lastApply?: LastApply;
  composeRuns: number;
  plan?: PassPlan;
  /** The project's containers as Docker last listed them in the pass (after `up`, when compose ran). */
  containers: ContainerInfo[];
  wanted?: DesiredView;
}

interface CachedDoc {
  modRevision: number;
  /** The document as far as it was read; `ok` when it has no problem of its own. */
  checked?: Checked;
  issues: Issue[];
}

export class Reconciler {
  readonly triggers = new Triggers();
  readonly stats = { passes: 0, failedPasses: 0, composeRuns: 0, handEditsOverwritten: 0, lastComposeMs: 0 };
  #state!: AgentState;
  #docs = new Map<string, CachedDoc>();
  #lastApply: LastApply | undefined;
  #apply: ComposeApply;
  #failures: FailureStreak;
  /** The action that failed in the last pass's apply (the pass itself went through). */
  #applyFailed: { action: string; message: string; reason?: string } | undefined;
  /** A pass has published and not ended yet (compose may still run). */
  #passing = false;
  /** Why passes apply nothing (another agent holds the node), once told so. */
  #standingDown: string | undefined;
  /** The loop waits out a backoff: the next pass is held back, so publishNow() publishes meanwhile. */
  #holding = false;
  /** The files the last agent rendered into the state dir, until a pass has saved what this one rendered. */
  #onDisk: ReadonlyMap<string, string> | undefined;

  constructor(private readonly opts: ReconcilerOptions, private readonly deps: ReconcilerDeps) {
    this.#apply = new ComposeApply(opts, deps, this.stats);
    this.#failures = new FailureStreak(deps.clock, deps.log, { level: 'error', ...(deps.failureSummaryMs !== undefined ? { summaryEveryMs: deps.failureSummaryMs } : {}) });
  }

  get state(): AgentState {
    return this.#state;
  }

  get standingDown(): string | undefined {
    return this.#standingDown;
  }

  /**
   * Another agent holds the node: from now on a pass still observes, renders and publishes xDS to the sidecars
   * on this host, but applies nothing (no files, no compose), remembers nothing and reports nothing. A pass
   * already applying finishes.
   */
  standDown(reason: string): void {
    this.#standingDown ??= reason;
  }

  /**
   * state.json, and what the last agent left: the admin ports its sidecars' bootstraps name win over state.json's
   * (which lags while compose runs, and is lost with the file or the state dir), so a takeover renders the same
   * bootstraps and recreates no sidecar; the files on disk keep their header if the first render reproduces them.
   */
  async init(): Promise<void> {
    const saved = await this.deps.state.load(this.opts.node);
    this.#state = { ...saved, adminPorts: { ...saved.adminPorts, ...(await this.#runningAdminPorts(saved.adminPorts)) } };
    this.#onDisk = await readRenderedFiles(this.opts.stateDir);
  }

  async #runningAdminPorts(saved: Readonly<Record<string, number>>): Promise<Record<string, number>> {
    try {
      const running = await sidecarAdminPorts(await this.deps.docker.list(this.opts.project));
      const differ = Object.keys(running).filter((w) => saved[w] !== running[w]);
      if (differ.length > 0) {
        this.deps.log.info('admin ports kept from the running sidecars (state.json did not name them so)', {
          running: Object.fromEntries(differ.map((w) => [w, running[w]])), stateJson: Object.fromEntries(differ.map((w) => [w, saved[w] ?? null])),
        });
      }
      return running;
    } catch (err) {
      this.deps.log.warn('cannot list the running sidecars; admin ports as state.json has them', { error: (err as Error).message });
      return {};
    }
  }

  /**
   * Runs passes until the triggers are closed. A pass that fails (it throws, or an apply action fails) is logged
   * once per reason and retried after a backoff that the triggers arriving meanwhile do not cut short.
   */
  async run(): Promise<void> {
    for await (const reasons of this.triggers) {
      if (await this.#attempt(reasons)) continue;
      await this.#backOff();
    }
  }

  /** One pass; true if it went through. */
  async #attempt(reasons: string[]): Promise<boolean> {
    try {
      await this.pass(reasons);
    } catch (err) {
      this.#failed((err as Error).message, 'pass failed', { error: (err as Error).message, reasons });
      return false;
    }
    const f = this.#applyFailed;
    if (!f) {
      this.#failures.recovered('pass recovered', { reasons });
      return true;
    }
    this.#failed(`${f.action}: ${f.message}`, 'apply failed; running containers are left as they are', { action: f.action, error: f.message, reason: f.reason, reasons });
    return false;
  }

  #failed(key: string, line: string, fields: Record<string, unknown>): void {
    this.stats.failedPasses++;
    this.#failures.failed(key, line, fields);
  }

  /** Waits before the next pass; what is notified meanwhile goes with it, a reason that may fix the failure ends the wait. */
  async #backOff(): Promise<void> {
    const wait = jittered(backoffMs(this.#failures.failures - 1, RETRY_MAX_MS, RETRY_FIRST_MS), RETRY_MAX_MS, this.deps.random);
    this.#holding = true;
    try {
      await this.triggers.hold(this.deps.clock, wait, RETRY_FLOOR_MS, mayFixFailure);
    } finally {
      this.#holding = false;
    }
    this.triggers.notify('retry after failure');
  }

  /**
   * While a pass is busy (compose can take seconds), renders and publishes xDS from the latest desired state and
   * registry at once; the pass triggered for the same change follows as usual. Between passes it does nothing:
   * that pass publishes first thing, unless the loop is backing off after a failure (the pass is held back). Without this a dead instance stayed in every sidecar, and a route change
   * waited, for as long as the compose run that the container's death had started (seen with Envoy 1.40).
   */
  async publishNow(): Promise<void> {
    if (!(this.#passing || this.#holding) || !this.deps.publish) return;
    const templates = await this.deps.templates();
    // From here on synchronous: what goes out is the state at this instant, never older than what went out before.
    const wanted = this.#passing || this.#holding ? this.#readDesired() : undefined;
    if (wanted) this.deps.publish(this.#render(wanted, templates), wanted);
  }

  async pass(reasons: string[] = ['manual']): Promise<PassReport | undefined> {
    this.#applyFailed = undefined;
    const wanted = this.#readDesired();
    if (!wanted) return undefined; // no desired state yet: touch nothing
    this.stats.passes++;
    const listing = this.#listContainers(); // asked now, awaited after publishing: a canary shift waits for no Docker
    const rendered = this.#render(wanted, await this.deps.templates());
    this.#publish(rendered, wanted);
    try {
      const containers = await listing;
      const plan = planPass(rendered, containers, this.#state);
      if (this.#standingDown) return this.#observed(wanted, plan, containers);
      const outcome = await this.#apply.apply(plan, this.#state, reasons); // stops at the first failed action
      if (outcome.failed) this.#applyFailed = { ...outcome.failed, ...(plan.composeReason ? { reason: plan.composeReason } : {}) };
      this.#lastApply = nextLastApply(this.#lastApply, plan, outcome);
      this.#state = nextState(this.#state, plan, outcome);
      await this.deps.state.save(this.#state);
      this.#onDisk = undefined; // state.json names the rendered revision from now on
      return await this.#report(wanted, plan, outcome.containers ?? containers);
    } finally {
      this.#passing = false;
    }
  }

  /** The desired state, each stored document validated once per revision, and every node's instances. */
  #readDesired(): DesiredView | undefined {
    const snap = this.deps.source.current();
    if (!snap) return undefined;
    const docs: Document[] = [];
    const refused: Refused[] = [];
    const rejected: Issue[] = [];
    const seen = new Set<string>();
    for (const e of snap.entries.values()) {
      seen.add(e.key);
      let cached = this.#docs.get(e.key);
      if (!cached || cached.modRevision !== e.modRevision) {
        const issues: Issue[] = [];
        const checked = checkEtcdEntry(this.opts.prefix, e.key, e.value, e.modRevision, issues);
        cached = { modRevision: e.modRevision, ...(checked ? { checked } : {}), issues };
        this.#docs.set(e.key, cached);
      }
      if (cached.checked?.ok) docs.push(cached.checked.doc);
      else if (cached.checked) refused.push(cached.checked);
      rejected.push(...cached.issues);
    }
    for (const k of this.#docs.keys()) if (!seen.has(k)) this.#docs.delete(k);
    // A rejected document's own problems and those it has with the rest of the set, together.
    const accepted = acceptValid(docs, { xdsPort: this.opts.xdsPort, nodes: [this.opts.node], ...(this.opts.clusterDomain ? { clusterDomain: this.opts.clusterDomain } : {}) }, refused);
    return {
      revision: snap.revision,
      desired: accepted.desired,
      rejected: sortIssues([...rejected, ...accepted.rejected]),
      instances: this.deps.instances?.() ?? [],
    };
  }

  #listContainers(): Promise<ContainerInfo[]> {
    const listing = this.deps.docker.list(this.opts.project);
    listing.catch(() => {}); // awaited later; a render that throws first must not leave it unhandled
    return listing;
  }

  #render(wanted: DesiredView, templates: Templates): PassRender {
    const paths = { envoyDir: join(this.opts.stateDir, 'envoy'), xdsDir: join(this.opts.stateDir, 'xds') };
    const files = this.deps.hostFiles ? allTlsFiles(wanted.desired) : [];
    const hostFiles = files.length > 0 ? { hostFiles: this.deps.hostFiles!(files) } : {};
    const rendered = renderPass(wanted, templates, this.#state, { ...this.opts, paths, ...hostFiles });
    return this.#onDisk ? keepFilesOnDisk(rendered, this.#onDisk, this.opts.node) : rendered;
  }

  #publish(rendered: PassRender, wanted: DesiredView): void {
    this.deps.publish?.(rendered, wanted);
    this.#passing = true; // published: from now until the pass ends, publishNow() may publish newer state
  }

  async #report(wanted: DesiredView, plan: PassPlan, containers: ContainerInfo[]): Promise<PassReport> {
    const report = this.#observed(wanted, plan, containers);
    await this.deps.report(report);
    return report;
  }

  #observed(wanted: DesiredView, plan: PassPlan, containers: ContainerInfo[]): PassReport {
    return {
      desiredRevision: wanted.revision,
      appliedRevision: this.#state.appliedRevision,
      rejected: [...wanted.rejected, ...plan.render.issues],
      lastApply: this.#lastApply,
      composeRuns: this.stats.composeRuns,
      plan,
      containers,
      wanted,
    };
  }
}
