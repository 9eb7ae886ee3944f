// The parts the soak drives: the agent as a process (killed and started again with the same flags, its log
// appended to a file), and the soak's private dockerd (restarted through scripts/dev-env.sh).
import { execFile, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { spawnAgentProcess, type AgentSetup } from '../../test/helpers/agent-traffic.js';
import { ROOT } from '../../test/helpers/paths.js';

const run = promisify(execFile);

export interface AgentExit {
  pid: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The agent's last log lines before it ended. */
  tail: string;
}

/**
 * `meshlet agent` under test. An exit the soak did not cause is recorded and the agent is started again
 * (after 2 s), so one refusal or crash does not end the run; kill() and stop() are the soak's own.
 */
export class SoakAgent {
  readonly unexpectedExits: AgentExit[] = [];
  starts = 0;
  #child: ChildProcess | undefined;
  #stderr: () => string = () => '';
  #log: WriteStream;
  #exited: Promise<void> = Promise.resolve();
  #expecting = false;
  #closed = false;

  constructor(private readonly setup: AgentSetup, logFile: string) {
    this.#log = createWriteStream(logFile, { flags: 'a' });
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  start(): void {
    this.#expecting = false;
    const a = spawnAgentProcess(this.setup);
    this.starts++;
    this.#child = a.child;
    this.#stderr = a.stderr;
    this.#log.write(`--- soak ${new Date().toISOString()}: agent started, pid ${a.child.pid} ---\n`);
    a.child.stderr!.on('data', (c: Buffer) => this.#log.write(c));
    this.#exited = new Promise((resolve) => a.child.once('exit', (code, signal) => {
      this.#log.write(`--- soak ${new Date().toISOString()}: agent pid ${a.child.pid} exited, code ${code} signal ${signal} ---\n`);
      if (!this.#expecting && !this.#closed) {
        this.unexpectedExits.push({ pid: a.child.pid!, code, signal, tail: this.#stderr().split('\n').slice(-15).join('\n') });
        setTimeout(() => this.#closed || this.#child !== a.child || this.start(), 2_000);
      }
      resolve();
    }));
  }

  /** SIGKILL; resolves once it is gone. */
  async kill(): Promise<void> {
    this.#expecting = true;
    this.#log.write(`--- soak ${new Date().toISOString()}: SIGKILL to pid ${this.#child?.pid} ---\n`);
    this.#child?.kill('SIGKILL');
    await this.#exited;
  }

  /** SIGKILL at once, without waiting (the soak is being aborted). */
  killNow(): void {
    this.#closed = true;
    this.#child?.kill('SIGKILL');
  }

  /** SIGTERM, then SIGKILL after `ms`; resolves with how long the exit took and its code. */
  async stop(ms = 20_000): Promise<{ ms: number; code: number | null; signal: NodeJS.Signals | null }> {
    this.#closed = true;
    this.#expecting = true;
    const c = this.#child;
    const t0 = performance.now();
    if (!c || c.exitCode !== null || c.signalCode !== null) return { ms: 0, code: c?.exitCode ?? null, signal: c?.signalCode ?? null };
    const killer = setTimeout(() => c.kill('SIGKILL'), ms);
    c.kill('SIGTERM');
    await this.#exited;
    clearTimeout(killer);
    return { ms: Math.round(performance.now() - t0), code: c.exitCode, signal: c.signalCode };
  }

  /** Lines of the current agent's log that match `re`. */
  grep(re: RegExp): string[] {
    return this.#stderr().split('\n').filter((l) => re.test(l));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.#log.end(resolve));
  }
}

/** The soak's own dev env (scripts/dev-env.sh with MESHLET_DEV_DIR): never the shared one. */
export class PrivateDocker {
  constructor(readonly devDir: string, readonly etcdPort: string, private readonly log: (line: string) => void) {}

  #env(): NodeJS.ProcessEnv {
    return { ...process.env, MESHLET_DEV_DIR: this.devDir, MESHLET_DEV_ETCD_PORT: this.etcdPort };
  }

  async #devEnv(...args: string[]): Promise<void> {
    const { stdout, stderr } = await run('bash', [join(ROOT, 'scripts/dev-env.sh'), ...args], { env: this.#env(), maxBuffer: 1 << 24 });
    for (const l of `${stdout}${stderr}`.split('\n')) if (l.trim()) this.log(`dev-env: ${l}`);
  }

  /** Stops only this dockerd (its containers die with it); `dev-env.sh down dockerd` never stops what it did not start. */
  stop(): Promise<void> {
    return this.#devEnv('down', 'dockerd');
  }

  /** Starts it again (etcd and images are already there: nothing else is done). */
  start(): Promise<void> {
    return this.#devEnv('up');
  }
}
