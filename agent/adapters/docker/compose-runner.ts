// Runs Docker Compose (the v2 plugin, else docker-compose v1) on the host's project, one call at a time.
import { dirname } from 'node:path';
import { execa } from 'execa';
import { ExternalError, ValidationError } from '../../core/errors.js';

export type ComposeFlavour = 'v1' | 'v2';
export type ComposeMode = 'auto' | ComposeFlavour;

export interface ComposeRunner {
  readonly flavour: ComposeFlavour;
  /** `config -q`: refuses a file compose would not run. */
  check(project: string, file: string): Promise<void>;
  /** Brings the project to the file: create/recreate what changed, remove services no longer in the file (--remove-orphans). */
  up(project: string, file: string): Promise<void>;
}

export interface ComposeRunnerOptions {
  /** DOCKER_HOST handed to compose; default: inherited from this process. */
  dockerHost?: string;
  /** A compose call still running after this long is killed and fails; default 120 s. */
  timeoutMs?: number;
  /** Base environment of every compose call; default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Executables looked for; default `docker` (for `docker compose`) and `docker-compose`. */
  dockerBin?: string;
  composeBin?: string;
}

export const DEFAULT_COMPOSE_TIMEOUT_MS = 120_000;
const DETECT_TIMEOUT_MS = 15_000;
const TAIL_LINES = 20;
// v1 answers an unknown flag with its usage text and exit 0; v2's help starts the same way.
const USAGE_BANNER = /^\s*Usage:\s/m;
// v2 refuses other names and v1 silently rewrites them: either way not the project we meant.
const PROJECT_NAME = /^[a-z0-9][a-z0-9_-]*$/;

/** Finds a working compose: `auto` prefers the v2 plugin, then docker-compose; `v1`/`v2` insist. */
export async function detectCompose(mode: ComposeMode, opts: ComposeRunnerOptions = {}): Promise<ExecComposeRunner> {
  const docker = opts.dockerBin ?? 'docker';
  const compose = opts.composeBin ?? 'docker-compose';
  // docker-compose may itself be Compose v2 (the standalone binary): the version decides the flavour.
  const candidates: string[][] = mode === 'v1' ? [[compose]] : [[docker, 'compose'], [compose]];
  const tried: string[] = [];
  for (const command of candidates) {
    const found = await probe(command, opts);
    const shown = `\`${command.join(' ')} version\``;
    if ('problem' in found) {
      tried.push(`${shown}: ${found.problem}`);
      continue;
    }
    const flavour: ComposeFlavour = found.major >= 2 ? 'v2' : 'v1';
    if (mode !== 'auto' && flavour !== mode) {
      tried.push(`${shown}: Compose ${found.version} is not ${mode}`);
      continue;
    }
    return new ExecComposeRunner(command, flavour, found.version, opts);
  }
  const wanted = mode === 'auto' ? 'Docker Compose (v2 plugin or docker-compose v1)' : `Docker Compose ${mode}`;
  throw new ExternalError(`${wanted} not found; tried:\n  ${tried.join('\n  ')}`);
}

async function probe(command: string[], opts: ComposeRunnerOptions): Promise<{ version: string; major: number } | { problem: string }> {
  const [file, ...args] = command as [string, ...string[]];
  const r = await runBounded(file, [...args, 'version', '--short'], composeEnv(opts), undefined, DETECT_TIMEOUT_MS);
  if (r.failed) return { problem: r.code === 'ENOENT' ? `${file} is not installed` : outcome(r, r.stderr || r.stdout, DETECT_TIMEOUT_MS) };
  // A docker CLI without the plugin may print help and exit 0: only a version number counts.
  const m = /^v?(\d+)\.(\d+)\.\S*/.exec(r.stdout.trim());
  if (!m) return { problem: `no version number in its output: ${tail(r.stdout || r.stderr, 3) || '(empty)'}` };
  return { version: m[0].replace(/^v/, ''), major: Number(m[1]) };
}

/** The real runner: compose as a child process (no shell), serialised per instance. */
export class ExecComposeRunner implements ComposeRunner {
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly command: string[],
    readonly flavour: ComposeFlavour,
    /** Compose's own version, e.g. `1.29.2`. */
    readonly version: string,
    private readonly opts: ComposeRunnerOptions = {},
  ) {}

  check(project: string, file: string): Promise<void> {
    return this.run(project, file, ['config', '-q']);
  }

  up(project: string, file: string): Promise<void> {
    // Never --wait or --pull: v1 does not know them and would "succeed" without doing anything.
    return this.run(project, file, ['up', '-d', '--remove-orphans']);
  }

  // One compose at a time: two concurrent `up`s of one project race on the same containers.
  private run(project: string, file: string, args: string[]): Promise<void> {
    const next = this.queue.then(() => this.exec(project, file, args));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async exec(project: string, file: string, args: string[]): Promise<void> {
    if (!PROJECT_NAME.test(project)) {
      throw new ValidationError([{ doc: { source: 'compose project', index: 0, whole: true }, path: '', message: `${JSON.stringify(project)} must match ${PROJECT_NAME}` }], 'bad compose project name');
    }
    const [bin, ...pre] = this.command as [string, ...string[]];
    const argv = [...pre, '-p', project, '-f', file, ...args];
    const shown = `${this.command.join(' ')} ${['-p', project, '-f', file, ...args].join(' ')}`;
    const limit = this.opts.timeoutMs ?? DEFAULT_COMPOSE_TIMEOUT_MS;
    // Relative paths in the file (./envoy/…) resolve against its folder in both flavours; pin it anyway.
    const r = await runBounded(bin, argv, composeEnv(this.opts), dirname(file), limit);
    const output = [r.stderr, r.stdout].filter(Boolean).join('\n');
    if (r.failed) {
      // No exit code, no signal: it never started (binary gone, folder of the file gone).
      const why = r.exitCode === undefined && !r.signal && !r.timedOut && r.code
        ? `could not start it: ${(r.originalMessage ?? r.code).split('\n')[0]}`
        : outcome(r, output, limit);
      throw new ExternalError(`${shown} failed: ${why}`);
    }
    if (USAGE_BANNER.test(output)) {
      throw new ExternalError(`${shown} printed its usage text (an option it does not know?) and did nothing:\n${tail(output)}`);
    }
  }
}

function composeEnv(opts: ComposeRunnerOptions): NodeJS.ProcessEnv {
  const env = { ...(opts.env ?? process.env) };
  if (opts.dockerHost !== undefined) env.DOCKER_HOST = opts.dockerHost;
  return env;
}

interface Bounded {
  failed: boolean;
  timedOut: boolean;
  exitCode?: number;
  signal?: string;
  code?: string;
  originalMessage?: string;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command in its own process group and, past `limitMs`, kills the whole group
 * (SIGTERM, SIGKILL 5 s later). Killing only the direct child is not enough: `docker compose`
 * runs the plugin as a child, and any child still holding stdout keeps the call open.
 * Detached, a compose in progress also finishes when the agent itself is stopped.
 */
async function runBounded(file: string, args: string[], env: NodeJS.ProcessEnv, cwd: string | undefined, limitMs: number): Promise<Bounded> {
  const child = execa(file, args, { env, extendEnv: false, ...(cwd ? { cwd } : {}), stdin: 'ignore', reject: false, detached: true });
  let timedOut = false;
  let hardKill: NodeJS.Timeout | undefined;
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, signal);
    } catch {
      // Already gone.
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup('SIGTERM');
    hardKill = setTimeout(() => killGroup('SIGKILL'), 5000);
  }, limitMs);
  try {
    const r = await child;
    return {
      failed: r.failed || timedOut,
      timedOut,
      ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}),
      ...(r.signal ? { signal: r.signal } : {}),
      ...(r.code ? { code: r.code } : {}),
      ...(r.originalMessage ? { originalMessage: r.originalMessage } : {}),
      stdout: String(r.stdout ?? ''),
      stderr: String(r.stderr ?? ''),
    };
  } finally {
    clearTimeout(timer);
    clearTimeout(hardKill);
  }
}

function outcome(r: Bounded, output: string, limitMs: number): string {
  const head = r.timedOut ? `timed out after ${limitMs / 1000} s` : r.exitCode !== undefined ? `exit ${r.exitCode}` : `killed by ${r.signal ?? 'a signal'}`;
  const text = tail(output);
  return text ? `${head}:\n${text}` : head;
}

/** The last lines of compose's output, without colour codes or blank lines. */
function tail(text: string, lines = TAIL_LINES): string {
  // eslint-disable-next-line no-control-regex
  const plain = text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
  return plain.split(/\r?\n|\r/).map((l) => l.trimEnd()).filter((l) => l.trim() !== '').slice(-lines).join('\n');
}
