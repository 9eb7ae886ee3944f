// The agent as a process: SIGKILL and restart adopts the containers and the lease; an unreachable etcd at start is retried.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { keys } from '../../agent/core/model/keys.js';
import { projectName } from '../../agent/core/model/ids.js';
import { createDocker } from '../../agent/adapters/docker/docker.js';
import { startEtcd, freePort, type TestEtcd } from '../helpers/etcd.js';
import { ROOT, tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { localMesh, putDocs, randomPortBase } from '../helpers/local-mesh.js';

// Each test file gets its own xDS port, so a running agent or demo on 15010 is never in the way.
const xdsPort = await freePort();

const SIDECAR = process.env.MESHLET_TEST_SIDECAR_IMAGE ?? 'meshlet-test/envoy-standin:1';
const node = `proc-${Math.random().toString(36).slice(2, 8)}`;
const project = projectName(node);
const prefix = `/proc-${node}`;
const k = keys(prefix);
const base = randomPortBase();
const stateDir = tempDir('meshlet-agent-proc-');
let etcdServer: TestEtcd;
let etcd: Etcd3;
const children: ChildProcess[] = [];

function spawnAgent(etcdUrl: string, dir = stateDir): { child: ChildProcess; stderr: () => string } {
  const child = spawn(process.execPath, [join(ROOT, 'dist/agent/bin.js'), 'agent', '--node', node, '--etcd', etcdUrl, '--prefix', prefix, '--state-dir', dir, '--advertise-address', '127.0.0.1', '--sidecar-image', SIDECAR, '--xds-port', String(xdsPort), '--lease-ttl', '5', '--admin-ports', `${base + 10}-${base + 19}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  children.push(child);
  return { child, stderr: () => err };
}

async function containerIds(): Promise<Record<string, string>> {
  const list = await createDocker().listContainers({ all: true, filters: { label: [`com.docker.compose.project=${project}`] } });
  return Object.fromEntries(list.map((c) => [c.Labels['com.docker.compose.service']!, c.Id]).sort());
}

async function nodeStatus(): Promise<{ pid: number; appliedRevision?: number; composeRuns: number; lease: string } | undefined> {
  const v = await etcd.get(k.nodeStatus(node)).string();
  return v ? JSON.parse(v) : undefined;
}

before(async () => {
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
});

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  try {
    execFileSync('docker-compose', ['-p', project, '-f', join(stateDir, 'compose/docker-compose.yml'), 'down', '-t', '1'], { stdio: 'pipe' });
  } catch {
    /* nothing up */
  }
  etcd?.close();
  await etcdServer?.stop();
});

test('an agent killed with SIGKILL and started again takes its lease back and recreates no container', async () => {
  const rev = await putDocs(etcd, prefix, localMesh(base, node));
  const first = spawnAgent(etcdServer.url);
  const st = await waitFor('the first apply', async () => {
    const s = await nodeStatus();
    return s && (s.appliedRevision ?? 0) >= rev && s.pid === first.child.pid ? s : undefined;
  }, 60_000);
  assert.equal(st.composeRuns, 1);
  const before = await containerIds();
  assert.equal(Object.keys(before).length, 6);
  first.child.kill('SIGKILL');
  await new Promise((r) => first.child.once('exit', r));

  // Watch the registry-side keys of this node: a restart within the TTL must delete none of them.
  const deletes: string[] = [];
  const watcher = await etcd.watch().prefix(`${prefix}/nodes/`).create();
  watcher.on('delete', (kv) => deletes.push(kv.key.toString()));
  const second = spawnAgent(etcdServer.url);
  const st2 = await waitFor('the restarted agent to report', async () => {
    const s = await nodeStatus();
    return s && s.pid === second.child.pid && (s.appliedRevision ?? 0) >= rev ? s : undefined;
  }, 60_000);
  assert.equal(st2.lease, st.lease, 'the lease was taken back');
  assert.equal(st2.composeRuns, 0, 'no compose run after the restart');
  assert.deepEqual(await containerIds(), before);
  await watcher.cancel();
  assert.deepEqual(deletes, []);

  // SIGTERM: the agent stops, containers keep running.
  second.child.kill('SIGTERM');
  const code = await new Promise((r) => second.child.once('exit', (c) => r(c)));
  assert.equal(code, 0);
  assert.deepEqual(await containerIds(), before);
});

test('an unreachable etcd at start is a clear error, retried, not a crash', async () => {
  const port = await freePort();
  const { child, stderr } = spawnAgent(`http://127.0.0.1:${port}`, tempDir('meshlet-agent-noetcd-'));
  await waitFor('the error message', () => /cannot reach etcd at http:\/\/127\.0\.0\.1:\d+; retrying/.test(stderr()), 20_000);
  await new Promise((r) => setTimeout(r, 2_000));
  assert.equal(child.exitCode, null, `still running; stderr: ${stderr()}`);
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
});
