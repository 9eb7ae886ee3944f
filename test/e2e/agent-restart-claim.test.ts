// `meshlet agent` restarted at awkward moments, as a process against a real etcd: in the last second of its
// lease (issue: the remaining TTL was read in whole seconds, the lease dropped, and the claim still held under
// it refused the restart with exit 3 naming its own dead predecessor), over a claim its previous run left
// under another lease, next to a live agent, and with a corrupt state.json.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { keys } from '../../agent/core/model/keys.js';
import { EXIT } from '../../agent/cli.js';
import { startEtcd, freePort, type TestEtcd } from '../helpers/etcd.js';
import { ROOT, tempDir } from '../helpers/paths.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait.js';

const STANDIN = process.env.MESHLET_TEST_STANDIN_IMAGE ?? 'meshlet-test/envoy-standin:1';
let etcdServer: TestEtcd;
let etcd: Etcd3;
const running = new Set<Agent>();

interface Node {
  node: string;
  k: ReturnType<typeof keys>;
  stateDir: string;
}

interface Agent {
  pid: number;
  stderr(): string;
  /** The log lines (JSON) written so far. */
  lines(): { level: string; msg: string; [f: string]: unknown }[];
  exited: Promise<number | null>;
  kill(sig: NodeJS.Signals): Promise<number | null>;
}

function newNode(): Node {
  const node = `restart-${Math.random().toString(36).slice(2, 8)}`;
  return { node, k: keys(`/${node}`), stateDir: tempDir('meshlet-agent-restart-') };
}

async function spawnAgent(n: Node, opts: { ttl?: number; etcdUrl?: string } = {}): Promise<Agent> {
  const args = ['agent', '--node', n.node, '--etcd', opts.etcdUrl ?? etcdServer.url, '--prefix', n.k.prefix, '--state-dir', n.stateDir, '--advertise-address', '127.0.0.1',
    '--sidecar-image', STANDIN, '--xds-port', String(await freePort()), '--lease-ttl', String(opts.ttl ?? 10), '--admin-ports', '15920-15929'];
  const child = spawn(process.execPath, [join(ROOT, 'dist/agent/bin.js'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const a: Agent = {
    pid: child.pid!,
    stderr: () => stderr,
    lines: () => stderr.split('\n').flatMap((l) => {
      try {
        return [JSON.parse(l)];
      } catch {
        return [];
      }
    }),
    exited,
    kill: async (sig) => {
      child.kill(sig);
      return exited;
    },
  };
  running.add(a);
  void exited.then(() => running.delete(a));
  return a;
}

/** The "agent started" line; an agent that exits first fails at once, naming its code. */
async function started(a: Agent, timeoutMs = 30_000): Promise<{ lease: string; leaseAdopted: boolean; seenAt: number }> {
  const ended = a.exited.then((code) => {
    throw new Error(`the agent exited with ${code}:\n${a.stderr()}`);
  });
  const line = waitFor('the agent to start', () => a.lines().find((l) => l.msg === 'agent started') && performance.now(), timeoutMs, 5);
  const seenAt = await Promise.race([line, ended]);
  ended.catch(() => {});
  const l = a.lines().find((x) => x.msg === 'agent started')!;
  return { lease: String(l.lease), leaseAdopted: l.leaseAdopted === true, seenAt };
}

async function claimOf(n: Node): Promise<{ value: Record<string, unknown>; lease: string } | undefined> {
  const kv = (await etcd.get(n.k.nodeOwner(n.node)).exec()).kvs[0];
  return kv ? { value: JSON.parse(kv.value.toString()), lease: String(kv.lease) } : undefined;
}

const ttlOf = async (id: string) => Number((await etcd.leaseClient.leaseTimeToLive({ ID: id, keys: false })).TTL);

/** A pid no process has now (one that just ended). */
function deadPid(): number {
  const r = spawnSync('true');
  return r.pid!;
}

before(async () => {
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
});

after(async () => {
  for (const a of running) await a.kill('SIGKILL');
  etcd?.close();
  await etcdServer?.stop();
});

test('a restart with less than a second of the lease left takes it back; nothing is refused', { timeout: 90_000 }, async () => {
  const n = newNode();
  const first = await spawnAgent(n, { ttl: 4 });
  const { lease } = await started(first);
  await waitFor('state.json to name the lease', () => existsSync(join(n.stateDir, 'state.json')) && JSON.parse(readFileSync(join(n.stateDir, 'state.json'), 'utf8')).leaseId === lease);
  await first.kill('SIGKILL');
  // The restarted agent waits at a proxy that holds its connection, so it asks etcd exactly when the test lets it:
  // once etcd reports the lease's remaining TTL as 0, i.e. less than one second left.
  const proxy = await TcpProxy.forUrl(etcdServer.url);
  await proxy.suspend('hold');
  try {
    const spawnedAt = performance.now();
    const second = await spawnAgent(n, { ttl: 4, etcdUrl: proxy.url });
    await waitFor('the restarted agent to call etcd', () => proxy.held > 0, 20_000, 5);
    const reachedEtcdMs = performance.now() - spawnedAt;
    let ttl = await ttlOf(lease);
    assert.ok(ttl >= 1, `the restarted agent reached etcd ${reachedEtcdMs.toFixed(0)} ms after it was spawned, with the lease's TTL already at ${ttl}: too late to test the last second`);
    ttl = await waitFor('the lease\'s last second', async () => {
      const t = await ttlOf(lease);
      return t <= 0 ? t : undefined;
    }, 10_000, 10);
    assert.equal(ttl, 0, 'the lease still lives, in its last second');
    const releasedAt = performance.now();
    await proxy.resume();
    const s = await started(second);
    console.log(`# restart in the lease's last second: adopted ${(s.seenAt - releasedAt).toFixed(0)} ms after the agent could reach etcd (TTL read 0, < 1 s left); ${(s.seenAt - spawnedAt).toFixed(0)} ms from spawn`);
    assert.deepEqual({ lease: s.lease, leaseAdopted: s.leaseAdopted }, { lease, leaseAdopted: true }, second.stderr());
    const claim = await claimOf(n);
    assert.equal(claim?.lease, lease);
    assert.equal(claim?.value.pid, second.pid, 'the claim names the restarted agent');
    assert.ok((await ttlOf(lease)) >= 2, 'the lease is kept alive again');
    assert.doesNotMatch(second.stderr(), /already run by another agent/);
    await second.kill('SIGTERM');
  } finally {
    await proxy.close();
  }
});

test('a claim left by this node\'s previous run under another lease is taken over (compare-and-swap); the saved lease is adopted', { timeout: 60_000 }, async () => {
  const n = newNode();
  const saved = String((await etcd.leaseClient.leaseGrant({ TTL: 30, ID: 0 })).ID);
  const other = String((await etcd.leaseClient.leaseGrant({ TTL: 30, ID: 0 })).ID);
  writeFileSync(join(n.stateDir, 'state.json'), JSON.stringify({ node: n.node, leaseId: saved, adminPorts: {} }));
  const previous = { node: n.node, host: hostname(), pid: deadPid(), lease: other, stateDir: n.stateDir };
  await etcd.put(n.k.nodeOwner(n.node)).value(JSON.stringify(previous)).lease(other).exec();
  const a = await spawnAgent(n);
  const s = await started(a);
  assert.deepEqual({ lease: s.lease, leaseAdopted: s.leaseAdopted }, { lease: saved, leaseAdopted: true });
  const took = a.lines().find((l) => l.msg === 'took over the node claim of this node\'s previous run');
  assert.ok(took, a.stderr());
  assert.match(String(took.previous), new RegExp(`pid ${previous.pid} on host ${hostname()}, lease ${other}`));
  const claim = await claimOf(n);
  assert.equal(claim?.lease, saved, 'the claim is bound to the adopted lease');
  assert.equal(claim?.value.pid, a.pid);
  assert.equal(claim?.value.stateDir, n.stateDir);
  await a.kill('SIGTERM');
});

test('a claim of a live agent on this host, even in the same state dir, is refused: exit 3 naming it; its claim stays', { timeout: 60_000 }, async () => {
  const n = newNode();
  const other = String((await etcd.leaseClient.leaseGrant({ TTL: 30, ID: 0 })).ID);
  const sleeper = spawn('sleep', ['60']);
  try {
    const live = JSON.stringify({ node: n.node, host: hostname(), pid: sleeper.pid, lease: other, stateDir: n.stateDir });
    await etcd.put(n.k.nodeOwner(n.node)).value(live).lease(other).exec();
    const a = await spawnAgent(n);
    const code = await a.exited;
    assert.equal(code, EXIT.conflict, a.stderr());
    assert.match(a.stderr(), new RegExp(`error: node ${n.node} is already run by another agent \\(pid ${sleeper.pid} on host ${hostname()}, lease ${other}, state dir ${n.stateDir}\\)`));
    assert.equal(await etcd.get(n.k.nodeOwner(n.node)).string(), live, 'its claim is left as it was');
  } finally {
    sleeper.kill();
  }
});

test('a corrupt state.json (not JSON, then wrong types) is logged, moved aside, and the lease is taken back from the claim', { timeout: 90_000 }, async () => {
  const n = newNode();
  const state = join(n.stateDir, 'state.json');
  let current = await spawnAgent(n);
  const { lease } = await started(current);
  await waitFor('state.json to name the lease', () => existsSync(state) && JSON.parse(readFileSync(state, 'utf8')).leaseId === lease);
  for (const garbage of ['{"node": "x", "leaseId": "12', JSON.stringify({ node: 42, leaseId: ['1'], adminPorts: 'none' })]) {
    await current.kill('SIGKILL');
    writeFileSync(state, garbage);
    const a = (current = await spawnAgent(n));
    const s = await started(a);
    const warned = a.lines().find((l) => l.msg === 'state.json is corrupt; moved aside, starting without it');
    assert.ok(warned, a.stderr());
    assert.equal(warned.level, 'warn');
    assert.equal(warned.file, state);
    const aside = String(warned.movedTo);
    assert.match(aside, new RegExp(`^${state.replace(/[.]/g, '\\.')}\\.corrupt-\\d{4}-\\d\\d-\\d\\dT`));
    assert.equal(readFileSync(aside, 'utf8'), garbage, 'the corrupt file is kept, aside');
    assert.deepEqual({ lease: s.lease, leaseAdopted: s.leaseAdopted }, { lease, leaseAdopted: true }, a.stderr());
    assert.ok(a.lines().some((l) => l.msg === 'taking back the lease of this node\'s previous run from its claim'));
    assert.equal((await claimOf(n))?.value.pid, a.pid);
    await waitFor('a new state.json naming the lease', () => existsSync(state) && JSON.parse(readFileSync(state, 'utf8')).leaseId === lease);
  }
  assert.equal(readdirSync(n.stateDir).filter((f) => f.startsWith('state.json.corrupt-')).length, 2);
  await current.kill('SIGTERM');
});

test('a corrupt state.json after the lease expired: logged, moved aside, and the agent starts with a new lease', { timeout: 60_000 }, async () => {
  const n = newNode();
  const state = join(n.stateDir, 'state.json');
  writeFileSync(state, '\u0000garbage');
  const a = await spawnAgent(n);
  const s = await started(a);
  assert.equal(s.leaseAdopted, false);
  const warned = a.lines().find((l) => l.msg === 'state.json is corrupt; moved aside, starting without it');
  assert.ok(warned, a.stderr());
  assert.equal(warned.file, state);
  assert.match(String(warned.problem), /not JSON/);
  assert.equal(readdirSync(n.stateDir).filter((f) => f.startsWith('state.json.corrupt-')).length, 1);
  await a.kill('SIGTERM');
});
