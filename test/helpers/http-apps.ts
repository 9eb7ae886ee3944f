// Small HTTP apps on 127.0.0.1 that say which version answered, record what they were sent, and can be told
// to fail; and a keep-alive client that sends requests in bulk and tallies the answers.
import { createServer, request, Agent, type IncomingHttpHeaders, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Instance } from '../../agent/core/model/model.js';

export interface SeenRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
}

export type Behaviour =
  | { kind: 'ok' }
  /** Answers every request with this status. */
  | { kind: 'status'; status: number }
  /** Waits this long before answering 200. */
  | { kind: 'delay'; ms: number };

export interface HttpApp {
  id: string;
  service: string;
  version: string;
  port: number;
  seen: SeenRequest[];
  behave(b: Behaviour): void;
  /** Stops listening and drops open connections (connections are then refused). */
  close(): Promise<void>;
  /** Listens again on the same port. */
  reopen(): Promise<void>;
  instance(node?: string): Instance;
}

/** Answers `<version> <id>\n` (and JSON with `?echo`), with header `x-version`. */
export async function startHttpApp(service: string, version: string, id = `${service}-${version}`, port = 0): Promise<HttpApp> {
  let behaviour: Behaviour = { kind: 'ok' };
  const seen: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  let server: Server;
  const listen = (p: number) =>
    new Promise<number>((resolve, reject) => {
      server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          seen.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers });
          const answer = (status: number) => {
            const body = (req.url ?? '').includes('echo') ? JSON.stringify({ version, id, method: req.method, path: req.url, headers: req.headers }) + '\n' : `${version} ${id}\n`;
            res.writeHead(status, { 'content-type': 'text/plain', 'x-version': version, 'x-app': id });
            res.end(body);
          };
          if (behaviour.kind === 'status') answer(behaviour.status);
          else if (behaviour.kind === 'delay') setTimeout(() => answer(200), behaviour.ms);
          else answer(200);
        });
      });
      server.keepAliveTimeout = 60_000;
      server.on('connection', (s: Socket) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      server.once('error', reject);
      server.listen(p, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    });
  const app: HttpApp = {
    id,
    service,
    version,
    port: await listen(port),
    seen,
    behave: (b) => (behaviour = b),
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
    reopen: async () => {
      await listen(app.port);
    },
    instance: (node = 'local') => ({ service, version, node, address: '127.0.0.1', port: app.port }),
  };
  return app;
}

export interface Reply {
  status: number;
  version?: string;
  app?: string;
  headers: IncomingHttpHeaders;
  body: string;
  ms: number;
}

export interface SendOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  host?: string;
  timeoutMs?: number;
  agent?: Agent;
}

const sharedAgent = new Agent({ keepAlive: true, maxSockets: 64 });

/** One request to 127.0.0.1:`port`; a connection error is status 0 with the error in `body`. */
export function send(port: number, opts: SendOptions = {}): Promise<Reply> {
  const started = performance.now();
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path ?? '/', headers: { ...(opts.host ? { host: opts.host } : {}), ...opts.headers }, agent: opts.agent ?? sharedAgent, timeout: opts.timeoutMs ?? 10_000 },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        // A connection dropped mid-body (e.g. the sidecar killed) fires 'aborted'/'error' on res and never 'end':
        // without this the promise never settled and a load's stop() waited forever.
        res.on('error', (err) => resolve({ status: 0, headers: res.headers, body: `${err.message} after HTTP ${res.statusCode}: ${body}`, ms: performance.now() - started }));
        res.on('end', () => {
          const v = res.headers['x-version'];
          const a = res.headers['x-app'];
          resolve({ status: res.statusCode ?? 0, version: typeof v === 'string' ? v : undefined, app: typeof a === 'string' ? a : undefined, headers: res.headers, body, ms: performance.now() - started });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => resolve({ status: 0, headers: {}, body: err.message, ms: performance.now() - started }));
    req.end();
  });
}

export interface HttpTally {
  total: number;
  byVersion: Record<string, number>;
  byApp: Record<string, number>;
  byStatus: Record<number, number>;
  replies: Reply[];
}

/** `n` requests, `concurrency` at a time, tallied by version, app and status. */
export async function sendMany(port: number, n: number, opts: SendOptions & { concurrency?: number } = {}): Promise<HttpTally> {
  const tally: HttpTally = { total: 0, byVersion: {}, byApp: {}, byStatus: {}, replies: [] };
  let started = 0;
  const worker = async () => {
    while (started < n) {
      started++;
      const r = await send(port, opts);
      tally.total++;
      tally.replies.push(r);
      tally.byStatus[r.status] = (tally.byStatus[r.status] ?? 0) + 1;
      if (r.status === 200 && r.version) tally.byVersion[r.version] = (tally.byVersion[r.version] ?? 0) + 1;
      if (r.app) tally.byApp[r.app] = (tally.byApp[r.app] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 16 }, worker));
  return tally;
}
