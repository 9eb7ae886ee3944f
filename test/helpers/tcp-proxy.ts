// A loopback TCP proxy for cutting a client's connection to a server in tests (like etcd3's test Proxy).
// cut() drops every connection but keeps listening; suspend() also stops taking new ones until resume();
// stall() keeps connections open but forwards nothing, like a server stopped with SIGSTOP.
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface ProxyStats {
  /** Client connections accepted (held ones included). */
  accepted: number;
  /** Connections dropped by cut(), suspend() or close(). */
  dropped: number;
  cuts: number;
  bytesToTarget: number;
  bytesFromTarget: number;
}

/**
 * 'refuse': the port stops listening, so connects fail with ECONNREFUSED (resume() listens on the same port again).
 * 'hold': connects succeed but nothing is forwarded until resume(), like a server that accepts and never answers.
 */
export type SuspendMode = 'refuse' | 'hold';

interface Pair {
  client: Socket;
  upstream: Socket;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

export class TcpProxy {
  readonly stats: ProxyStats = { accepted: 0, dropped: 0, cuts: 0, bytesToTarget: 0, bytesFromTarget: 0 };
  #pairs = new Set<Pair>();
  #held = new Set<Socket>();
  #server: Server | undefined;
  #mode: 'open' | SuspendMode | 'stall' | 'closed' = 'open';

  /** Set when the target is a unix socket (toUnixSocket): host and port are then unused. */
  #targetPath: string | undefined;

  private constructor(readonly targetHost: string, readonly targetPort: number, public port: number) {}

  /** Listens on 127.0.0.1 (`port` 0: the kernel picks one) in front of `targetHost:targetPort`, which must be loopback too. */
  static async start(targetHost: string, targetPort: number, port = 0): Promise<TcpProxy> {
    if (!LOOPBACK.test(targetHost)) throw new Error(`tcp-proxy only forwards to loopback, not ${targetHost}`);
    const proxy = new TcpProxy(targetHost, targetPort, port);
    await proxy.#listen();
    return proxy;
  }

  /** Listens on 127.0.0.1 in front of a unix socket (e.g. dockerd's): reach it as `tcp://127.0.0.1:<port>`. */
  static async toUnixSocket(path: string, port = 0): Promise<TcpProxy> {
    const proxy = new TcpProxy('', 0, port);
    proxy.#targetPath = path;
    await proxy.#listen();
    return proxy;
  }

  /** Parses `http://127.0.0.1:2379`-style URLs. */
  static async forUrl(url: string): Promise<TcpProxy> {
    const u = new URL(url);
    return TcpProxy.start(u.hostname.replace(/^\[|\]$/g, ''), Number(u.port));
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Connections currently forwarded. */
  get active(): number {
    return this.#pairs.size;
  }

  /** Connections accepted during suspend('hold') or stall(), waiting for resume(). */
  get held(): number {
    return this.#held.size;
  }

  /** Suspended or stalled: nothing is forwarded. */
  get suspended(): boolean {
    return this.#mode === 'refuse' || this.#mode === 'hold' || this.#mode === 'stall';
  }

  /** Destroys every current connection; new ones are accepted as usual. Returns how many were dropped. */
  cut(): number {
    this.stats.cuts++;
    return this.#dropAll();
  }

  /** Drops every connection and stops forwarding until resume(). */
  async suspend(mode: SuspendMode = 'refuse'): Promise<void> {
    if (this.#mode === 'closed') throw new Error('proxy closed');
    if (this.suspended) return;
    this.#mode = mode;
    this.#dropAll();
    if (mode === 'refuse') await this.#unlisten();
  }

  /** Keeps every connection but stops reading from either side (bytes wait in the kernel); new connections are held. */
  stall(): void {
    if (this.#mode === 'closed') throw new Error('proxy closed');
    if (this.suspended) return;
    this.#mode = 'stall';
    for (const { client, upstream } of this.#pairs) {
      client.pause();
      upstream.pause();
    }
  }

  /** Ends suspend() or stall(). */
  async resume(): Promise<void> {
    if (!this.suspended) return;
    const was = this.#mode;
    this.#mode = 'open';
    if (was === 'refuse') await this.#listen();
    for (const { client, upstream } of this.#pairs) {
      client.resume();
      upstream.resume();
    }
    for (const sock of this.#held) this.#forward(sock);
    this.#held.clear();
  }

  async close(): Promise<void> {
    this.#mode = 'closed';
    for (const sock of this.#held) sock.destroy();
    this.#held.clear();
    this.#dropAll();
    await this.#unlisten();
  }

  #listen(): Promise<void> {
    const server = createServer({ noDelay: true }, (sock) => this.#accept(sock));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject);
        this.port = (server.address() as { port: number }).port;
        this.#server = server;
        resolve();
      });
    });
  }

  #unlisten(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    return new Promise((resolve) => (server ? server.close(() => resolve()) : resolve()));
  }

  #accept(sock: Socket): void {
    this.stats.accepted++;
    sock.on('error', () => {});
    if (this.#mode === 'hold' || this.#mode === 'stall') {
      this.#held.add(sock);
      sock.once('close', () => this.#held.delete(sock));
      return;
    }
    if (this.#mode !== 'open') {
      sock.destroy();
      return;
    }
    this.#forward(sock);
  }

  #forward(client: Socket): void {
    const upstream = this.#targetPath !== undefined ? connect({ path: this.#targetPath }) : connect({ host: this.targetHost, port: this.targetPort, noDelay: true });
    const pair: Pair = { client, upstream };
    this.#pairs.add(pair);
    const drop = () => {
      if (!this.#pairs.delete(pair)) return;
      client.destroy();
      upstream.destroy();
    };
    for (const sock of [client, upstream]) {
      sock.on('error', drop);
      sock.on('close', drop);
    }
    this.#link(client, upstream, (n) => (this.stats.bytesToTarget += n));
    this.#link(upstream, client, (n) => (this.stats.bytesFromTarget += n));
  }

  /** Like pipe(), but a stall can pause the source without the destination's 'drain' resuming it. */
  #link(from: Socket, to: Socket, count: (n: number) => void): void {
    from.on('data', (b: Buffer) => {
      count(b.length);
      if (!to.write(b)) from.pause();
    });
    to.on('drain', () => {
      if (this.#mode !== 'stall') from.resume();
    });
    from.on('end', () => to.end());
  }

  #dropAll(): number {
    const n = this.#pairs.size;
    for (const pair of [...this.#pairs]) {
      this.#pairs.delete(pair);
      pair.client.destroy();
      pair.upstream.destroy();
    }
    this.stats.dropped += n;
    return n;
  }
}
