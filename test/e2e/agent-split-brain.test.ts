// Split brain, against a real etcd and Docker: agent A is cut off from etcd (a TCP proxy) for longer than its
// lease (revoked meanwhile, as the TTL would), agent B starts for the same node meanwhile and claims it. When A is back it finds the claim taken: it
// stops running compose (the loop keeps observing), says so once at error level, and does not fight back: B's
// claim, status and registrations stay B's. Before, A re-put the claim blindly under its re-granted lease and
// both agents applied the node.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { systemClock } from '../../agent/core/clock.js';
import type { Logger } from '../../agent/core/logger.js';
import { keys } from '../../agent/core/model/keys.js';
import { startEtcd, freePort, type TestEtcd } from '../helpers/etcd.js';
import { ROOT, tempDir } from '../helpers/paths.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { putDocs, randomPortBase } from '../helpers/local-mesh.js';
import { composeDown } from '../helpers/agent-traffic.js';
import { waitFor } from '../helpers/wait.js';

const STANDIN = process.env.MESHLET_TEST_STANDIN_IMAGE ?? 'meshlet-test/envoy-standin:1';
const BUSYBOX = process.env.MESHLET_TEST_BUSYBOX_IMAGE ?? 'meshlet-test/busybox:1';
const node = `split-${Math.random().toString(36).slice(2, 8)}`;
const prefix = `/${node}`;
const k = keys(prefix);
const base = randomPortBase();
const LOST = /is now run by another agent/;

let etcdServer: TestEtcd;
let etcd: Etcd3;
let proxy: TcpProxy;
let a: RunningAgent | undefined;
let b: { pid: number; stderr: () => string; kill(): Promise<void> } | undefined;
const stateDirs = { a: tempDir('meshlet-split-a-'), b: tempDir('meshlet-split-b-') };
const logA: { level: string; msg: string; fields: Record<string, unknown> }[] = [];

const recording: Logger = {
  info: (msg, fields = {}) => void logA.push({ level: 'info', msg, fields }),
  warn: (msg, fields = {}) => void logA.push({ level: 'warn', msg, fields }),
  error: (msg, fields = {}) => void logA.push({ level: 'error', msg, fields }),
  debug: () => {},
};

function mesh(greeting: string): string {
  return `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: solo }
spec:
  protocol: http
  port: ${base}
  versions:
    v1:
      image: ${BUSYBOX}
      command: ["sh", "-c", "mkdir -p /tmp/www && echo solo > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:$PORT -h /tmp/www"]
      nodes: [${node}]
      env: { GREETING: ${greeting} }
      health: { http: /, interval: 1s, timeout: 500ms, retries: 2 }
`;
}

async function spawnB(): Promise<NonNullable<typeof b>> {
  const args = ['agent', '--node', node, '--etcd', etcdServer.url, '--prefix', prefix, '--state-dir', stateDirs.b, '--advertise-address', '127.0.0.1',
    '--sidecar-image', STANDIN, '--xds-port', String(await freePort()), '--lease-ttl', '10', '--admin-ports', `${base + 10}-${base + 19}`, '--resync-interval', '2'];
  const child = spawn(process.execPath, [join(ROOT, 'dist/agent/bin.js'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { pid: child.pid!, stderr: () => stderr, kill: async () => {
    if (child.exitCode === null) child.kill('SIGTERM');
    await exited;
  } };
}

async function kvOf(key: string): Promise<{ value: Record<string, unknown>; lease: string } | undefined> {
  const kv = (await etcd.get(key).exec()).kvs[0];
  return kv ? { value: JSON.parse(kv.value.toString()), lease: String(kv.lease) } : undefined;
}

before(async () => {
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
  proxy = await TcpProxy.forUrl(etcdServer.url);
});

after(async () => {
  await b?.kill();
  await a?.stop();
  composeDown(node, stateDirs.b);
  composeDown(node, stateDirs.a);
  await proxy?.close();
  etcd?.close();
  await etcdServer?.stop();
});

// When a wait times out, A's own log says why (a CI run once timed out waiting for A to register, unseen here).
function dumpLogOnFailure<T>(body: () => Promise<T>): () => Promise<T> {
  return async () => {
    try {
      return await body();
    } catch (err) {
      const tail = logA.slice(-40).map((l) => `${l.level} ${l.msg} ${JSON.stringify(l.fields)}`).join('\n');
      throw new Error(`${(err as Error).message}\nlast lines of A's log:\n${tail}`, { cause: err });
    }
  };
}

test('an agent that finds its node claimed by another agent after a partition stops composing and leaves the other\'s claim alone', { timeout: 240_000 }, dumpLogOnFailure(async () => {
  a = await startAgent({
    node, etcd: { endpoints: [proxy.url], prefix, retries: 0 }, stateDir: stateDirs.a, advertiseAddress: '127.0.0.1', xdsPort: await freePort(),
    compose: 'auto', sidecarImage: STANDIN, leaseTtl: 3, adminPorts: { from: base + 10, to: base + 19 }, resyncInterval: 2,
  }, systemClock, recording, new AbortController().signal);
  const agentA = a;
  const rev1 = await putDocs(etcd, prefix, mesh('hello'));
  await waitFor('A to apply', () => (agentA.reconciler.state.appliedRevision ?? 0) >= rev1 && agentA.reconciler.stats.composeRuns > 0, 90_000);
  await waitFor('A to register solo', async () => (await kvOf(k.instance('solo', 'v1', node)))?.lease === agentA.lease.id, 60_000);

  // The partition: A cannot reach etcd, and its lease ends on the server (as it would after the TTL).
  await proxy.suspend('refuse');
  await etcd.leaseClient.leaseRevoke({ ID: agentA.lease.id });
  b = await spawnB();
  const agentB = b;
  const bLease = await waitFor('B to claim the node', async () => {
    const claim = await kvOf(k.nodeOwner(node));
    return claim?.value.pid === agentB.pid ? claim.lease : undefined;
  }, 30_000);
  // Longer than A's TTL: A counts its lease lost, and grants a new one as soon as etcd answers again.
  await waitFor('A to count its lease lost', () => agentA.lease.state === 'lost', 30_000, 20);
  await proxy.resume();

  const found = await waitFor('A to find the claim taken', async () => {
    const line = logA.find((l) => LOST.test(l.msg));
    if (line) return { line };
    const claim = await kvOf(k.nodeOwner(node));
    return claim && claim.value.pid !== agentB.pid ? { overwritten: claim } : undefined;
  }, 90_000);
  assert.ok(found.line, `A put its claim over B's: ${JSON.stringify(found.overwritten)}`);
  const lost = found.line;
  const runsAtLoss = agentA.reconciler.stats.composeRuns;
  const passesAtLoss = agentA.reconciler.stats.passes;
  assert.equal(lost.level, 'error');
  assert.match(lost.msg, new RegExp(`^node ${node} is now run by another agent \\(pid ${agentB.pid} on host .*, lease ${bLease}, state dir ${stateDirs.b}\\); this agent stops applying compose`));
  assert.ok(agentA.reconciler.standingDown, 'the loop stands down');

  // A change: B applies it; A sees it (its passes go on) but runs no compose.
  const rev2 = await putDocs(etcd, prefix, mesh('bonjour'));
  await waitFor('B to apply the change', async () => {
    const st = (await kvOf(k.nodeStatus(node)))?.value;
    return st?.pid === agentB.pid && (st.appliedRevision as number) >= rev2 && (st.lastApply as { ok: boolean }).ok;
  }, 120_000);
  await waitFor('A to observe the change', () => (agentA.source.current()?.revision ?? 0) >= rev2 && agentA.reconciler.stats.passes > passesAtLoss + 1, 30_000);
  await waitFor('B to register solo', async () => (await kvOf(k.instance('solo', 'v1', node)))?.lease === bLease, 60_000);

  assert.equal(agentA.reconciler.stats.composeRuns, runsAtLoss, 'A ran no compose after it found the claim taken');
  const claim = await kvOf(k.nodeOwner(node));
  assert.deepEqual({ pid: claim?.value.pid, lease: claim?.lease }, { pid: agentB.pid, lease: bLease }, 'B\'s claim is intact');
  const status = await kvOf(k.nodeStatus(node));
  assert.deepEqual({ pid: status?.value.pid, lease: status?.lease }, { pid: agentB.pid, lease: bLease }, 'the node status is B\'s');
  assert.equal((await kvOf(k.instance('solo', 'v1', node)))?.lease, bLease, 'the registration is B\'s');
  assert.ok(logA.some((l) => l.msg === 'lease lost; granted a new one'), 'A re-granted its lease');
  const underA = await etcd.leaseClient.leaseTimeToLive({ ID: agentA.lease.id, keys: true });
  assert.deepEqual(underA.keys.map((key) => key.toString()), [], 'A put nothing under its new lease');
  assert.equal(logA.filter((l) => LOST.test(l.msg)).length, 1, 'said once');
  assert.ok(!logA.some((l) => l.msg === 'applying the compose project' && logA.indexOf(l) > logA.indexOf(lost)), 'no apply logged after');
}));
