// Reads the host's compose project from the Docker API: its containers, missing images, and a live event feed.
import { StringDecoder } from 'node:string_decoder';
import type Docker from 'dockerode';
import { ExternalError } from '../../core/errors.js';

export interface ContainerInfo {
  id: string;
  /** Container name without the leading slash (v1 `proj_svc_1`, v2 `proj-svc-1`): display only. */
  name: string;
  /** Label com.docker.compose.service: the compose service, e.g. `reviews-v1-envoy`. */
  composeService: string;
  service?: string;
  version?: string;
  role?: 'app' | 'sidecar';
  /** created, running, restarting, paused, exited, dead, removing. */
  state: string;
  /** Absent when the container has no health check. */
  health?: 'starting' | 'healthy' | 'unhealthy';
  /** The image as the compose file names it. */
  image: string;
  configHash?: string;
  startedAt?: string;
  /** The last exit code, while the container is not running (Docker resets it to 0 on start). */
  exitCode?: number;
  /** How often Docker restarted it (restart: unless-stopped); a new container starts at 0. */
  restarts?: number;
  /** Bind mounts, path in the container → path on the host (a sidecar's bootstrap, an app's gRPC bootstrap). */
  binds?: Record<string, string>;
}

export interface DockerEvent {
  id: string;
  /** start, die, destroy, …, or `health_status: healthy` / `health_status: unhealthy`. */
  action: string;
  composeService?: string;
  service?: string;
  version?: string;
  exitCode?: number;
  timeNano: bigint;
}

export interface WatchHandlers {
  event(e: DockerEvent): void;
  /** The feed (re)connected: events may have been missed, list the project again. */
  resync(): void;
  /** The feed broke or could not connect; it reconnects by itself after a backoff (resync() says when it did). */
  lost?(err: Error): void;
  /** A line could not be read, or a handler threw (also a lost feed, when there is no `lost` handler). */
  error?(err: Error): void;
}

/** connecting → streaming → backoff → connecting …; closed is final. */
export type WatchState = 'connecting' | 'streaming' | 'backoff' | 'closed';

export interface Watch {
  readonly state: WatchState;
  close(): void;
}

export interface DockerObserver {
  list(project: string): Promise<ContainerInfo[]>;
  /** The images Docker does not have; never pulls. */
  missingImages(images: string[]): Promise<string[]>;
  watch(project: string, handlers: WatchHandlers): Watch;
}

/** The last lines a container printed (stdout and stderr), for the node status of a container that is down. */
export interface ContainerLogs {
  logTail(id: string, lines: number): Promise<string[]>;
}

export interface ObserverOptions {
  /** Reconnect delays: doubled from `firstMs` up to `maxMs` while connections keep failing. */
  backoff?: { firstMs: number; maxMs: number };
  now?: () => number;
}

const PROJECT_LABEL = 'com.docker.compose.project';
// Everything that changes whether an instance runs or is healthy. Not exec_*: every health
// check run would fire those. `health_status` matches `health_status: …` (the daemon fuzzy-matches it).
export const WATCHED_EVENTS = ['create', 'start', 'restart', 'die', 'oom', 'stop', 'pause', 'unpause', 'destroy', 'health_status'];

export class DockerApiObserver implements DockerObserver, ContainerLogs {
  constructor(private readonly docker: Docker, private readonly opts: ObserverOptions = {}) {}

  async list(project: string): Promise<ContainerInfo[]> {
    const summaries = await this.docker
      .listContainers({ all: true, filters: { label: [`${PROJECT_LABEL}=${project}`] } })
      .catch((err: unknown) => { throw dockerError(`list the containers of project ${project}`, err); });
    // Inspect for the exact health and start time (the list only has a "Status" sentence).
    const infos = await Promise.all(summaries.map((s) => this.inspect(s.Id)));
    return infos.filter((c): c is ContainerInfo => c !== undefined).sort((a, b) => a.composeService.localeCompare(b.composeService) || a.name.localeCompare(b.name));
  }

  private async inspect(id: string): Promise<ContainerInfo | undefined> {
    let c: Docker.ContainerInspectInfo;
    try {
      c = await this.docker.getContainer(id).inspect();
    } catch (err) {
      if (statusCode(err) === 404) return undefined; // removed since the list: its destroy event follows
      throw dockerError(`inspect container ${id.slice(0, 12)}`, err);
    }
    const labels = c.Config.Labels ?? {};
    const role = labels['meshlet.role'];
    const health = c.State.Health?.Status;
    const started = c.State.StartedAt;
    return {
      id: c.Id,
      name: c.Name.replace(/^\//, ''),
      composeService: labels['com.docker.compose.service'] ?? '',
      ...(labels['meshlet.service'] !== undefined ? { service: labels['meshlet.service'] } : {}),
      ...(labels['meshlet.version'] !== undefined ? { version: labels['meshlet.version'] } : {}),
      ...(role === 'app' || role === 'sidecar' ? { role } : {}),
      state: c.State.Status,
      ...(health === 'starting' || health === 'healthy' || health === 'unhealthy' ? { health } : {}),
      image: c.Config.Image,
      ...(labels['com.docker.compose.config-hash'] !== undefined ? { configHash: labels['com.docker.compose.config-hash'] } : {}),
      // Docker's zero time means "never started".
      ...(started && !started.startsWith('0001-') ? { startedAt: started } : {}),
      ...(c.State.Status !== 'running' && started && !started.startsWith('0001-') ? { exitCode: c.State.ExitCode } : {}),
      restarts: c.RestartCount ?? 0,
      ...bindsOf(c.Mounts),
    };
  }

  async logTail(id: string, lines: number): Promise<string[]> {
    try {
      const raw = (await this.docker.getContainer(id).logs({ stdout: true, stderr: true, follow: false, tail: lines })) as unknown as Buffer;
      return lastLines(demuxLogs(raw), lines);
    } catch (err) {
      if (statusCode(err) === 404) return [];
      throw dockerError(`read the log of container ${id.slice(0, 12)}`, err);
    }
  }

  async missingImages(images: string[]): Promise<string[]> {
    const unique = [...new Set(images)];
    const present = await Promise.all(unique.map(async (name) => {
      try {
        await this.docker.getImage(name).inspect();
        return true;
      } catch (err) {
        if (statusCode(err) === 404) return false;
        throw dockerError(`inspect image ${name}`, err);
      }
    }));
    return unique.filter((_, i) => !present[i]);
  }

  watch(project: string, handlers: WatchHandlers): Watch {
    const w = new EventWatch(this.docker, project, handlers, this.opts);
    w.connect();
    return w;
  }
}

// One subscription to /events, filtered by the daemon to one project, kept alive across daemon restarts.
class EventWatch implements Watch {
  state: WatchState = 'connecting';
  private failures = 0;
  private connectedAt = 0;
  private abort?: AbortController;
  private stream?: NodeJS.ReadableStream;
  private timer?: NodeJS.Timeout;
  private readonly backoff: { firstMs: number; maxMs: number };
  private readonly now: () => number;

  constructor(private readonly docker: Docker, private readonly project: string, private readonly handlers: WatchHandlers, opts: ObserverOptions) {
    this.backoff = opts.backoff ?? { firstMs: 100, maxMs: 5000 };
    this.now = opts.now ?? Date.now;
  }

  connect(): void {
    if (this.state === 'closed') return;
    this.state = 'connecting';
    const abort = (this.abort = new AbortController());
    this.docker.getEvents({
      filters: { type: ['container'], label: [`${PROJECT_LABEL}=${this.project}`], event: WATCHED_EVENTS },
      abortSignal: abort.signal,
    }).then(
      (stream) => this.streaming(stream, abort),
      (err: unknown) => { if (this.abort === abort) this.lost(err); },
    );
  }

  private streaming(stream: NodeJS.ReadableStream, abort: AbortController): void {
    if (this.abort !== abort || this.state !== 'connecting') {
      destroy(stream);
      return;
    }
    this.state = 'streaming';
    this.stream = stream;
    this.connectedAt = this.now();
    const decoder = new StringDecoder('utf8');
    let partial = '';
    const current = () => this.stream === stream && this.state === 'streaming';
    stream.on('data', (chunk: Buffer) => {
      if (!current()) return;
      // One JSON object per line; a chunk may end inside a line (or inside a UTF-8 character).
      const lines = (partial + decoder.write(chunk)).split('\n');
      partial = lines.pop()!;
      for (const line of lines) if (line.trim()) this.deliver(line);
    });
    const ended = (err?: unknown) => { if (current()) this.lost(err ?? new Error('the daemon closed the event stream')); };
    stream.on('end', () => ended());
    stream.on('close', () => ended());
    stream.on('error', (err: unknown) => ended(err));
    // Subscribed before listing, so nothing falls between the list and the first event.
    this.call(() => this.handlers.resync());
  }

  private deliver(line: string): void {
    let e: DockerEvent | undefined;
    try {
      e = parseEvent(line);
    } catch (err) {
      this.report(new ExternalError(`Docker events of project ${this.project}: unreadable line ${JSON.stringify(line.slice(0, 200))}`, err));
      return;
    }
    if (e) this.call(() => this.handlers.event(e));
  }

  private lost(err: unknown): void {
    if (this.state === 'closed') return;
    if (this.state === 'streaming' && this.now() - this.connectedAt >= this.backoff.maxMs) this.failures = 0;
    const delay = Math.min(this.backoff.maxMs, this.backoff.firstMs * 2 ** this.failures);
    this.failures++;
    this.drop();
    this.state = 'backoff';
    const lostErr = dockerError(`follow the events of project ${this.project} (reconnecting in ${delay} ms)`, err);
    if (this.handlers.lost) this.call(() => this.handlers.lost!(lostErr));
    else this.report(lostErr);
    this.timer = setTimeout(() => this.connect(), delay);
  }

  close(): void {
    this.state = 'closed';
    clearTimeout(this.timer);
    this.drop();
  }

  private drop(): void {
    const { stream, abort } = this;
    this.stream = undefined;
    this.abort = undefined;
    abort?.abort();
    if (stream) destroy(stream);
  }

  private call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.report(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private report(err: Error): void {
    try {
      this.handlers.error?.(err);
    } catch {
      // An error handler that throws has nowhere left to report to.
    }
  }
}

interface RawEvent {
  Type?: string;
  Action?: string;
  status?: string;
  id?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
}

/** One NDJSON line of /events; undefined for anything that is not a container event. */
export function parseEvent(line: string): DockerEvent | undefined {
  const raw = JSON.parse(line) as RawEvent;
  if (raw.Type !== undefined && raw.Type !== 'container') return undefined;
  const id = raw.Actor?.ID ?? raw.id;
  const action = raw.Action ?? raw.status;
  if (!id || !action) return undefined;
  const a = raw.Actor?.Attributes ?? {};
  // timeNano (~1.7e18) is beyond a double's 2^53: JSON.parse would round it, so read the digits.
  const nano = /"timeNano"\s*:\s*(\d+)/.exec(line)?.[1];
  const exitCode = a.exitCode !== undefined ? Number(a.exitCode) : undefined;
  return {
    id,
    action,
    ...(a['com.docker.compose.service'] !== undefined ? { composeService: a['com.docker.compose.service'] } : {}),
    ...(a['meshlet.service'] !== undefined ? { service: a['meshlet.service'] } : {}),
    ...(a['meshlet.version'] !== undefined ? { version: a['meshlet.version'] } : {}),
    ...(exitCode !== undefined && Number.isInteger(exitCode) ? { exitCode } : {}),
    timeNano: nano !== undefined ? BigInt(nano) : BigInt(raw.time ?? 0) * 1_000_000_000n,
  };
}

/**
 * A container without a TTY logs in frames: 1 byte stream (1 stdout, 2 stderr), 3 zero bytes, 4 bytes big-endian
 * length, then the payload. Anything that does not look like a frame is taken as plain text (a TTY container).
 */
export function demuxLogs(buf: Buffer): string {
  const parts: Buffer[] = [];
  let i = 0;
  while (i + 8 <= buf.length && buf[i]! <= 2 && buf[i + 1] === 0 && buf[i + 2] === 0 && buf[i + 3] === 0) {
    const size = buf.readUInt32BE(i + 4);
    parts.push(buf.subarray(i + 8, i + 8 + size));
    i += 8 + size;
  }
  if (i < buf.length) parts.push(buf.subarray(i));
  return Buffer.concat(parts).toString('utf8');
}

const MAX_LOG_LINE = 400;

function lastLines(text: string, n: number): string[] {
  const lines = text.split('\n').map((l) => l.replace(/\r$/, '')).filter((l) => l.trim() !== '');
  return lines.slice(-n).map((l) => (l.length > MAX_LOG_LINE ? `${l.slice(0, MAX_LOG_LINE)}…` : l));
}

function destroy(stream: NodeJS.ReadableStream): void {
  (stream as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.();
}

function bindsOf(mounts: Docker.ContainerInspectInfo['Mounts'] | undefined): { binds?: Record<string, string> } {
  const binds = (mounts ?? []).filter((m) => m.Type === 'bind').map((m) => [m.Destination, m.Source] as const);
  return binds.length > 0 ? { binds: Object.fromEntries(binds.sort(([a], [b]) => (a < b ? -1 : 1))) } : {};
}

function statusCode(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null && 'statusCode' in err ? Number((err as { statusCode: unknown }).statusCode) : undefined;
}

function dockerError(what: string, err: unknown): ExternalError {
  const msg = err instanceof Error ? err.message : String(err);
  return new ExternalError(`Docker: could not ${what}: ${msg}`, err);
}
