// Applies a pass's plan: writes the files, then runs compose only when the plan says so, one named action after
// another; the first that fails ends the apply (running containers are left as they are) and is named.
import { join } from 'node:path';
import type { Clock } from './core/clock.js';
import type { Logger } from './core/logger.js';
import type { Templates } from './core/render/render-node.js';
import type { AppliedState, PassPlan } from './core/render/plan.js';
import type { ApplyOutcome } from './core/render/next-state.js';
import { ExternalError } from './core/errors.js';
import type { ComposeRunner } from './adapters/docker/compose-runner.js';
import type { ContainerInfo, DockerObserver } from './adapters/docker/docker-observer.js';
import { readIfExists, syncFiles, writeAtomic } from './adapters/files/file-store.js';

export const COMPOSE_PATH = 'compose/docker-compose.yml';
export const LAST_GOOD_PATH = 'compose/docker-compose.last-good.yml';

export interface ApplyDeps {
  docker: Pick<DockerObserver, 'list' | 'missingImages'>;
  compose: Pick<ComposeRunner, 'up' | 'check'>;
  templates: () => Promise<Templates>;
  clock: Clock;
  log: Logger;
}

/** An outcome, plus the containers listed after `up` (when that listing ran). */
export type ApplyResult = ApplyOutcome & { containers?: ContainerInfo[] };

type Action = readonly [name: string, run: () => Promise<void>];

export class ComposeApply {
  /** The templates compose last checked a render of (a changed template is operator input). */
  #checkedTemplates = '';

  constructor(
    private readonly opts: { project: string; stateDir: string },
    private readonly deps: ApplyDeps,
    private readonly stats: { composeRuns: number; handEditsOverwritten: number; lastComposeMs: number },
  ) {}

  /**
   * Writes the files (a failed write throws: the pass fails and is retried), then, when compose must run:
   * check images → check the compose file (after a template change) → up → confirm running → keep as last good.
   */
  async apply(plan: PassPlan, state: Readonly<AppliedState>, reasons: string[]): Promise<ApplyResult> {
    await this.#writeFiles(plan, state);
    const result: ApplyResult = { at: this.deps.clock.now(), applied: false };
    if (!plan.composeReason) return result;
    this.deps.log.info('applying the compose project', { reason: plan.composeReason, revision: plan.revision, triggers: reasons });
    const file = join(this.opts.stateDir, COMPOSE_PATH);
    const actions: Action[] = [
      ['check images', () => this.#checkImages(plan.images)],
      ['check the compose file', () => this.#checkFile(file)],
      ['compose up', () => this.#up(file)],
      ['confirm running', () => this.#confirmRunning(plan.composeServices, result)],
      ['keep as last good', () => writeAtomic(join(this.opts.stateDir, LAST_GOOD_PATH), plan.files.get(COMPOSE_PATH)!)],
    ];
    for (const [action, run] of actions) {
      try {
        await run();
      } catch (err) {
        // Logged by the loop, once per reason while it keeps failing.
        return { ...result, failed: { action, message: (err as Error).message } };
      }
    }
    return result;
  }

  async #writeFiles(plan: PassPlan, state: Readonly<AppliedState>): Promise<void> {
    const { stateDir } = this.opts;
    const before = await readIfExists(join(stateDir, COMPOSE_PATH));
    const sync = await syncFiles(stateDir, plan.files, ['envoy', 'xds']);
    if (sync.written.includes(COMPOSE_PATH) && before !== undefined && state.renderedHash === plan.projectHash && state.renderedRevision === plan.renderedRevision) {
      this.stats.handEditsOverwritten++;
      this.deps.log.warn('the compose file on disk differed from what meshlet rendered (edited by hand?); rewritten', { file: join(stateDir, COMPOSE_PATH) });
    }
  }

  async #checkImages(images: string[]): Promise<void> {
    const missing = await this.deps.docker.missingImages(images);
    if (missing.length > 0) {
      throw new ExternalError(`image${missing.length > 1 ? 's' : ''} not present on this host: ${missing.join(', ')} (meshlet never pulls; load or build ${missing.length > 1 ? 'them' : 'it'} first)`);
    }
  }

  /** Our own renders are known-good; a changed template is operator input, so compose checks it first. */
  async #checkFile(file: string): Promise<void> {
    const templatesHash = JSON.stringify(await this.deps.templates());
    if (templatesHash === this.#checkedTemplates) return;
    await this.deps.compose.check(this.opts.project, file);
    this.#checkedTemplates = templatesHash;
  }

  async #up(file: string): Promise<void> {
    this.stats.composeRuns++;
    const t0 = performance.now();
    await this.deps.compose.up(this.opts.project, file);
    this.stats.lastComposeMs = performance.now() - t0; // read by the benchmark
  }

  /**
   * v1 can exit 0 without doing the work: confirm through the Docker API. What the listing shows is kept in
   * `result` even when a service is not running (each container's config hash is how drift shows next pass).
   */
  async #confirmRunning(services: string[], result: ApplyResult): Promise<void> {
    const containers = await this.deps.docker.list(this.opts.project);
    const appliedContainers: Record<string, string> = {};
    const notRunning: string[] = [];
    for (const svc of services) {
      const mine = containers.filter((c) => c.composeService === svc);
      const live = mine.find((c) => c.state === 'running' || c.state === 'restarting');
      if (!live) notRunning.push(`${svc} (${mine[0]?.state ?? 'no container'})`);
      else if (live.configHash) appliedContainers[svc] = live.configHash;
    }
    Object.assign(result, { containers, appliedContainers });
    if (notRunning.length > 0) throw new ExternalError(`compose finished but not running: ${notRunning.join(', ')}`);
    result.applied = true;
  }
}
