// Drives test/peers/etcd-resolver (a Go client on etcd's stock naming resolver) over its stdin/stdout protocol.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';

export interface CallsReply {
  type: 'calls';
  n: number;
  counts: Record<string, number>;
  errors: Record<string, number>;
  lastError?: string;
}

export interface ListReply {
  type: 'list';
  endpoints: Record<string, { Addr: string; Metadata: unknown }>;
}

export interface WatchUpdate {
  op: 'add' | 'delete';
  key: string;
  addr: string;
  metadata: unknown;
}

/** The binary scripts/dev-env.sh builds (MESHLET_TEST_ETCD_RESOLVER_PEER in its env output). */
export function peerBinary(): string {
  const bin = process.env.MESHLET_TEST_ETCD_RESOLVER_PEER;
  if (!bin || !existsSync(bin)) {
    throw new Error(`the Go resolver peer is not built (MESHLET_TEST_ETCD_RESOLVER_PEER=${bin ?? ''}): run scripts/dev-env.sh up (or go-peers), then eval "$(scripts/dev-env.sh env)"`);
  }
  return bin;
}

export class GoResolverPeer {
  readonly watched: WatchUpdate[][] = [];
  readonly #replies: Record<string, unknown>[] = [];
  #waiting: ((r: Record<string, unknown>) => void) | undefined;
  #stderr = '';
  readonly exited: Promise<{ code: number | null; stderr: string }>;

  private constructor(private readonly child: ChildProcess) {
    child.stderr!.on('data', (c: Buffer) => { this.#stderr = (this.#stderr + c.toString()).slice(-4000); });
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as Record<string, unknown>;
      if (msg.type === 'watch') return void this.watched.push(msg.updates as WatchUpdate[]);
      const w = this.#waiting;
      this.#waiting = undefined;
      if (w) w(msg);
      else this.#replies.push(msg);
    });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr: this.#stderr })));
  }

  /** Starts the peer with `env` (where the target variable lives) and waits for its "ready" line. */
  static async start(args: string[], env: Record<string, string>): Promise<GoResolverPeer> {
    const child = spawn(peerBinary(), args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    const peer = new GoResolverPeer(child);
    const ready = await Promise.race([peer.#next(), peer.exited.then((e) => { throw new Error(`the Go peer exited ${e.code}: ${e.stderr}`); })]);
    if (ready.type !== 'ready') throw new Error(`expected a ready line, got ${JSON.stringify(ready)}`);
    return peer;
  }

  get stderr(): string {
    return this.#stderr;
  }

  #next(): Promise<Record<string, unknown>> {
    const r = this.#replies.shift();
    if (r) return Promise.resolve(r);
    return new Promise((resolve) => (this.#waiting = resolve));
  }

  async #ask(line: string): Promise<Record<string, unknown>> {
    this.child.stdin!.write(`${line}\n`);
    const r = await this.#next();
    if (r.type === 'error') throw new Error(`the Go peer refused ${JSON.stringify(line)}: ${String(r.error)}`);
    return r;
  }

  /** n calls one after another through the resolver's round_robin channel. */
  calls(n: number): Promise<CallsReply> {
    return this.#ask(`call ${n}`) as Promise<unknown> as Promise<CallsReply>;
  }

  /** endpoints.Manager.List() of the target's keys. */
  list(): Promise<ListReply> {
    return this.#ask('list') as Promise<unknown> as Promise<ListReply>;
  }

  async quit(): Promise<void> {
    if (this.child.exitCode !== null) return;
    this.child.stdin!.end('quit\n');
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 5_000);
    await this.exited;
    clearTimeout(killer);
  }
}
