// Recording fakes of ComposeRunner and DockerObserver for the loop's unit tests: they log every
// call in `ops` and let a test script containers, images, events and failures.
import type { ComposeFlavour, ComposeRunner } from '../../agent/adapters/docker/compose-runner.js';
import type { ContainerInfo, DockerEvent, DockerObserver, Watch, WatchHandlers, WatchState } from '../../agent/adapters/docker/docker-observer.js';

export class RecordingComposeRunner implements ComposeRunner {
  readonly ops: string[] = [];
  private readonly failures: Array<{ op: 'check' | 'up'; error: Error }> = [];
  /** Runs on every successful `up`, e.g. to update a FakeDockerObserver as compose would. */
  onUp?: (project: string, file: string) => void | Promise<void>;

  constructor(readonly flavour: ComposeFlavour = 'v1') {}

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

interface FakeWatch extends Watch {
  state: WatchState;
  project: string;
  handlers: WatchHandlers;
}

export class FakeDockerObserver implements DockerObserver {
  readonly ops: string[] = [];
  /** Images Docker "has"; everything else is missing. */
  readonly images = new Set<string>();
  private readonly containers = new Map<string, ContainerInfo[]>();
  private readonly watches: FakeWatch[] = [];
  private listFailure?: Error;

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

  async list(project: string): Promise<ContainerInfo[]> {
    this.ops.push(`list ${project}`);
    const failure = this.listFailure;
    this.listFailure = undefined;
    if (failure) throw failure;
    return (this.containers.get(project) ?? []).map((c) => ({ ...c }));
  }

  async missingImages(images: string[]): Promise<string[]> {
    this.ops.push(`missingImages ${images.join(',')}`);
    return [...new Set(images)].filter((i) => !this.images.has(i));
  }

  /** Like the real one: resync() at once (the stream "connected"). */
  watch(project: string, handlers: WatchHandlers): Watch {
    this.ops.push(`watch ${project}`);
    const ops = this.ops;
    const w: FakeWatch = {
      project,
      handlers,
      state: 'streaming',
      close() {
        if (this.state !== 'closed') ops.push(`close ${project}`);
        this.state = 'closed';
      },
    };
    this.watches.push(w);
    handlers.resync();
    return w;
  }

  /** Delivers an event to the open watches of `project` (only theirs, as the daemon's filter does). */
  emit(project: string, event: Omit<DockerEvent, 'timeNano'> & { timeNano?: bigint }): void {
    for (const w of this.open(project)) w.handlers.event({ timeNano: 0n, ...event });
  }

  /** Simulates a dropped and re-established stream: error, then resync. */
  reconnect(project: string, error = new Error('fake: event stream lost')): void {
    for (const w of this.open(project)) {
      w.handlers.error?.(error);
      w.handlers.resync();
    }
  }

  /** Open watches of a project: lets a test check that the loop closed what it opened. */
  open(project: string): FakeWatch[] {
    return this.watches.filter((w) => w.project === project && w.state !== 'closed');
  }
}
