// TCP echo servers on 127.0.0.1 that prefix every line with their version, and a client that opens one
// connection per exchange and tallies who answered: for tests of Envoy's TCP proxy.
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import type { Instance } from '../../agent/core/model/model.js';

export interface TcpApp {
  id: string;
  version: string;
  port: number;
  /** Connections accepted so far. */
  connections: number;
  instance(node?: string): Instance;
  close(): Promise<void>;
}

/** Answers each line `L` with `<version> <id> L`. */
export async function startTcpEcho(service: string, version: string, id = `${service}-${version}`): Promise<TcpApp> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    app.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    let buf = '';
    s.setEncoding('utf8');
    s.on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        s.write(`${version} ${id} ${buf.slice(0, nl)}\n`);
        buf = buf.slice(nl + 1);
      }
    });
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
  const app: TcpApp = {
    id,
    version,
    port,
    connections: 0,
    instance: (node = 'local') => ({ service, version, node, address: '127.0.0.1', port }),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
  return app;
}

/** One connection to 127.0.0.1:`port`: sends `line`, returns the first line back ('' on error or close). */
export function exchange(port: number, line: string, timeoutMs = 5000): Promise<string> {
  return firstLineBack(createConnection({ host: '127.0.0.1', port }), 'connect', line, timeoutMs, () => '');
}

/**
 * Sends `line` once `s` is connected (`connected`: 'connect', or 'secureConnect' for TLS) and resolves with the
 * first line back; `failed(reason)` gives the answer on a timeout, an error, or a close before any data.
 */
export function firstLineBack(s: Socket, connected: 'connect' | 'secureConnect', line: string, timeoutMs: number, failed: (reason: string) => string): Promise<string> {
  return new Promise((resolve) => {
    let buf = '';
    let settled = false;
    const done = (v: string) => {
      if (settled) return;
      settled = true;
      s.destroy();
      resolve(v);
    };
    s.setEncoding('utf8');
    s.setTimeout(timeoutMs, () => done(failed('timeout')));
    s.on(connected, () => s.write(`${line}\n`));
    s.on('data', (c: string) => {
      buf += c;
      const nl = buf.indexOf('\n');
      if (nl >= 0) done(buf.slice(0, nl));
    });
    s.on('error', (err) => done(failed(err.message)));
    s.on('close', () => done(buf || failed('closed')));
  });
}

export interface TcpTally {
  total: number;
  byVersion: Record<string, number>;
  failed: number;
}

/** `n` connections, `concurrency` at a time, tallied by the version that answered. */
export async function exchangeMany(port: number, n: number, concurrency = 16): Promise<TcpTally> {
  const tally: TcpTally = { total: 0, byVersion: {}, failed: 0 };
  let started = 0;
  const worker = async () => {
    while (started < n) {
      const i = started++;
      const answer = await exchange(port, `hello ${i}`);
      tally.total++;
      const [version, , ...rest] = answer.split(' ');
      if (!version || rest.join(' ') !== `hello ${i}`) tally.failed++;
      else tally.byVersion[version] = (tally.byVersion[version] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return tally;
}
