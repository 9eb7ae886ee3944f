// The agent's http/tcp/grpc probes against real servers on 127.0.0.1: verdicts, hard timeouts, and one
// reused gRPC channel per target that is closed when the instance goes away.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { GrpcHealthClients, HostProbes, decodeHealthStatus, probeGrpc, probeHttp, probeTcp } from '../../agent/health/probes.js';
import { freePort } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: (() => unknown)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

function listen<S extends Server | TcpServer>(server: S): Promise<number> {
  cleanups.push(() => new Promise((r) => server.close(() => r(undefined))));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
}

/**
 * The request's `service` field (field 1, a string): just enough protobuf for a test server. An object, as
 * proto-loader gives: grpc-js's server takes a falsy request (an empty string) for "no request message".
 */
function decodeService(b: Buffer): { service: string } {
  return { service: b.length > 2 && b[0] === 0x0a ? b.subarray(2, 2 + b[1]!).toString() : '' };
}

/** A gRPC server with grpc.health.v1.Health/Check answering from `statuses` (1 SERVING, 2 NOT_SERVING); 'hang' never answers. */
async function healthServer(statuses: Record<string, number | 'hang'>, port = 0): Promise<{ port: number; checks: number; stop(): Promise<void> }> {
  const server = new grpc.Server();
  const s = { port: 0, checks: 0, stop: () => new Promise<void>((r) => server.tryShutdown(() => r())) };
  server.addService({
    Check: {
      path: '/grpc.health.v1.Health/Check', requestStream: false, responseStream: false,
      requestSerialize: (b: Buffer) => b, requestDeserialize: decodeService,
      responseSerialize: (status: number) => Buffer.from([0x08, status]), responseDeserialize: (b: Buffer) => b,
    },
  }, {
    Check: (call: grpc.ServerUnaryCall<{ service: string }, number>, cb: grpc.sendUnaryData<number>) => {
      s.checks++;
      const st = statuses[call.request.service];
      if (st === 'hang') return;
      if (st === undefined) cb({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
      else cb(null, st);
    },
  });
  s.port = await new Promise<number>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  cleanups.push(() => server.forceShutdown());
  return s;
}

describe('http and tcp probes', () => {
  test('http: 2xx and 3xx pass, 4xx and 5xx fail, redirects are not followed', async () => {
    const port = await listen(createServer((req, res) => {
      const code = Number(req.url!.slice(1));
      res.writeHead(code, code === 302 ? { location: '/500' } : {});
      res.end('x'.repeat(100_000));
    }));
    for (const [code, ok] of [[200, true], [204, true], [302, true], [404, false], [503, false]] as const) {
      const r = await probeHttp('127.0.0.1', port, `/${code}`, 1_000);
      assert.deepEqual(r, { ok, detail: `GET /${code}: HTTP ${code}` });
    }
  });

  test('http: a server that accepts and never answers fails at the timeout; a closed port fails at once', async () => {
    const port = await listen(createServer(() => {}));
    const started = Date.now();
    const r = await probeHttp('127.0.0.1', port, '/healthz', 300);
    const took = Date.now() - started;
    assert.deepEqual(r, { ok: false, detail: 'GET /healthz: timed out after 300 ms' });
    assert.ok(took >= 290 && took < 800, `took ${took} ms`);
    const closed = await freePort();
    const refused = await probeHttp('127.0.0.1', closed, '/healthz', 1_000);
    assert.equal(refused.ok, false);
    assert.match(refused.detail, /ECONNREFUSED/);
  });

  test('tcp: an accepted connection passes, a refused one fails', async () => {
    const port = await listen(createTcpServer((sock) => sock.destroy()));
    assert.deepEqual(await probeTcp('127.0.0.1', port, 500), { ok: true, detail: `connected to 127.0.0.1:${port}` });
    const r = await probeTcp('127.0.0.1', await freePort(), 500);
    assert.equal(r.ok, false);
    assert.match(r.detail, /ECONNREFUSED/);
  });
});

describe('grpc probe', () => {
  test('SERVING passes; NOT_SERVING, an unknown service, no health service and a hang fail', async () => {
    const srv = await healthServer({ '': 1, 'reviews.v1.Reviews': 2, slow: 'hang' });
    const clients = new GrpcHealthClients();
    cleanups.push(() => clients.closeAll());
    assert.deepEqual(await probeGrpc('127.0.0.1', srv.port, '', 1_000, clients), { ok: true, detail: 'grpc.health.v1.Health/Check(""): SERVING' });
    assert.deepEqual(await probeGrpc('127.0.0.1', srv.port, 'reviews.v1.Reviews', 1_000, clients), { ok: false, detail: 'grpc.health.v1.Health/Check("reviews.v1.Reviews"): NOT_SERVING' });
    assert.match((await probeGrpc('127.0.0.1', srv.port, 'other', 1_000, clients)).detail, /NOT_FOUND: unknown service/);
    const started = Date.now();
    assert.match((await probeGrpc('127.0.0.1', srv.port, 'slow', 300, clients)).detail, /timed out after 300 ms/);
    assert.ok(Date.now() - started < 800);
    assert.equal(clients.size, 1, 'one channel for the target, reused');

    const plain = new grpc.Server();
    const port = await new Promise<number>((resolve, reject) => plain.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
    cleanups.push(() => plain.forceShutdown());
    assert.match((await probeGrpc('127.0.0.1', port, '', 1_000)).detail, /does not implement grpc\.health\.v1\.Health/);
    assert.equal((await probeGrpc('127.0.0.1', await freePort(), '', 500)).ok, false);
  });

  test('an app restarted on the same port passes again within about a second (short reconnect backoff)', async () => {
    const probes = new HostProbes();
    cleanups.push(() => probes.close());
    const check = { kind: 'grpc' as const, service: '', timing: { intervalMs: 100, timeoutMs: 500, retries: 1, startPeriodMs: 0 } };
    let srv = await healthServer({ '': 1 });
    const port = srv.port;
    assert.equal((await probes.probe('greeter/v1', '127.0.0.1', port, check, 500)).ok, true);
    await srv.stop();
    await waitFor('a failing probe', async () => !(await probes.probe('greeter/v1', '127.0.0.1', port, check, 500)).ok || undefined, 5_000, 50);
    await new Promise((r) => setTimeout(r, 1_500)); // let the channel back off
    srv = await healthServer({ '': 1 }, port);
    const started = Date.now();
    await waitFor('a passing probe', async () => (await probes.probe('greeter/v1', '127.0.0.1', port, check, 500)).ok || undefined, 5_000, 50);
    assert.ok(Date.now() - started < 2_000, `took ${Date.now() - started} ms`);
    assert.equal(probes.grpc.size, 1);
    probes.release('greeter/v1');
    assert.equal(probes.grpc.size, 0, 'channel closed when the instance went away');
  });

  test('the response decoder reads the status field and skips others', () => {
    assert.equal(decodeHealthStatus(Buffer.alloc(0)), 0);
    assert.equal(decodeHealthStatus(Buffer.from([0x08, 0x01])), 1);
    assert.equal(decodeHealthStatus(Buffer.from([0x12, 0x02, 0x61, 0x62, 0x08, 0x02])), 2);
    assert.throws(() => decodeHealthStatus(Buffer.from([0x08])), /truncated/);
  });
});
