// The agent's loop: for every batch of triggers, observe → plan (pure) → execute → report.
import { join } from 'node:path';
import type { Issue } from './core/model/issues.js';
import type { Document, Instance } from './core/model/model.js';
import type { Clock } from './core/clock.js';
import type { Logger } from './core/logger.js';
import { backoffMs } from './core/clock.js';
import type { Templates } from './core/render/render-node.js';
import type { Observed, Plan } from './core/render/plan.js';
import { composeReasonFor, planRender } from './core/render/plan.js';
import { acceptValid } from './core/documents/desired.js';
import { fromEtcdEntry } from './core/documents/etcd-docs.js';
import type { PortRange } from './core/render/admin-ports.js';
import { ExternalError } from './core/errors.js';
import type { DesiredSource } from './adapters/etcd/etcd-source.js';
import type { ComposeRunner } from './adapters/docker/compose-runner.js';
import type { ContainerInfo, DockerObserver } from './adapters/docker/docker-observer.js';
import type { AgentState, StateStore } from './adapters/files/state-store.js';
import { readIfExists, syncFiles, writeAtomic } from './adapters/files/file-store.js';
import { Triggers } from './triggers.js';

export const COMPOSE_PATH = 'compose/docker-compose.yml';
export const LAST_GOOD_PATH = 'compose/docker-compose.last-good.yml';

export interface ReconcilerOptions {
  node: string;
  project: string;
  stateDir: string;
  prefix: string;
  advertiseAddress: string;
  sidecarImage: string;
  xdsPort: number;
  adminPorts: PortRange;
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
  publish?: (plan: Plan, observed: Omit<Observed, 'containers'>) => void;
  /** Called after every pass with what the node status should say. */
  report: (r: PassReport) => Promise<void>;
  clock: Clock;
  log: Logger;
}

export interface PassReport {
  desiredRevision: number;
  appliedRevision?: number;
  rejected: Issue[];
  lastApply?: { ok: boolean; at: string; revision: number; reason?: string; message?: string };
  composeRuns: number;
  plan?: Plan;
  /** The project's containers as listed at the start of the pass. */
  containers: ContainerInfo[];
  observed?: Observed;
}

interface CachedDoc {
  modRevision: number;
  doc?: Document;
  issues: Issue[];
}

export class Reconciler {
  readonly triggers = new Triggers();
  readonly stats = { passes: 0, composeRuns: 0, composeFailures: 0, handEditsOverwritten: 0, lastComposeMs: 0 };
  #state!: AgentState;
  #docs = new Map<string, CachedDoc>();
  #failures = 0;
  #lastApply: PassReport['lastApply'];
  #checkedTemplates = '';
  #lastContainers: ContainerInfo[] = [];
  /** A pass has published and not ended yet (compose may still run). */
  #passing = false;

  constructor(private readonly opts: ReconcilerOptions, private readonly deps: ReconcilerDeps) {}

  get state(): AgentState {
    return this.#state;
  }

  async init(): Promise<void> {
    this.#state = await this.deps.state.load(this.opts.node);
  }

  /** Runs passes until the triggers are closed. A pass that throws is logged and retried with backoff. */
  async run(): Promise<void> {
    for await (const reasons of this.triggers) {
      try {
        await this.pass(reasons);
      } catch (err) {
        this.deps.log.error('pass failed', { error: (err as Error).message, reasons });
        this.#retryLater();
      }
    }
  }

  /**
   * While a pass is busy (compose can take seconds), renders and publishes xDS from the latest desired state and
   * registry at once; the pass triggered for the same change follows as usual. Between passes it does nothing:
   * that pass publishes first thing. Without this a dead instance stayed in every sidecar, and a route change
   * waited, for as long as the compose run that the container's death had started (seen with Envoy 1.40).
   */
  async publishNow(): Promise<void> {
    if (!this.#passing || !this.deps.publish) return;
    const templates = await this.deps.templates();
    // From here on synchronous: what goes out is the state at this instant, never older than what went out before.
    const wanted = this.#passing ? this.observeDesired() : undefined;
    if (!wanted) return;
    const paths = { envoyDir: join(this.opts.stateDir, 'envoy'), xdsDir: join(this.opts.stateDir, 'xds') };
    this.deps.publish(planRender(wanted, templates, this.#state, { ...this.opts, paths }), wanted);
  }

  async pass(reasons: string[] = ['manual']): Promise<PassReport | undefined> {
    const wanted = this.observeDesired();
    if (!wanted) return undefined; // no desired state yet: touch nothing
    this.stats.passes++;
    // Docker is asked while the node renders; xDS goes out before Docker answers (a canary shift waits for no one).
    const listing = this.deps.docker.list(this.opts.project);
    listing.catch(() => {});
    const paths = { envoyDir: join(this.opts.stateDir, 'envoy'), xdsDir: join(this.opts.stateDir, 'xds') };
    const plan = planRender(wanted, await this.deps.templates(), this.#state, { ...this.opts, paths });
    this.deps.publish?.(plan, wanted);
    this.#passing = true; // published: from now until the pass ends, publishNow() may publish newer state
    try {
      const containers = await listing;
      this.#lastContainers = containers;
      const observed: Observed = { ...wanted, containers };
      plan.composeReason = composeReasonFor(plan, containers, this.#state);
      await this.execute(plan, observed, reasons);
      const report: PassReport = {
        desiredRevision: observed.revision,
        appliedRevision: this.#state.appliedRevision,
        rejected: [...observed.rejected, ...plan.render.issues],
        lastApply: this.#lastApply,
        composeRuns: this.stats.composeRuns,
        plan,
        containers: this.#lastContainers,
        observed,
      };
      await this.deps.report(report);
      return report;
    } finally {
      this.#passing = false;
    }
  }

  /** The desired state, each stored document validated once per revision, and every node's instances. */
  observeDesired(): Omit<Observed, 'containers'> | undefined {
    const snap = this.deps.source.current();
    if (!snap) return undefined;
    const docs: Document[] = [];
    const rejected: Issue[] = [];
    const seen = new Set<string>();
    for (const e of snap.entries.values()) {
      seen.add(e.key);
      let cached = this.#docs.get(e.key);
      if (!cached || cached.modRevision !== e.modRevision) {
        const issues: Issue[] = [];
        const doc = fromEtcdEntry(this.opts.prefix, e.key, e.value, e.modRevision, issues);
        cached = { modRevision: e.modRevision, doc, issues };
        this.#docs.set(e.key, cached);
      }
      if (cached.doc) docs.push(cached.doc);
      rejected.push(...cached.issues);
    }
    for (const k of this.#docs.keys()) if (!seen.has(k)) this.#docs.delete(k);
    const accepted = acceptValid(docs, { xdsPort: this.opts.xdsPort, nodes: [this.opts.node] });
    return {
      revision: snap.revision,
      desired: accepted.desired,
      rejected: [...rejected, ...accepted.rejected],
      instances: this.deps.instances?.() ?? [],
    };
  }

  /** Writes the files, then runs compose only when the project changed or drifted; stops at the first failure. */
  async execute(plan: Plan, observed: Observed, reasons: string[]): Promise<void> {
    const { stateDir } = this.opts;
    const before = await readIfExists(join(stateDir, COMPOSE_PATH));
    const sync = await syncFiles(stateDir, plan.files, ['envoy', 'xds']);
    if (sync.written.includes(COMPOSE_PATH) && before !== undefined && this.#state.renderedHash === plan.projectHash && this.#state.renderedRevision === plan.renderedRevision) {
      this.stats.handEditsOverwritten++;
      this.deps.log.warn('the compose file on disk differed from what meshlet rendered (edited by hand?); rewritten', { file: join(stateDir, COMPOSE_PATH) });
    }
    this.#state.adminPorts = plan.render.adminPorts;
    this.#state.renderedHash = plan.projectHash;
    this.#state.renderedRevision = plan.renderedRevision;
    if (!plan.composeReason) {
      this.#state.appliedRevision = observed.revision;
      // A failed apply that the desired state has since stepped back from is over: Docker already runs the project.
      if (this.#lastApply && !this.#lastApply.ok) {
        this.#failures = 0;
        this.#lastApply = { ok: true, at: new Date(this.deps.clock.now()).toISOString(), revision: observed.revision, reason: 'Docker already runs the desired project' };
      }
      await this.deps.state.save(this.#state);
      return;
    }
    const at = new Date(this.deps.clock.now()).toISOString();
    try {
      this.deps.log.info('applying the compose project', { reason: plan.composeReason, revision: observed.revision, triggers: reasons });
      await this.#compose(plan);
      this.#failures = 0;
      this.#state.appliedHash = plan.projectHash;
      // The last-good file first: whoever sees the revision applied may read it at once.
      await writeAtomic(join(stateDir, LAST_GOOD_PATH), plan.files.get(COMPOSE_PATH)!);
      this.#state.appliedRevision = observed.revision;
      this.#lastApply = { ok: true, at, revision: observed.revision, reason: plan.composeReason };
    } catch (err) {
      this.stats.composeFailures++;
      this.#lastApply = { ok: false, at, revision: observed.revision, reason: plan.composeReason, message: (err as Error).message };
      this.deps.log.error('apply failed; running containers are left as they are', { error: (err as Error).message, reason: plan.composeReason });
      this.#retryLater();
    }
    await this.deps.state.save(this.#state);
  }

  async #compose(plan: Plan): Promise<void> {
    const missing = await this.deps.docker.missingImages(plan.images);
    if (missing.length > 0) {
      throw new ExternalError(`image${missing.length > 1 ? 's' : ''} not present on this host: ${missing.join(', ')} (meshlet never pulls; load or build ${missing.length > 1 ? 'them' : 'it'} first)`);
    }
    const file = join(this.opts.stateDir, COMPOSE_PATH);
    // Our own renders are known-good; a changed template is operator input, so compose checks it first.
    const templatesHash = JSON.stringify(await this.deps.templates());
    if (templatesHash !== this.#checkedTemplates) {
      await this.deps.compose.check(this.opts.project, file);
      this.#checkedTemplates = templatesHash;
    }
    this.stats.composeRuns++;
    const t0 = performance.now();
    await this.deps.compose.up(this.opts.project, file);
    this.stats.lastComposeMs = performance.now() - t0;
    // v1 can exit 0 without doing the work: confirm through the Docker API and remember each container's config hash.
    const containers = await this.deps.docker.list(this.opts.project);
    this.#lastContainers = containers;
    const applied: Record<string, string> = {};
    const notRunning: string[] = [];
    for (const svc of plan.composeServices) {
      const mine = containers.filter((c) => c.composeService === svc);
      const live = mine.find((c) => c.state === 'running' || c.state === 'restarting');
      if (!live) notRunning.push(`${svc} (${mine[0]?.state ?? 'no container'})`);
      else if (live.configHash) applied[svc] = live.configHash;
    }
    this.#state.appliedContainers = applied;
    if (notRunning.length > 0) throw new ExternalError(`compose finished but not running: ${notRunning.join(', ')}`);
  }

  #retryLater(): void {
    this.#failures++;
    const wait = backoffMs(this.#failures, 30_000, 500);
    void this.deps.clock.sleep(wait).then(() => this.triggers.notify('retry after failure'));
  }
}
