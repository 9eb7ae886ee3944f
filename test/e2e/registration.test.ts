// Health-driven registration by the real agent: keys appear when healthy, go when a check fails or the
// container dies, survive a restart within the TTL, come back after a revoke, and drain/undrain.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import { keys } from '../../agent/core/model/keys.js';
import { projectName } from '../../agent/core/model/ids.js';
import { createDocker } from '../../agent/adapters/docker/docker.js';
import { startEtcd, type TestEtcd, freePort } from '../helpers/etcd.js';
import { ROOT, tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { putDocs, randomPortBase } from '../helpers/local-mesh.js';
import { runCli } from '../helpers/cli.js';

// Each test file gets its own xDS port, so a running agent or demo on 15010 is never in the way.
const xdsPort = await freePort();

const BUSYBOX = process.env.MESHLET_TEST_BUSYBOX_IMAGE ?? 'meshlet-test/busybox:1';
const SIDECAR = process.env.MESHLET_TEST_SIDECAR_IMAGE ?? 'meshlet-test/envoy-standin:1';
const node = `reg-${Math.random().toString(36).slice(2, 8)}`;
const project = projectName(node);
const prefix = `/r-${node}`;
const k = keys(prefix);
const base = randomPortBase();
const stateDir = tempDir('meshlet-agent-reg-');
let etcdServer: TestEtcd;
let etcd: Etcd3;
let agent: RunningAgent | undefined;
let child: ChildProcess | undefined;

// web: an http check on a file the test can remove; job: an exec check (Docker's own health check).
const mesh = `
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: web }
spec:
  port: ${base}
  versions:
    v1:
      image: ${BUSYBOX}
      command: ["sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/health && exec httpd -f -p 127.0.0.1:$PORT -h /tmp/www"]
      nodes: [${node}]
      health: { http: /health, interval: 500ms, timeout: 400ms, retries: 2 }
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: job }
spec:
  port: ${base + 1}
  versions:
    v1:
      image: ${BUSYBOX}
      command: ["sh", "-c", "touch /tmp/healthy && exec httpd -f -p 127.0.0.1:$PORT -h /tmp"]
      nodes: [${node}]
      health: { exec: ["test", "-f", "/tmp/healthy"], interval: 1s, timeout: 1s, retries: 1 }
`;

const opts = () => ({
  node, etcd: { endpoints: [etcdServer.url], prefix, retries: 0 }, stateDir, advertiseAddress: '127.0.0.1', xdsPort, compose: 'auto' as const,
  sidecarImage: SIDECAR, leaseTtl: 4, adminPorts: { from: base + 10, to: base + 19 }, resyncInterval: 2,
});

async function appContainer(service: string): Promise<string> {
  const list = await createDocker().listContainers({ filters: { label: [`com.docker.compose.project=${project}`, `com.docker.compose.service=${service}-v1`] } });
  return list[0]!.Id;
}

const registered = async (service: string) => (await etcd.get(k.instance(service, 'v1', node)).string()) !== null;
const naming = async (service: string, port: number) => etcd.get(k.namingEndpoint(service, `127.0.0.1:${port}`)).string();

before(async () => {
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
  agent = await startAgent(opts(), systemClock, silentLogger, new AbortController().signal);
  await putDocs(etcd, prefix, mesh);
});

after(async () => {
  await agent?.stop();
  if (child && child.exitCode === null) child.kill('SIGKILL');
  try {
    execFileSync('docker-compose', ['-p', project, '-f', join(stateDir, 'compose/docker-compose.yml'), 'down', '-t', '1'], { stdio: 'pipe' });
  } catch {
    /* nothing up */
  }
  etcd?.close();
  await etcdServer?.stop();
});

test('healthy instances are registered in both formats, bound to the node lease', async () => {
  await waitFor('both registered', async () => (await registered('web')) && (await registered('job')), 60_000);
  const kv = (await etcd.get(k.instance('web', 'v1', node)).exec()).kvs[0]!;
  assert.equal(String(kv.lease), agent!.lease.id);
  const inst = JSON.parse(kv.value.toString());
  assert.deepEqual({ ...inst, container: undefined, healthySince: undefined }, { service: 'web', version: 'v1', node, address: '127.0.0.1', port: base, container: undefined, healthySince: undefined });
  assert.equal(inst.container, await appContainer('web'));
  const nkv = (await etcd.get(k.namingEndpoint('web', `127.0.0.1:${base}`)).exec()).kvs[0]!;
  assert.equal(String(nkv.lease), agent!.lease.id);
  assert.deepEqual(JSON.parse(nkv.value.toString()), { Op: 0, Addr: `127.0.0.1:${base}`, Metadata: { version: 'v1', node } });
});

test('an http check starting to fail removes both keys within interval × retries; recovery registers again', async () => {
  const id = await appContainer('web');
  const t0 = Date.now();
  execFileSync('docker', ['exec', id, 'rm', '/tmp/www/health'], { env: process.env });
  await waitFor('web deregistered', async () => !(await registered('web')) && (await naming('web', base)) === null, 10_000, 20);
  const took = Date.now() - t0;
  // 2 failures at a 500 ms interval, plus up to one interval before the first failing probe and the probe timeout.
  assert.ok(took < 500 * 2 + 500 + 400 + 500, `deregistered after ${took} ms`);
  execFileSync('docker', ['exec', id, 'sh', '-c', 'echo ok > /tmp/www/health'], { env: process.env });
  await waitFor('web registered again', () => registered('web'), 10_000, 20);
});

test('an exec check turning unhealthy removes the keys within a second of Docker\'s event', async () => {
  const id = await appContainer('job');
  const events = await createDocker().getEvents({ filters: { type: ['container'], event: ['health_status'], container: [id] } });
  let unhealthyAt = 0;
  events.on('data', (chunk: Buffer) => {
    if (chunk.toString().includes('health_status: unhealthy') && !unhealthyAt) unhealthyAt = Date.now();
  });
  execFileSync('docker', ['exec', id, 'rm', '/tmp/healthy'], { env: process.env });
  await waitFor('Docker says unhealthy', () => unhealthyAt > 0, 15_000, 10);
  await waitFor('job deregistered', async () => !(await registered('job')), 5_000, 10);
  const took = Date.now() - unhealthyAt;
  (events as unknown as { destroy(): void }).destroy();
  assert.ok(took < 1_000, `deregistered ${took} ms after Docker's health_status event`);
  execFileSync('docker', ['exec', id, 'touch', '/tmp/healthy'], { env: process.env });
  await waitFor('job registered again', () => registered('job'), 15_000);
});

test('a container that dies is deregistered within a second', async () => {
  await waitFor('web registered', () => registered('web'), 10_000);
  const id = await appContainer('web');
  const t0 = Date.now();
  await createDocker().getContainer(id).kill();
  await waitFor('web deregistered', async () => !(await registered('web')), 5_000, 10);
  assert.ok(Date.now() - t0 < 1_000, `took ${Date.now() - t0} ms`);
  await waitFor('web back (restart policy) and registered', () => registered('web'), 30_000);
});

test('the lease revoked from outside: everything is registered again within a couple of seconds', async () => {
  await waitFor('both registered', async () => (await registered('web')) && (await registered('job')), 30_000);
  const t0 = Date.now();
  await etcd.leaseClient.leaseRevoke({ ID: agent!.lease.id });
  await waitFor('both registered again', async () => (await registered('web')) && (await registered('job')) && (await etcd.get(k.nodeStatus(node)).string()) !== null, 10_000, 20);
  const took = Date.now() - t0;
  assert.ok(took < 3_000, `took ${took} ms`);
});

test('drain deregisters everything and registers nothing until undrain', async () => {
  const flags = ['--etcd', etcdServer.url, '--prefix', prefix];
  const d = await runCli(['drain', '--node', node, ...flags]);
  assert.equal(d.code, 0, d.err);
  await waitFor('nothing registered', async () => (await etcd.getAll().prefix(k.registry).keys()).length === 0, 10_000);
  await waitFor('status says drained', async () => JSON.parse((await etcd.get(k.nodeStatus(node)).string())!).drained === true, 10_000);
  await new Promise((r) => setTimeout(r, 1_500));
  assert.deepEqual(await etcd.getAll().prefix(k.registry).keys(), [], 'still nothing after several probe intervals');
  const st = await runCli(['status', ...flags, '-o', 'json']);
  assert.equal(JSON.parse(st.out).nodes[0].drained, true);
  const u = await runCli(['undrain', '--node', node, ...flags]);
  assert.equal(u.code, 0, u.err);
  await waitFor('registered again', async () => (await registered('web')) && (await registered('job')), 10_000);
});

test('SIGKILL: keys vanish within TTL + 1 s; restarted within the TTL, no key is ever deleted', async () => {
  await agent!.stop();
  agent = undefined;
  const spawnAgent = () => spawn(process.execPath, [join(ROOT, 'dist/agent/bin.js'), 'agent', '--node', node, '--etcd', etcdServer.url, '--prefix', prefix, '--state-dir', stateDir, '--advertise-address', '127.0.0.1', '--sidecar-image', SIDECAR, '--xds-port', String(xdsPort), '--lease-ttl', '4', '--admin-ports', `${base + 10}-${base + 19}`], { stdio: 'ignore' });
  child = spawnAgent();
  await waitFor('the process agent registers', async () => JSON.parse((await etcd.get(k.nodeStatus(node)).string()) ?? '{}').pid === child!.pid && (await registered('web')) && (await registered('job')), 30_000);

  // Restart within the TTL: a watch on the registry sees no delete.
  const deletes: string[] = [];
  const w = await etcd.watch().prefix(k.registry).create();
  w.on('delete', (kv) => deletes.push(kv.key.toString()));
  child.kill('SIGKILL');
  await new Promise((r) => child!.once('exit', r));
  child = spawnAgent();
  await waitFor('the restarted agent reports', async () => JSON.parse((await etcd.get(k.nodeStatus(node)).string()) ?? '{}').pid === child!.pid, 30_000);
  await new Promise((r) => setTimeout(r, 5_000)); // longer than the TTL
  assert.deepEqual(deletes, []);
  assert.ok(await registered('web'));

  // SIGKILL for good: everything under the lease goes within TTL + 1 s.
  child.kill('SIGKILL');
  const t0 = Date.now();
  await new Promise((r) => child!.once('exit', r));
  await waitFor('keys gone', async () => (await etcd.getAll().prefix(k.registry).keys()).length === 0 && (await etcd.getAll().prefix(k.naming).keys()).length === 0, 10_000, 50);
  const took = Date.now() - t0;
  await w.cancel();
  assert.ok(took < 5_000, `keys vanished after ${took} ms (TTL 4 s)`);
});
