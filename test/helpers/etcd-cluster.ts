// Starts a private three-member etcd cluster on free loopback ports, and lets a test kill, freeze, thaw and
// restart its members one at a time.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { noop } from 'cockatiel';
import { freePort } from './etcd.js';
import { tempDir } from './paths.js';

export interface ClusterMember {
  name: string;
  /** Client URL, as the agent's --etcd takes it. */
  url: string;
  peer: string;
  dataDir: string;
  /** The running process's pid; undefined while killed. */
  pid: number | undefined;
}

export interface EtcdCluster {
  members: ClusterMember[];
  /** Every member's client URL, in member order. */
  urls: string[];
  /** The member that is leader now, as the live members see it (waits up to `timeoutMs` for one). */
  leader(timeoutMs?: number): Promise<ClusterMember>;
  /** The member serving `url` (a client URL). */
  member(url: string): ClusterMember;
  /** How many watch streams the member serves now (its /metrics): tells which member a client's watch is on. */
  watchStreams(m: ClusterMember): Promise<number>;
  /** SIGKILL: connections are refused from now on. */
  kill(m: ClusterMember): Promise<void>;
  /** SIGSTOP: connections stay open and nothing answers. */
  freeze(m: ClusterMember): void;
  thaw(m: ClusterMember): void;
  /** Starts a killed member again on its data dir and ports, and waits until it answers. */
  restart(m: ClusterMember): Promise<void>;
  stop(): Promise<void>;
}

interface Running {
  child: ChildProcess;
  exited: Promise<void>;
  stderr: () => string;
}

export async function startEtcdCluster(opts: { size?: number; timeoutMs?: number } = {}): Promise<EtcdCluster> {
  const size = opts.size ?? 3;
  const dir = tempDir('meshlet-etcd-cluster-');
  const members: ClusterMember[] = [];
  for (let i = 0; i < size; i++) {
    const [client, peer] = [await freePort(), await freePort()];
    members.push({ name: `m${i}`, url: `http://127.0.0.1:${client}`, peer: `http://127.0.0.1:${peer}`, dataDir: join(dir, `m${i}`), pid: undefined });
  }
  const initialCluster = members.map((m) => `${m.name}=${m.peer}`).join(',');
  const running = new Map<ClusterMember, Running>();
  // One single-host client per member, without retries or breaker, for the leader look-up and readiness.
  const probes = new Map(members.map((m) => [m, new Etcd3({ hosts: m.url, faultHandling: { host: () => noop, global: noop } })]));

  const spawnMember = (m: ClusterMember, state: 'new' | 'existing') => {
    const child = spawn('etcd', [
      '--name', m.name,
      '--data-dir', m.dataDir,
      '--listen-client-urls', m.url,
      '--advertise-client-urls', m.url,
      '--listen-peer-urls', m.peer,
      '--initial-advertise-peer-urls', m.peer,
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', state,
      '--initial-cluster-token', `meshlet-test-${dir}`,
      '--log-level', 'error',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4000); });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    running.set(m, { child, exited, stderr: () => stderr });
    m.pid = child.pid;
  };

  const status = async (m: ClusterMember) => {
    const s = await probes.get(m)!.maintenance.status({ deadline: new Date(Date.now() + 1_000) });
    return { id: s.header.member_id, leader: s.leader };
  };

  // Ready: the member answers a linearizable read, which needs a leader and this member caught up with it.
  const waitReady = async (m: ClusterMember, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    let last: unknown;
    for (;;) {
      const r = running.get(m);
      if (!r || r.child.exitCode !== null || r.child.signalCode !== null) throw new Error(`etcd ${m.name} exited: ${r?.stderr() ?? ''}`);
      try {
        await probes.get(m)!.get('/meshlet-cluster-ready').options({ deadline: new Date(Date.now() + 1_000) }).exec();
        return;
      } catch (err) {
        last = err;
      }
      if (Date.now() > deadline) throw new Error(`etcd ${m.name} not ready within ${timeoutMs} ms: ${(last as Error)?.message}\n${r.stderr()}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  };

  const stopMember = async (m: ClusterMember, signal: NodeJS.Signals) => {
    const r = running.get(m);
    if (!r) return;
    if (r.child.exitCode === null && r.child.signalCode === null) {
      r.child.kill('SIGCONT'); // a frozen process does not act on SIGTERM
      r.child.kill(signal);
      const killer = setTimeout(() => r.child.kill('SIGKILL'), 10_000);
      await r.exited;
      clearTimeout(killer);
    }
    running.delete(m);
    m.pid = undefined;
  };

  // Should the test process end without stop(), no member may outlive it.
  const orphans = () => { for (const r of running.values()) r.child.kill('SIGKILL'); };
  process.once('exit', orphans);

  const cluster: EtcdCluster = {
    members,
    urls: members.map((m) => m.url),
    async leader(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        for (const m of members) {
          if (!running.has(m)) continue;
          const s = await status(m).catch(() => undefined);
          if (!s || s.leader === '0') continue;
          for (const other of members) {
            if (!running.has(other)) continue;
            const o = await status(other).catch(() => undefined);
            if (o?.id === s.leader) return other;
          }
        }
        if (Date.now() > deadline) throw new Error(`no leader among the live members within ${timeoutMs} ms`);
        await new Promise((res) => setTimeout(res, 100));
      }
    },
    member(url) {
      const m = members.find((x) => x.url === url || x.url === `http://${url}`);
      if (!m) throw new Error(`no member serves ${url}`);
      return m;
    },
    async watchStreams(m) {
      const res = await fetch(`${m.url}/metrics`, { signal: AbortSignal.timeout(2_000) });
      const line = (await res.text()).split('\n').find((l) => l.startsWith('etcd_debugging_mvcc_watch_stream_total '));
      if (!line) throw new Error(`etcd ${m.name}: no etcd_debugging_mvcc_watch_stream_total in /metrics`);
      return Number(line.split(' ')[1]);
    },
    kill: (m) => stopMember(m, 'SIGKILL'),
    freeze(m) {
      running.get(m)?.child.kill('SIGSTOP');
    },
    thaw(m) {
      running.get(m)?.child.kill('SIGCONT');
    },
    async restart(m) {
      await stopMember(m, 'SIGKILL');
      spawnMember(m, 'existing');
      await waitReady(m, opts.timeoutMs ?? 20_000);
    },
    async stop() {
      process.removeListener('exit', orphans);
      for (const p of probes.values()) p.close();
      await Promise.all(members.map((m) => stopMember(m, 'SIGTERM')));
      rmSync(dir, { recursive: true, force: true });
    },
  };

  for (const m of members) spawnMember(m, 'new');
  try {
    await Promise.all(members.map((m) => waitReady(m, opts.timeoutMs ?? 30_000)));
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
