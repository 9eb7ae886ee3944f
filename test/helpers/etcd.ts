// Starts a private etcd on free loopback ports for one test file, and stops it again.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Etcd3 } from 'etcd3';
import { tempDir } from './paths.js';

export interface TestEtcd {
  url: string;
  dataDir: string;
  /** The etcd process: a test may freeze it (SIGSTOP) and thaw it (SIGCONT); stop() thaws it first. */
  pid: number;
  stop(): Promise<void>;
}

/** A loopback port nobody listens on right now (the kernel picks it; closed before use). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/**
 * PEM files for a TLS etcd: the CA that signed its certificate (valid for 127.0.0.1, server and client use),
 * and whether clients must present a certificate signed by that CA too.
 */
export interface EtcdTls {
  ca: string;
  cert: string;
  key: string;
  clientCertAuth?: boolean;
}

export async function startEtcd(opts: { binary?: string; timeoutMs?: number; extraArgs?: string[]; tls?: EtcdTls } = {}): Promise<TestEtcd> {
  const dir = tempDir('meshlet-etcd-');
  const dataDir = join(dir, 'data');
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const url = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${clientPort}`;
  const tlsArgs = opts.tls ? ['--cert-file', opts.tls.cert, '--key-file', opts.tls.key, ...(opts.tls.clientCertAuth ? ['--trusted-ca-file', opts.tls.ca, '--client-cert-auth'] : [])] : [];
  const peer = `http://127.0.0.1:${peerPort}`;
  const child = spawn(opts.binary ?? 'etcd', [
    '--name', 'default',
    '--data-dir', dataDir,
    '--listen-client-urls', url,
    '--advertise-client-urls', url,
    '--listen-peer-urls', peer,
    '--initial-advertise-peer-urls', peer,
    '--initial-cluster', `default=${peer}`,
    '--log-level', 'error',
    ...tlsArgs,
    ...(opts.extraArgs ?? []),
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Should the test process end without stop(), etcd must not outlive it.
  const orphan = () => child.kill('SIGKILL');
  process.once('exit', orphan);
  let stopped = false;
  const stop = async () => {
    if (!stopped) {
      stopped = true;
      process.removeListener('exit', orphan);
      if (child.exitCode === null && child.signalCode === null) {
        // A test may have paused it (SIGSTOP) to stall it: a paused process does not act on SIGTERM.
        child.kill('SIGCONT');
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(killer);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitHealthy(url, child, opts.timeoutMs ?? 20_000, opts.tls);
  } catch (err) {
    await stop();
    throw new Error(`etcd did not start on ${url}: ${(err as Error).message}\n${stderr}`);
  }
  return { url, dataDir, pid: child.pid!, stop };
}

async function waitHealthy(url: string, child: ChildProcess, timeoutMs: number, tls?: EtcdTls): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`etcd exited (${child.exitCode ?? child.signalCode})`);
    if (await healthy(url, tls).catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`no healthy answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** GET /health; over TLS the server's own certificate doubles as the client certificate. */
function healthy(url: string, tls?: EtcdTls): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const options = tls ? { ca: readFileSync(tls.ca), cert: readFileSync(tls.cert), key: readFileSync(tls.key) } : {};
    const req = (tls ? httpsGet : httpGet)(`${url}/health`, { ...options, timeout: 1_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(res.statusCode === 200 && (JSON.parse(body) as { health?: string }).health === 'true'));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** A fresh key prefix, so that tests sharing one etcd never see each other's keys. */
export function uniquePrefix(tag = 't'): string {
  return `/${tag}-${randomBytes(6).toString('hex')}`;
}

export interface Listing {
  /** etcd's revision when read: unchanged means nothing at all was written. */
  revision: number;
  kvs: { key: string; value: string; modRevision: number }[];
}

/** Every key under `prefix` with its value and mod revision, in key order. */
export async function listing(etcd: Etcd3, prefix: string): Promise<Listing> {
  const res = await etcd.getAll().prefix(prefix).sort('Key', 'Ascend').exec();
  return {
    revision: Number(res.header.revision),
    kvs: res.kvs.map((kv) => ({ key: kv.key.toString(), value: kv.value.toString(), modRevision: Number(kv.mod_revision) })),
  };
}

/** A throwaway CA, and a certificate for 127.0.0.1 (server and client use) and one for a client, made with openssl. */
export async function makeCerts(dir: string): Promise<{ ca: string; server: { cert: string; key: string }; client: { cert: string; key: string } }> {
  const run = promisify(execFile);
  const p = (name: string) => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run('openssl', ['req', '-x509', ...ec, '-keyout', p('ca.key'), '-out', p('ca.crt'), '-days', '2', '-subj', '/CN=meshlet-test-ca']);
  for (const [name, ext] of [['server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n'], ['client', 'extendedKeyUsage=clientAuth\n']] as const) {
    writeFileSync(p(`${name}.ext`), ext);
    await run('openssl', ['req', ...ec, '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`), '-subj', `/CN=${name === 'server' ? '127.0.0.1' : 'root'}`]);
    await run('openssl', ['x509', '-req', '-in', p(`${name}.csr`), '-CA', p('ca.crt'), '-CAkey', p('ca.key'), '-CAcreateserial', '-out', p(`${name}.crt`), '-days', '2', '-extfile', p(`${name}.ext`)]);
  }
  return { ca: p('ca.crt'), server: { cert: p('server.crt'), key: p('server.key') }, client: { cert: p('client.crt'), key: p('client.key') } };
}
