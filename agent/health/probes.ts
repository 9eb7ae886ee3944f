// The agent's own health probes (http, tcp, grpc), run from the host as Consul and Nomad do, so an
// image needs no curl or nc. Each resolves to { ok, detail } within its timeout and never throws.
import { request } from 'node:http';
import { connect } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { HealthCheck } from '../core/model/model.js';

export interface ProbeResult {
  ok: boolean;
  detail: string;
}

/** `host:port`, with brackets around an IPv6 address. */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** GET `path`; 2xx and 3xx pass (redirects are not followed), like Consul's HTTP check. */
export function probeHttp(host: string, port: number, path: string, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (ok: boolean, detail: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ ok, detail });
    };
    // One timer over connect, headers and all: a server that accepts and then stalls still fails in time.
    const timer = setTimeout(() => done(false, `GET ${path}: timed out after ${timeoutMs} ms`), timeoutMs);
    const req = request({ host, port, path, method: 'GET', agent: false, headers: { 'user-agent': 'meshlet-health', connection: 'close' } }, (res) => {
      const code = res.statusCode ?? 0;
      res.resume();
      done(code >= 200 && code < 400, `GET ${path}: HTTP ${code}`);
    });
    req.on('error', (err) => done(false, `GET ${path}: ${errText(err)}`));
    req.end();
  });
}

/** Passes when a TCP connection is accepted. */
export function probeTcp(host: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (ok: boolean, detail: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ ok, detail });
    };
    const timer = setTimeout(() => done(false, `connect ${hostPort(host, port)}: timed out after ${timeoutMs} ms`), timeoutMs);
    const sock = connect({ host, port });
    sock.once('connect', () => done(true, `connected to ${hostPort(host, port)}`));
    sock.once('error', (err) => done(false, `connect ${hostPort(host, port)}: ${errText(err)}`));
  });
}

// grpc.health.v1: HealthCheckRequest { string service = 1; } → HealthCheckResponse { ServingStatus status = 1; }.
// Two one-field messages: encoded by hand rather than loading a .proto that no installed package ships.
const HEALTH_CHECK = '/grpc.health.v1.Health/Check';
const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

function encodeRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  return name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a]), varint(name.length), name]);
}

function varint(n: number): Buffer {
  const out: number[] = [];
  for (; n > 0x7f; n >>>= 7) out.push((n & 0x7f) | 0x80);
  out.push(n);
  return Buffer.from(out);
}

/** The `status` field of a HealthCheckResponse (0 when absent, as proto3 says); unknown fields skipped. */
export function decodeHealthStatus(buf: Buffer): number {
  let i = 0;
  let status = 0;
  const readVarint = () => {
    let v = 0;
    for (let shift = 0; i < buf.length; shift += 7) {
      const b = buf[i++]!;
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
    throw new Error('truncated varint');
  };
  while (i < buf.length) {
    const tag = readVarint();
    const wire = tag & 7;
    if (wire === 0) {
      const v = readVarint();
      if (tag >>> 3 === 1) status = v;
    } else if (wire === 2) {
      const len = readVarint(); // not `i += readVarint()`: that reads i before the varint moves it
      i += len;
    }
    else if (wire === 1) i += 8;
    else if (wire === 5) i += 4;
    else throw new Error(`unexpected wire type ${wire}`);
  }
  return status;
}

/** One gRPC channel per target, reused by every probe of it; close it when the instance goes away. */
export class GrpcHealthClients {
  #clients = new Map<string, grpc.Client>();

  get(host: string, port: number): grpc.Client {
    const target = hostPort(host, port);
    let client = this.#clients.get(target);
    if (!client) {
      // A short reconnect backoff: the default (up to 120 s) would keep failing probes long after the app is back.
      client = new grpc.Client(target, grpc.credentials.createInsecure(), {
        'grpc.initial_reconnect_backoff_ms': 200,
        'grpc.max_reconnect_backoff_ms': 1_000,
        'grpc.enable_retries': 0,
      });
      this.#clients.set(target, client);
    }
    return client;
  }

  close(host: string, port: number): void {
    const target = hostPort(host, port);
    this.#clients.get(target)?.close();
    this.#clients.delete(target);
  }

  closeAll(): void {
    for (const c of this.#clients.values()) c.close();
    this.#clients.clear();
  }

  get size(): number {
    return this.#clients.size;
  }
}

/** grpc.health.v1.Health/Check; SERVING passes. Without `clients` a one-off channel is opened and closed. */
export function probeGrpc(host: string, port: number, service: string, timeoutMs: number, clients?: GrpcHealthClients): Promise<ProbeResult> {
  const own = clients ? undefined : new GrpcHealthClients();
  const client = (clients ?? own!).get(host, port);
  const what = `grpc.health.v1.Health/Check(${JSON.stringify(service)})`;
  return new Promise<ProbeResult>((resolve) => {
    let settled = false;
    const done = (ok: boolean, detail: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      own?.closeAll();
      resolve({ ok, detail });
    };
    // The call's deadline should end it; this timer is the hard stop should it not.
    const timer = setTimeout(() => { call.cancel(); done(false, `${what}: timed out after ${timeoutMs} ms`); }, timeoutMs + 50);
    const call = client.makeUnaryRequest(HEALTH_CHECK, encodeRequest, (b: Buffer) => b, service, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
      if (err) {
        const why = err.code === grpc.status.DEADLINE_EXCEEDED ? `timed out after ${timeoutMs} ms`
          : err.code === grpc.status.UNIMPLEMENTED ? 'the server does not implement grpc.health.v1.Health'
          : `${grpc.status[err.code] ?? err.code}: ${err.details}`;
        return done(false, `${what}: ${why}`);
      }
      let status: number;
      try {
        status = decodeHealthStatus(res!);
      } catch (e) {
        return done(false, `${what}: unreadable response (${(e as Error).message})`);
      }
      done(status === 1, `${what}: ${SERVING_STATUS[status] ?? `status ${status}`}`);
    });
  });
}

export type ProbedCheck = Exclude<HealthCheck, { kind: 'exec' }>;

/** What the health tracker needs to probe an instance; tests pass a fake. */
export interface ProbeRunner {
  probe(key: string, address: string, port: number, check: ProbedCheck, timeoutMs: number): Promise<ProbeResult>;
  /** The instance went away (or changed target): drop anything kept for it. */
  release(key: string): void;
}

/** The real probes, with the gRPC channels they keep per instance. */
export class HostProbes implements ProbeRunner {
  readonly grpc = new GrpcHealthClients();
  #targets = new Map<string, { address: string; port: number }>();

  probe(key: string, address: string, port: number, check: ProbedCheck, timeoutMs: number): Promise<ProbeResult> {
    switch (check.kind) {
      case 'http':
        return probeHttp(address, port, check.path, timeoutMs);
      case 'tcp':
        return probeTcp(address, port, timeoutMs);
      case 'grpc': {
        const was = this.#targets.get(key);
        if (was && (was.address !== address || was.port !== port)) this.release(key);
        this.#targets.set(key, { address, port });
        return probeGrpc(address, port, check.service, timeoutMs, this.grpc);
      }
    }
  }

  release(key: string): void {
    const t = this.#targets.get(key);
    if (!t) return;
    this.#targets.delete(key);
    // Another instance may probe the same target (not in practice: one app per host port).
    if (![...this.#targets.values()].some((o) => o.address === t.address && o.port === t.port)) this.grpc.close(t.address, t.port);
  }

  close(): void {
    this.#targets.clear();
    this.grpc.closeAll();
  }
}

function errText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.message || e.code || String(err);
}
