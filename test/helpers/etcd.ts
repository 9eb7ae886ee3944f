// Starts a private etcd on free loopback ports for one test file, and stops it again.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { tempDir } from './paths.js';

export interface TestEtcd {
  url: string;
  dataDir: string;
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

export async function startEtcd(opts: { binary?: string; timeoutMs?: number; extraArgs?: string[] } = {}): Promise<TestEtcd> {
  const dir = tempDir('meshlet-etcd-');
  const dataDir = join(dir, 'data');
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const url = `http://127.0.0.1:${clientPort}`;
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
    ...(opts.extraArgs ?? []),
  ], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000); });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stopped = false;
  const stop = async () => {
    if (!stopped) {
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitHealthy(url, child, opts.timeoutMs ?? 20_000);
  } catch (err) {
    await stop();
    throw new Error(`etcd did not start on ${url}: ${(err as Error).message}\n${stderr}`);
  }
  return { url, dataDir, stop };
}

async function waitHealthy(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`etcd exited (${child.exitCode ?? child.signalCode})`);
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1_000) });
      if (res.ok && ((await res.json()) as { health?: string }).health === 'true') return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`no healthy answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
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
