// Recording fakes of ComposeRunner and DockerObserver for the loop's unit tests: they log every
// call in `ops` (pass one array to several fakes for one ordered log) and let a test script
// containers, images and failures.
import type { ComposeFlavour, ComposeRunner } from '../../agent/adapters/docker/compose-runner.js';
import type { ContainerInfo, DockerObserver } from '../../agent/adapters/docker/docker-observer.js';

export class RecordingComposeRunner implements ComposeRunner {
  private readonly failures: Array<{ op: 'check' | 'up'; error: Error }> = [];
  /** Runs on every successful `up`, e.g. to update a FakeDockerObserver as compose would. */
  onUp?: (project: string, file: string) => void | Promise<void>;

  constructor(readonly flavour: ComposeFlavour = 'v1', readonly ops: string[] = []) {}

  /** The next call of `op` throws `error` (queued: one failure per call). */
  failNext(op: 'check' | 'up', error: Error): void {
    this.failures.push({ op, error });
  }

  async check(project: string, file: string): Promise<void> {
    this.ops.push(`check ${project} ${file}`);
    this.throwIfScripted('check');
  }

  async up(project: string, file: string): Promise<void> {
    this.ops.push(`up ${project} ${file}`);
    this.throwIfScripted('up');
    await this.onUp?.(project, file);
  }

  private throwIfScripted(op: 'check' | 'up'): void {
    const i = this.failures.findIndex((f) => f.op === op);
    if (i >= 0) throw this.failures.splice(i, 1)[0]!.error;
  }
}

/** The part of DockerObserver the loop uses. */
export class FakeDockerObserver implements Pick<DockerObserver, 'list' | 'missingImages'> {
  /** Images Docker "has"; everything else is missing. */
  readonly images = new Set<string>();
  private readonly containers = new Map<string, ContainerInfo[]>();
  private listFailure?: Error;
  private listsFail?: Error;
  private held?: Promise<void>;

  constructor(readonly ops: string[] = []) {}

  setContainers(project: string, containers: ContainerInfo[]): void {
    this.containers.set(project, containers.map((c) => ({ ...c })));
  }

  /** Changes one container in place (state, health, …), as Docker would before its event. */
  updateContainer(project: string, id: string, patch: Partial<ContainerInfo>): void {
    const c = (this.containers.get(project) ?? []).find((x) => x.id === id);
    if (!c) throw new Error(`fake: no container ${id} in ${project}`);
    Object.assign(c, patch);
  }

  failNextList(error: Error): void {
    this.listFailure = error;
  }

  /** Every list() throws `error` until called again without one (a daemon that stays away). */
  failLists(error?: Error): void {
    this.listsFail = error;
  }

  /** From now on list() is recorded but does not answer until the returned function is called (a busy daemon). */
  holdLists(): () => void {
    let release!: () => void;
    this.held = new Promise<void>((resolve) => (release = resolve));
    return () => {
      this.held = undefined;
      release();
    };
  }

  async list(project: string): Promise<ContainerInfo[]> {
    this.ops.push(`list ${project}`);
    await this.held;
    const failure = this.listFailure ?? this.listsFail;
    this.listFailure = undefined;
    if (failure) throw failure;
    return (this.containers.get(project) ?? []).map((c) => ({ ...c }));
  }

  async missingImages(images: string[]): Promise<string[]> {
    this.ops.push(`missingImages ${images.join(',')}`);
    return [...new Set(images)].filter((i) => !this.images.has(i));
  }
}
