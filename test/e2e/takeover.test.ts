// A new agent process for the node takes over what the last one left running: after SIGKILL, after state.json
// was deleted or garbled (within the lease TTL and after the old lease expired) it recreates no container and
// rewrites none of the rendered files; a different --xds-port or --state-dir recreates the sidecars (their
// bootstrap's content or bind-mount path changes) and keeps every app. Real Envoy sidecars
// (MESHLET_TEST_SIDECAR_IMAGE): their endpoints are checked against the registry after each takeover.
//
// The admin ports are assigned over two desired states (api v2 arrives last, so it gets the highest port):
// an agent that re-assigned them from scratch after losing state.json gave api v2 and web new ports, new
// bootstraps, and so new sidecars.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { keys } from '../../agent/core/model/keys.js';
import { startEtcd, freePort, type TestEtcd } from '../helpers/etcd.js';
import { tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { putDocs, randomPortBase } from '../helpers/local-mesh.js';
import {
  adminPort, composeDown, containerIds, endpointsOf, expectedEndpoints, requests, sidecarEndpoints, spawnAgentProcess, trafficMesh, type AgentSetup, type RegisteredInstance,
} from '../helpers/agent-traffic.js';

// Short, so a test can wait for the old lease to expire; not shorter: a restart in the last ~2.5 s of the TTL is
// refused today (the remaining TTL is read in whole seconds; issue 10, item 3).
const LEASE_TTL = 8;
const node = `take-${Math.random().toString(36).slice(2, 8)}`;
const prefix = `/take-${node}`;
const k = keys(prefix);
const base = randomPortBase();
const proxy = base + 3;
const APPS = ['api-v1', 'api-v2', 'web-v1'];
const SIDECARS = APPS.map((a) => `${a}-envoy`);
let etcdServer: TestEtcd;
let etcd: Etcd3;
let setup: AgentSetup;
let revision = 0;
/** The agent process running now, and every one started (killed in `after`). */
let running: ReturnType<typeof spawnAgentProcess> | undefined;
const children: ChildProcess[] = [];
/** Every state dir used, for `compose down`. */
const stateDirs: string[] = [];

interface NodeStatus { pid: number; lease: string; appliedRevision?: number; composeRuns: number }

async function nodeStatus(): Promise<NodeStatus | undefined> {
  const v = await etcd.get(k.nodeStatus(node)).string();
  return v ? (JSON.parse(v) as NodeStatus) : undefined;
}

interface Started { status: NodeStatus; startedAt: number; appliedMs: number }

/** Starts `meshlet agent` with `setup`'s flags and waits until it has applied the desired state (its own status says so). */
async function startAgent(): Promise<Started> {
  const startedAt = performance.now();
  const a = spawnAgentProcess(setup);
  children.push(a.child);
  running = a;
  const status = await waitFor(`agent pid ${a.child.pid} to apply revision ${revision}`, async () => {
    if (a.child.exitCode !== null) throw new Error(`the agent exited with ${a.child.exitCode}:\n${a.stderr().slice(-3000)}`);
    const s = await nodeStatus();
    return s && s.pid === a.child.pid && (s.appliedRevision ?? 0) >= revision ? s : undefined;
  }, 90_000, 100);
  return { status, startedAt, appliedMs: Math.round(performance.now() - startedAt) };
}

/** The figures of one takeover, once registry and endpoints were found correct. */
function figures(what: string, t: Started, replaced: string[]): void {
  console.log(`# takeover, ${what}: applied ${t.appliedMs} ms after the start, registry and sidecar endpoints correct after ${Math.round(performance.now() - t.startedAt)} ms; compose runs ${t.status.composeRuns}; recreated: ${replaced.join(', ') || 'none'}`);
}

async function killAgent(): Promise<void> {
  const a = running!;
  a.child.kill('SIGKILL');
  if (a.child.exitCode === null && a.child.signalCode === null) await new Promise((r) => a.child.once('exit', r));
}

/** The old agent's lease has expired: its claim on the node is gone (it was put under that lease). */
async function oldLeaseExpired(): Promise<void> {
  await waitFor('the old lease to expire (the claim gone)', async () => (await etcd.get(k.nodeOwner(node)).string()) === null, 30_000, 100);
}

/** The rendered files of the state dir (compose file, bootstraps), each with its text and inode. */
function renderedFiles(dir: string): Record<string, { text: string; ino: number }> {
  const out: Record<string, { text: string; ino: number }> = {};
  // No xds/ here: no app dials xds:///.
  for (const sub of ['compose', 'envoy']) {
    for (const name of readdirSync(join(dir, sub)).sort()) {
      if (name.startsWith('.') || name.includes('last-good')) continue;
      const path = join(dir, sub, name);
      out[`${sub}/${name}`] = { text: readFileSync(path, 'utf8'), ino: statSync(path).ino };
    }
  }
  return out;
}

/** The registry's instances of this node, with the lease each is held under. */
async function registry(): Promise<(RegisteredInstance & { lease: string })[]> {
  const res = await etcd.getAll().prefix(k.registry).exec();
  return res.kvs.map((kv) => ({ ...(JSON.parse(kv.value.toString()) as RegisteredInstance), lease: String(kv.lease) }))
    .sort((a, b) => `${a.service}-${a.version}`.localeCompare(`${b.service}-${b.version}`));
}

/**
 * Every app registered under the running agent's lease at its own port, and web's sidecar holding exactly the
 * registered api instances per cluster; requests through it reach both api versions.
 */
async function registryAndEndpointsCorrect({ status }: Started): Promise<void> {
  const want = [`api-v1@127.0.0.1:${base + 1}`, `api-v2@127.0.0.1:${base + 2}`, `web-v1@127.0.0.1:${base}`];
  await waitFor('every app registered under the running agent\'s lease', async () => {
    const reg = await registry();
    const seen = reg.map((i) => `${i.service}-${i.version}@${i.address}:${i.port}${i.node === node && i.lease === status.lease ? '' : ` (node ${i.node}, lease ${i.lease})`}`);
    if (JSON.stringify(seen) !== JSON.stringify(want)) {
      const health = running!.stderr().split('\n').filter((l) => /health|regist/i.test(l)).slice(-8);
      throw new Error(`registry holds ${JSON.stringify(seen)}; the agent logged:\n${health.join('\n')}`);
    }
    return true;
  }, 60_000, 100);
  const admin = adminPort(setup.stateDir, 'web-v1');
  // The VirtualService routes to subsets only: one cluster per api version.
  await waitFor('web\'s sidecar endpoints == registry', async () => {
    const eps = endpointsOf('api', await sidecarEndpoints(admin));
    const expected = expectedEndpoints('api', await registry(), Object.keys(eps));
    if (Object.keys(eps).length !== 2 || JSON.stringify(eps) !== JSON.stringify(expected)) throw new Error(`sidecar has ${JSON.stringify(eps)}, registry says ${JSON.stringify(expected)}`);
    return true;
  }, 60_000, 100);
  await waitFor('both api versions answering through web\'s sidecar', async () => {
    const t = await requests(proxy, 40);
    return t.ok === 40 && (t.byVersion.v1 ?? 0) > 0 && (t.byVersion.v2 ?? 0) > 0;
  }, 60_000, 200);
}

/** Which containers a takeover replaced: the compose services whose container id changed. */
function recreated(before: Record<string, string>, after: Record<string, string>): string[] {
  assert.deepEqual(Object.keys(after).sort(), Object.keys(before).sort(), 'the same compose services');
  return Object.keys(after).filter((s) => after[s] !== before[s]).sort();
}

before(async () => {
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
  const stateDir = tempDir('meshlet-takeover-');
  stateDirs.push(stateDir);
  setup = { node, etcdUrl: etcdServer.url, prefix, stateDir, xdsPort: await freePort(), base, leaseTtl: LEASE_TTL };
  // First api v1 and web (admin ports base+10, base+11), then api v2 joins (base+12): not the name order.
  revision = await putDocs(etcd, prefix, trafficMesh(base, node, { versions: ['v1'] }));
  const first = await startAgent();
  revision = await putDocs(etcd, prefix, trafficMesh(base, node, { versions: ['v1', 'v2'], weights: { v1: 50, v2: 50 } }));
  await waitFor('api v2 applied', async () => ((await nodeStatus())?.appliedRevision ?? 0) >= revision, 90_000, 100);
  assert.deepEqual(APPS.map((a) => adminPort(stateDir, a)), [base + 10, base + 12, base + 11], 'admin ports in the order the workloads arrived');
  await registryAndEndpointsCorrect({ ...first, status: (await nodeStatus())! });
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const dir of stateDirs.reverse()) composeDown(node, dir);
  etcd?.close();
  await etcdServer?.stop();
});

test('SIGKILL, restart with the same flags: the lease is taken back, nothing recreated, registry and endpoints correct', async () => {
  const ids = await containerIds(node);
  assert.equal(Object.keys(ids).length, 6);
  const files = renderedFiles(setup.stateDir);
  const was = (await nodeStatus())!;
  await killAgent();
  const now = await startAgent();
  assert.equal(now.status.lease, was.lease, 'the lease was adopted');
  assert.equal(now.status.composeRuns, 0, 'compose did not run');
  assert.deepEqual(recreated(ids, await containerIds(node)), []);
  assert.deepEqual(renderedFiles(setup.stateDir), files, 'no rendered file rewritten');
  await registryAndEndpointsCorrect(now);
  figures('SIGKILL, same flags', now, []);
});

for (const [loss, lose] of [
  ['deleted', (path: string) => rmSync(path)],
  ['garbled', (path: string) => writeFileSync(path, '{"node": "garbage\u0000')],
] as const) {
  test(`state.json ${loss}, restart after the old lease expired: nothing recreated, the same files and admin ports, registry and endpoints correct`, async () => {
    const ids = await containerIds(node);
    const files = renderedFiles(setup.stateDir);
    await killAgent();
    lose(join(setup.stateDir, 'state.json'));
    await oldLeaseExpired();
    const now = await startAgent();
    assert.deepEqual(recreated(ids, await containerIds(node)), [], 'no container recreated');
    // Without state.json the agent cannot know that compose applied these files: it runs compose once, which finds nothing to do.
    assert.equal(now.status.composeRuns, 1);
    assert.deepEqual(renderedFiles(setup.stateDir), files, 'the compose file and bootstraps are byte for byte the same, not rewritten');
    assert.deepEqual(APPS.map((a) => adminPort(setup.stateDir, a)), [base + 10, base + 12, base + 11], 'the admin ports the running sidecars use');
    assert.match(running!.stderr(), /"msg":"admin ports kept from the running sidecars \(state.json did not name them so\)","running":\{"api-v1":\d+,"api-v2":\d+,"web-v1":\d+\}/);
    await registryAndEndpointsCorrect(now);
    figures(`state.json ${loss}, after the old lease expired`, now, []);
  });
}

test('a different --xds-port recreates exactly the sidecars (their bootstrap names the port); the apps keep running', async () => {
  const ids = await containerIds(node);
  await killAgent();
  setup = { ...setup, xdsPort: await freePort() };
  const now = await startAgent();
  assert.deepEqual(recreated(ids, await containerIds(node)), SIDECARS);
  assert.deepEqual(APPS.map((a) => adminPort(setup.stateDir, a)), [base + 10, base + 12, base + 11], 'the admin ports are kept');
  await registryAndEndpointsCorrect(now);
  figures('another --xds-port', now, SIDECARS);
});

test('a different --state-dir recreates exactly the sidecars (their bootstrap is mounted from it); the apps keep running', async () => {
  const ids = await containerIds(node);
  await killAgent();
  const stateDir = tempDir('meshlet-takeover-other-');
  stateDirs.push(stateDir);
  setup = { ...setup, stateDir };
  // Another state dir holds no state.json, so no lease id to take back: a new lease, once the old one expired.
  await oldLeaseExpired();
  const now = await startAgent();
  assert.deepEqual(recreated(ids, await containerIds(node)), SIDECARS);
  // Read from the bootstraps the running sidecars mounted from the old state dir.
  assert.deepEqual(APPS.map((a) => adminPort(setup.stateDir, a)), [base + 10, base + 12, base + 11], 'the admin ports are kept');
  await registryAndEndpointsCorrect(now);
  figures('another --state-dir', now, SIDECARS);
});

// Without a lease id in state.json the new agent finds the claim still held by the old lease: this needs that claim
// taken over as this node's own (issue 10, item 3); until then the agent is refused with exit 3.
test('state.json deleted, restart within the TTL: the lease is taken back, nothing recreated, registry and endpoints correct', async () => {
  const ids = await containerIds(node);
  const files = renderedFiles(setup.stateDir);
  const was = (await nodeStatus())!;
  await killAgent();
  rmSync(join(setup.stateDir, 'state.json'));
  const now = await startAgent();
  assert.equal(now.status.lease, was.lease, 'the lease was adopted');
  assert.deepEqual(recreated(ids, await containerIds(node)), [], 'no container recreated');
  assert.deepEqual(renderedFiles(setup.stateDir), files, 'the compose file and bootstraps are byte for byte the same, not rewritten');
  await registryAndEndpointsCorrect(now);
  figures('state.json deleted, within the TTL', now, []);
});
