// The whole agent against a frozen etcd (SIGSTOP: connections stay open, nothing answers). Issue 10, item 2:
// every etcd call has a deadline. Before, a pass hung on its status write and the registry on its write until
// gRPC's keepalive dropped the connection (15 s), and on the connection dialled next for good. Now the drift
// check's read-back, the registry write, the status write and the keepalive fail and are retried, passes go on, and after SIGCONT the lease (expired meanwhile), the claim, the status and the registrations
// come back: registry == healthy instances, nothing recreated. (Each adapter call: integration/etcd-deadlines.)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { systemClock } from '../../agent/core/clock.js';
import { jsonLogger } from '../../agent/core/logger.js';
import { keys } from '../../agent/core/model/keys.js';
import { projectName } from '../../agent/core/model/ids.js';
import { createDocker } from '../../agent/adapters/docker/docker.js';
import { ETCD_CALL_DEADLINE_MS } from '../../agent/adapters/etcd/etcd-call.js';
import { startEtcd, type TestEtcd, freePort } from '../helpers/etcd.js';
import { tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { composeDown } from '../helpers/agent-traffic.js';
import { putDocs, randomPortBase } from '../helpers/local-mesh.js';

const BUSYBOX = process.env.MESHLET_TEST_BUSYBOX_IMAGE ?? 'meshlet-test/busybox:1';
const STANDIN = process.env.MESHLET_TEST_STANDIN_IMAGE ?? 'meshlet-test/envoy-standin:1';
const node = `frz-${Math.random().toString(36).slice(2, 8)}`;
const project = projectName(node);
const prefix = `/fz-${node}`;
const k = keys(prefix);
const base = randomPortBase();
const stateDir = tempDir('meshlet-agent-frozen-');
// A deadline plus room for a loaded machine; without deadlines the first failure came after 15 s (keepalive).
const BOUND_MS = ETCD_CALL_DEADLINE_MS + 6_000;
let etcdServer: TestEtcd;
let etcd: Etcd3;
let agent: RunningAgent;
const lines: { level: string; msg: string; error?: string }[] = [];

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
`;
const regKey = k.instance('web', 'v1', node);
const ids = async () => (await createDocker().listContainers({ all: true, filters: { label: [`com.docker.compose.project=${project}`] } })).map((c) => c.Id).sort();
const webContainer = async () => (await createDocker().listContainers({ filters: { label: [`com.docker.compose.project=${project}`, 'com.docker.compose.service=web-v1'] } }))[0]!.Id;

before(async () => {
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
  const log = jsonLogger('debug', (line) => {
    const o = JSON.parse(line) as { level: string; msg: string; error?: string };
    lines.push({ level: o.level, msg: o.msg, ...(o.error ? { error: o.error } : {}) });
  });
  // TTL 4 s: the lease expires during the freeze, so the recovery re-grants it and puts the claim back too.
  agent = await startAgent({
    node, etcd: { endpoints: [etcdServer.url], prefix, retries: 0 }, stateDir, advertiseAddress: '127.0.0.1', xdsPort: await freePort(), compose: 'auto',
    sidecarImage: STANDIN, leaseTtl: 4, adminPorts: { from: base + 10, to: base + 19 }, resyncInterval: 1,
  }, systemClock, log, new AbortController().signal);
  await putDocs(etcd, prefix, mesh);
  await waitFor('web registered', async () => (await etcd.get(regKey).string()) !== null, 90_000, 100);
});

after(async () => {
  process.kill(etcdServer.pid, 'SIGCONT');
  await agent?.stop();
  composeDown(node, stateDir);
  etcd?.close();
  await etcdServer?.stop();
});

test('etcd frozen: drift check, registry write, status write and keepalive fail and are retried, passes go on; after SIGCONT all comes back', { timeout: 180_000 }, async () => {
  const containers = await ids();
  const web = await webContainer();
  const leaseBefore = agent.lease.id;
  // gRPC's keepalive drops the connection to a frozen etcd after 5 to 15 s: calls in flight then fail as UNAVAILABLE,
  // and etcd3 closes its channels, failing calls queued on them; on the connection dialled next (the kernel accepts
  // it, etcd never answers) only a deadline ends a call: without deadlines the agent hung there for good. Either
  // way a failure is logged and retried; that each call fails by its own named deadline: integration/etcd-deadlines.
  const failedBy = (msg: string, what: string) => () => lines.find((l) => l.msg === msg && (l.error === `${what}: etcd did not answer within ${ETCD_CALL_DEADLINE_MS} ms` || /^14 UNAVAILABLE/.test(l.error ?? '')));
  const passes: [at: number, count: number][] = [];
  const sampler = setInterval(() => passes.push([Date.now(), agent.reconciler.stats.passes]), 100);
  process.kill(etcdServer.pid, 'SIGSTOP');
  const t0 = Date.now();
  try {
    // resyncInterval 1 s: a drift check reads this node's keys back within a second.
    const drift = await waitFor('the drift check to fail', failedBy('cannot read back this node\'s registrations; the next check tries again', 'reading back this node\'s registrations'), 15_000 + BOUND_MS, 50);
    const keepalive = await waitFor('the keepalive to fail', failedBy('lease keepalive failed; retrying', `keepalive of lease ${leaseBefore}`), 15_000 + BOUND_MS, 50);
    // A health change while etcd is frozen: the deregistration and the status that says so cannot be written.
    execFileSync('docker', ['exec', web, 'rm', '/tmp/www/health']);
    const registry = await waitFor('the registry write to fail', failedBy('cannot write registrations to etcd; retrying', 'writing 1 registration'), 15_000 + BOUND_MS, 50);
    const status = await waitFor('the status write to fail', failedBy('cannot write node status; retrying', 'writing the node status'), 15_000 + BOUND_MS, 50);
    for (const l of [drift, keepalive, registry, status]) console.log(`# frozen etcd: ${l.msg}: ${l.error}`);
    assert.deepEqual(agent.registry.current(), [], 'the unhealthy instance is not wanted in the registry');
    // Frozen for 25 s in all, past the connection drop and into the connection that is never answered.
    await new Promise((r) => setTimeout(r, Math.max(0, t0 + 25_000 - Date.now())));
    // The keepalive failed (TTL 4 s): lost on this side, and no lease granted while etcd cannot answer.
    assert.equal(agent.lease.state, 'lost');
    assert.ok(!lines.some((l) => l.msg === 'lease lost; granted a new one'));
    execFileSync('docker', ['exec', web, 'sh', '-c', 'echo ok > /tmp/www/health']);
  } catch (err) {
    throw new Error(`${(err as Error).message}; the agent logged: ${JSON.stringify(lines.filter((l) => l.level !== 'info').slice(-30))}`);
  } finally {
    process.kill(etcdServer.pid, 'SIGCONT');
    clearInterval(sampler);
  }
  // The loop was never stuck behind an etcd call: the drift checks (1 s) kept making passes, at most a deadline apart.
  let longest = 0;
  for (let i = 0, from = passes[0]!; i < passes.length; i++) {
    if (passes[i]![1] !== from[1]) from = passes[i]!;
    longest = Math.max(longest, passes[i]![0] - from[0]);
  }
  console.log(`# frozen etcd for 25 s: ${passes.at(-1)![1] - passes[0]![1]} passes, longest without one ${longest} ms`);
  assert.ok(longest < BOUND_MS, `no pass for ${longest} ms while etcd was frozen`);
  const t2 = Date.now();
  // The lease expired on the server meanwhile (etcd's clock ran on): a new one, with the claim, status and registration.
  await waitFor('registry == healthy instances, under the new lease, with the claim and the status', async () => {
    const lease = agent.lease.id;
    const healthy = agent.registry.current().map((i) => `${i.service}/${i.version}`);
    const reg = await etcd.getAll().prefix(k.registry).exec();
    const claim = (await etcd.get(k.nodeOwner(node)).exec()).kvs[0];
    const st = JSON.parse((await etcd.get(k.nodeStatus(node)).string()) ?? '{}') as { lease?: string; registered?: string[] };
    return lease !== leaseBefore && healthy.length === 1
      && JSON.stringify(reg.kvs.map((kv) => kv.key.toString())) === JSON.stringify([regKey]) && reg.kvs.every((kv) => String(kv.lease) === lease)
      && claim !== undefined && String(claim.lease) === lease
      && st.lease === lease && JSON.stringify(st.registered) === JSON.stringify(healthy);
  }, 60_000, 100);
  console.log(`# frozen etcd: after SIGCONT, lease, claim, status and registry back in ${Date.now() - t2} ms`);
  assert.ok(lines.some((l) => l.msg === 'lease lost; granted a new one'), 'the expired lease was replaced');
  assert.deepEqual(await ids(), containers, 'no container recreated');
});
