// web's real Envoy sidecar holds exactly the registered instances of api (its admin /clusters == `meshlet get
// instances`), and an instance that fails its health check or is killed stops receiving requests.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import type { RunningAgent } from '../../agent/agent.js';
import { keys } from '../../agent/core/model/keys.js';
import { createDocker } from '../../agent/adapters/docker/docker.js';
import { startEtcd, freePort, type TestEtcd } from '../helpers/etcd.js';
import { tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { putDocs, randomPortBase } from '../helpers/local-mesh.js';
import { runCli } from '../helpers/cli.js';
import {
  adminPort, composeDown, containerIds, endpointsOf, expectedEndpoints, requests, sidecarEndpoints, sidecarStats, startLoad, startLocalAgent, stopLoads, trafficMesh, type RegisteredInstance,
} from '../helpers/agent-traffic.js';

const node = `ep-${Math.random().toString(36).slice(2, 8)}`;
const prefix = `/ep-${node}`;
const k = keys(prefix);
const base = randomPortBase();
const proxy = base + 3;
const stateDir = tempDir('meshlet-traffic-ep-');
let etcdServer: TestEtcd;
let etcd: Etcd3;
let agent: RunningAgent;
let admin: number;
const v1 = `127.0.0.1:${base + 1}`;
const v2 = `127.0.0.1:${base + 2}`;

async function registered(): Promise<RegisteredInstance[]> {
  const r = await runCli(['get', 'instances', '-o', 'json', '--etcd', etcdServer.url, '--prefix', prefix]);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out) as RegisteredInstance[];
}

/** Waits until web's sidecar holds, per api cluster, exactly what the registry holds; returns that. */
async function sidecarMatchesRegistry(what: string, check: (eps: Record<string, string[]>) => boolean): Promise<Record<string, string[]>> {
  return waitFor(`web's sidecar endpoints == registry, ${what}`, async () => {
    const eps = endpointsOf('api', await sidecarEndpoints(admin));
    const want = expectedEndpoints('api', await registered(), Object.keys(eps));
    return Object.keys(eps).length > 0 && JSON.stringify(eps) === JSON.stringify(want) && check(eps) ? eps : undefined;
  }, 30_000, 100);
}

const all = (eps: Record<string, string[]>) => [...new Set(Object.values(eps).flat())].sort();

before(async () => {
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
  // No VirtualService: round robin over every healthy instance of every version.
  await putDocs(etcd, prefix, trafficMesh(base, node));
  agent = await startLocalAgent({ node, etcdUrl: etcdServer.url, prefix, stateDir, xdsPort: await freePort(), base });
  await waitFor('web\'s sidecar admin port', () => adminPort(stateDir, 'web-v1'), 60_000);
  admin = adminPort(stateDir, 'web-v1');
  await waitFor('both api versions answering through web\'s sidecar', async () => {
    const t = await requests(proxy, 100);
    return t.ok === 100 && (t.byVersion.v1 ?? 0) > 0 && (t.byVersion.v2 ?? 0) > 0;
  }, 90_000, 200);
});

after(async () => {
  await stopLoads();
  await agent?.stop();
  composeDown(node, stateDir);
  etcd?.close();
  await etcdServer?.stop();
});

test('the sidecar holds exactly the registered instances, and round robin reaches both', async () => {
  const eps = await sidecarMatchesRegistry('both versions', (e) => all(e).length === 2);
  assert.deepEqual(all(eps), [v1, v2].sort());
  const t = await requests(proxy, 400);
  assert.equal(t.ok, 400);
  assert.ok((t.byVersion.v1 ?? 0) > 100 && (t.byVersion.v2 ?? 0) > 100, JSON.stringify(t.byVersion));
});

test('an instance failing its health check (page removed inside its running container) stops receiving requests', async () => {
  const ids = await containerIds(node);
  execFileSync('docker', ['exec', ids['api-v2']!, 'rm', '/tmp/www/health.html'], { env: process.env });
  await waitFor('api v2 deregistered', async () => !(await etcd.get(k.instance('api', 'v2', node)).string()), 30_000);
  const eps = await sidecarMatchesRegistry('without v2', (e) => !all(e).includes(v2));
  assert.deepEqual(all(eps), [v1]);
  // The app itself still answers: it is the registry, not a dead port, that keeps requests away.
  assert.equal((await requests(base + 2, 5)).ok, 5);
  const t = await requests(proxy, 300);
  assert.deepEqual(t.byVersion, { v1: 300 }, JSON.stringify(t.failures.slice(0, 3)));

  execFileSync('docker', ['exec', ids['api-v2']!, 'sh', '-c', 'echo ok > /tmp/www/health.html'], { env: process.env });
  await sidecarMatchesRegistry('v2 back', (e) => all(e).includes(v2));
  await waitFor('v2 answering again', async () => ((await requests(proxy, 100)).byVersion.v2 ?? 0) > 0, 30_000);
  assert.deepEqual(await containerIds(node), ids, 'nothing was recreated');
});

// Seen with Envoy 1.40: requests DO fail between the kill and the endpoint leaving the sidecar. First 72 of 732:
// the removal waited behind the compose run the container's death had started (fixed: Reconciler.publishNow),
// and the sidecar often never dropped the endpoint at all (re-registered before that pass ended). Now 3 of 655:
// meshlet's default retry policy has no previous_hosts predicate (a retry may pick the dead host again:
// upstream_rq_retry_limit_exceeded) and Envoy's default circuit breaker allows 3 retries at once
// (upstream_rq_retry_overflow); Istio sets both (previous_hosts + 5 host selection attempts; max_retries 2^32-1).
// The number is printed; asserted: the sidecar drops the endpoint, and nothing fails once it has.
test('a killed instance is deregistered, leaves the sidecar, then comes back; requests fail only until the sidecar drops it', async () => {
  await sidecarMatchesRegistry('both versions', (e) => all(e).length === 2);
  const ids = await containerIds(node);
  const deletes: string[] = [];
  const watcher = await etcd.watch().key(k.instance('api', 'v2', node)).create();
  watcher.on('delete', (kv) => deletes.push(kv.key.toString()));
  const load = startLoad(proxy, { workers: 4, pauseMs: 2 });
  await waitFor('load running', () => load.tally.ok > 100, 30_000, 10);
  // No restart by Docker itself (the container is not recreated: same id): the agent's drift check starts it
  // again with compose, which leaves a window of a second or so to see the sidecar without it.
  execFileSync('docker', ['update', '--restart=no', ids['api-v2']!], { env: process.env, stdio: 'pipe' });
  const failedBefore = load.tally.failures.length;
  await createDocker().getContainer(ids['api-v2']!).kill();
  let goneAt: { failures: number; v2: number } | undefined;
  await waitFor('api v2 to leave web\'s sidecar', async () => {
    if (all(endpointsOf('api', await sidecarEndpoints(admin))).includes(v2)) return false;
    goneAt = { failures: load.tally.failures.length, v2: load.tally.byVersion.v2 ?? 0 };
    return true;
  }, 60_000, 10);
  await waitFor('api v2 deregistered (watched)', () => deletes.length > 0, 30_000);
  await sidecarMatchesRegistry('v2 back', (e) => all(e).includes(v2));
  await waitFor('v2 answering again under the load', () => (load.tally.byVersion.v2 ?? 0) > goneAt!.v2 + 20, 30_000, 20);
  const t = await load.stop();
  await watcher.cancel();
  console.log('# web sidecar, cluster api:', JSON.stringify(await sidecarStats(admin, 'cluster\\.api\\.(.*retry.*|upstream_cx_connect_fail|upstream_rq_total|upstream_rq_503)$')));
  const lostBeforeEds = goneAt!.failures - failedBefore;
  console.log(`# kill under load: requests ${t.total}, failed ${t.failures.length} (${lostBeforeEds} before the sidecar dropped the endpoint) ${JSON.stringify(t.failures.slice(0, 2))}`);
  // Once the sidecar no longer holds the dead instance, nothing fails (a few requests already in flight aside).
  assert.ok(t.failures.length - goneAt!.failures <= 4, `failed after the sidecar dropped it: ${JSON.stringify(t.failures.slice(goneAt!.failures))}`);
  assert.equal(failedBefore, 0);
  const now = await containerIds(node);
  assert.deepEqual(now, ids, 'started again, not recreated');
});
