// `meshlet agent` as a process that cannot start: whatever fails after the lease was granted (the xDS port,
// compose, Docker, the node claim), it gives back the claim, the lease (revoked when it granted it, left to
// expire when it adopted one) and the xDS port, and exits within 2 s with the exit code cli.ts documents.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { keys } from '../../agent/core/model/keys.js';
import { EXIT } from '../../agent/cli.js';
import { startEtcd, freePort, type TestEtcd } from '../helpers/etcd.js';
import { ROOT, tempDir } from '../helpers/paths.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait.js';

const SIDECAR = process.env.MESHLET_TEST_SIDECAR_IMAGE ?? 'meshlet-test/envoy-standin:1';
// The line startAgent logs at the moment a start step failed; the exit is timed from it.
const FAILED = /the agent cannot start; giving back what it took/;
const EXIT_WITHIN_MS = 2_000;
let etcdServer: TestEtcd;
let etcd: Etcd3;

interface Run {
  code: number | null;
  stderr: string;
  /** Milliseconds from the failure line to the exit. */
  exitAfterFailureMs: number;
}

interface Agent {
  node: string;
  k: ReturnType<typeof keys>;
  xdsPort: number;
  stateDir: string;
}

async function newAgent(): Promise<Agent> {
  const node = `fail-${Math.random().toString(36).slice(2, 8)}`;
  return { node, k: keys(`/${node}`), xdsPort: await freePort(), stateDir: tempDir('meshlet-agent-fail-') };
}

function spawnAgent(a: Agent, extra: string[] = [], env: NodeJS.ProcessEnv = {}, etcdUrl = etcdServer.url) {
  const args = ['agent', '--node', a.node, '--etcd', etcdUrl, '--prefix', a.k.prefix, '--state-dir', a.stateDir, '--advertise-address', '127.0.0.1', '--sidecar-image', SIDECAR, '--xds-port', String(a.xdsPort), '--lease-ttl', '30', '--admin-ports', '15900-15909', ...extra];
  const child = spawn(process.execPath, [join(ROOT, 'dist/agent/bin.js'), ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  let failedAt: number | undefined;
  child.stderr!.on('data', (c: Buffer) => {
    stderr += c.toString();
    if (failedAt === undefined && FAILED.test(stderr)) failedAt = Date.now();
  });
  const exited = new Promise<Run>((resolve) => child.once('exit', (code) => resolve({ code, stderr, exitAfterFailureMs: Date.now() - (failedAt ?? Number.NaN) })));
  return { child, stderr: () => stderr, exited };
}

async function leases(): Promise<string[]> {
  return (await etcd.leaseClient.leaseLeases({})).leases.map((l) => String(l.ID)).sort();
}

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => resolve(srv));
  });
}

/** The port can be bound again: the agent's gRPC server let go of it. */
async function assertPortFree(port: number): Promise<void> {
  const srv = await listen(port);
  await new Promise((r) => srv.close(r));
}

function assertPromptExit(run: Run, code: number, cause: RegExp): void {
  assert.equal(run.code, code, `exit code; stderr:\n${run.stderr}`);
  assert.match(run.stderr, cause);
  assert.ok(run.exitAfterFailureMs <= EXIT_WITHIN_MS, `exited ${run.exitAfterFailureMs} ms after the failure (limit ${EXIT_WITHIN_MS}); stderr:\n${run.stderr}`);
}

before(async () => {
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
});

after(async () => {
  etcd?.close();
  await etcdServer?.stop();
});

test('the xDS port already taken: exit 3 naming the port; claim and the new lease are gone', async () => {
  const a = await newAgent();
  const taken = await listen(a.xdsPort);
  try {
    const before = await leases();
    const run = await spawnAgent(a).exited;
    assertPromptExit(run, EXIT.conflict, new RegExp(`error: cannot serve xDS on 127\\.0\\.0\\.1:${a.xdsPort}.*--xds-port`));
    assert.equal(await etcd.get(a.k.nodeOwner(a.node)).string(), null, 'the node claim is released');
    assert.deepEqual(await leases(), before, 'the lease granted for this start is revoked');
  } finally {
    await new Promise((r) => taken.close(r));
  }
});

test('compose not found (--compose v2 where only v1 exists): exit 4 naming compose; claim, lease and xDS port given back', async () => {
  const a = await newAgent();
  const before = await leases();
  const run = await spawnAgent(a, ['--compose', 'v2']).exited;
  assertPromptExit(run, EXIT.unavailable, /error: Docker Compose v2 not found; tried:/);
  assert.equal(await etcd.get(a.k.nodeOwner(a.node)).string(), null);
  assert.deepEqual(await leases(), before);
  await assertPortFree(a.xdsPort);
});

test('Docker unreachable (DOCKER_HOST names a socket that does not exist): exit 4 naming Docker; all given back', async () => {
  const a = await newAgent();
  const before = await leases();
  const socket = join(tempDir('meshlet-no-docker-'), 'docker.sock');
  const run = await spawnAgent(a, ['--compose', 'v1'], { DOCKER_HOST: `unix://${socket}` }).exited;
  assertPromptExit(run, EXIT.unavailable, new RegExp(`error: cannot reach Docker at unix://${socket.replace(/[.]/g, '\\.')}: .*ENOENT`));
  assert.equal(await etcd.get(a.k.nodeOwner(a.node)).string(), null);
  assert.deepEqual(await leases(), before);
  await assertPortFree(a.xdsPort);
});

test('a node claimed by another live agent: exit 3 naming the other agent; its claim stays, this start\'s lease is gone', async () => {
  const a = await newAgent();
  const other = etcd.lease(30, { autoKeepAlive: true });
  other.on('lost', () => {});
  const otherId = await other.grant();
  const claim = JSON.stringify({ node: a.node, host: 'host-b', pid: 4242, lease: otherId });
  await etcd.put(a.k.nodeOwner(a.node)).value(claim).lease(otherId).exec();
  try {
    const before = await leases();
    const run = await spawnAgent(a).exited;
    assertPromptExit(run, EXIT.conflict, new RegExp(`error: node ${a.node} is already run by another agent \\(pid 4242 on host host-b, lease ${otherId}\\)`));
    assert.equal(await etcd.get(a.k.nodeOwner(a.node)).string(), claim, 'the other agent keeps its claim');
    assert.deepEqual(await leases(), before);
    await assertPortFree(a.xdsPort);
  } finally {
    await other.revoke();
  }
});

test('an adopted lease is left to expire (it carries the last run\'s registrations), but the claim is released', async () => {
  const a = await newAgent();
  const saved = etcd.lease(30, { autoKeepAlive: false });
  const savedId = await saved.grant();
  writeFileSync(join(a.stateDir, 'state.json'), JSON.stringify({ node: a.node, leaseId: savedId, adminPorts: {} }));
  try {
    const run = await spawnAgent(a, ['--compose', 'v2']).exited;
    assertPromptExit(run, EXIT.unavailable, /error: Docker Compose v2 not found/);
    assert.match(run.stderr, /"leaseAdopted":true/);
    assert.equal(await etcd.get(a.k.nodeOwner(a.node)).string(), null, 'the claim is released');
    assert.ok((await leases()).includes(savedId), 'the adopted lease is not revoked');
  } finally {
    await saved.revoke();
  }
});

test('SIGTERM while etcd is still unreachable at start: exits promptly with 0, and no lease is granted afterwards', async () => {
  const a = await newAgent();
  const proxy = await TcpProxy.forUrl(etcdServer.url);
  await proxy.suspend('refuse');
  try {
    const before = await leases();
    const agent = spawnAgent(a, [], {}, proxy.url);
    await waitFor('the agent to retry etcd', () => /cannot reach etcd at .*; retrying/.test(agent.stderr()), 20_000);
    const sent = Date.now();
    agent.child.kill('SIGTERM');
    const run = await agent.exited;
    const tookMs = Date.now() - sent;
    assert.equal(run.code, EXIT.ok, run.stderr);
    assert.ok(tookMs <= EXIT_WITHIN_MS, `exited ${tookMs} ms after SIGTERM`);
    await proxy.resume();
    await new Promise((r) => setTimeout(r, 1_500));
    assert.deepEqual(await leases(), before, 'no lease granted');
    assert.equal(await etcd.get(a.k.nodeOwner(a.node)).string(), null);
  } finally {
    await proxy.close();
  }
});
