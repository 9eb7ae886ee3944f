// A registration deleted by hand comes back (issue: it used to stay gone until the agent restarted while the
// instance stayed healthy, and sidecars lost its endpoints): the registry watch sees this node's key vanish
// and the agent puts both keys back; a naming key deleted alone is found by the next drift check. No
// container is recreated. The sidecar is the stand-in: this test is about the registry, not traffic.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import { keys } from '../../agent/core/model/keys.js';
import { projectName } from '../../agent/core/model/ids.js';
import { createDocker } from '../../agent/adapters/docker/docker.js';
import { startEtcd, type TestEtcd, freePort } from '../helpers/etcd.js';
import { tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { composeDown } from '../helpers/agent-traffic.js';
import { putDocs, randomPortBase } from '../helpers/local-mesh.js';

const BUSYBOX = process.env.MESHLET_TEST_BUSYBOX_IMAGE ?? 'meshlet-test/busybox:1';
const STANDIN = process.env.MESHLET_TEST_STANDIN_IMAGE ?? 'meshlet-test/envoy-standin:1';
const node = `rep-${Math.random().toString(36).slice(2, 8)}`;
const project = projectName(node);
const prefix = `/rp-${node}`;
const k = keys(prefix);
const base = randomPortBase();
const stateDir = tempDir('meshlet-agent-repair-');
let etcdServer: TestEtcd;
let etcd: Etcd3;
let agent: RunningAgent;

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
const namingKey = k.namingEndpoint('web', `127.0.0.1:${base}`);
const ids = async () => (await createDocker().listContainers({ all: true, filters: { label: [`com.docker.compose.project=${project}`] } })).map((c) => c.Id).sort();

before(async () => {
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
  agent = await startAgent({
    node, etcd: { endpoints: [etcdServer.url], prefix, retries: 0 }, stateDir, advertiseAddress: '127.0.0.1', xdsPort: await freePort(), compose: 'auto',
    sidecarImage: STANDIN, leaseTtl: 10, adminPorts: { from: base + 10, to: base + 19 }, resyncInterval: 2,
  }, systemClock, silentLogger, new AbortController().signal);
  await putDocs(etcd, prefix, mesh);
  await waitFor('web registered in both formats', async () => (await etcd.get(regKey).string()) !== null && (await etcd.get(namingKey).string()) !== null, 90_000, 100);
});

after(async () => {
  await agent?.stop();
  composeDown(node, stateDir);
  etcd?.close();
  await etcdServer?.stop();
});

test('both keys deleted by hand come back at once under the lease; nothing is recreated', async () => {
  const containers = await ids();
  const before = { reg: await etcd.get(regKey).string(), naming: await etcd.get(namingKey).string() };
  const t0 = performance.now();
  await etcd.delete().key(regKey).exec();
  await etcd.delete().key(namingKey).exec();
  await waitFor('both keys back', async () => (await etcd.get(regKey).string()) === before.reg && (await etcd.get(namingKey).string()) === before.naming, 10_000, 5);
  const ms = performance.now() - t0;
  console.log(`# hand-deleted registration back after ${ms.toFixed(1)} ms`);
  assert.equal(String((await etcd.get(regKey).exec()).kvs[0]!.lease), agent.lease.id, 'bound to the node lease');
  assert.deepEqual(await ids(), containers, 'no container recreated');
});

test('a naming key deleted alone (the registry watch cannot see it) is back after the next drift check', async () => {
  const value = await etcd.get(namingKey).string();
  await etcd.delete().key(namingKey).exec();
  // resyncInterval is 2 s: the drift check reads this node's keys back.
  await waitFor('the naming key back', async () => (await etcd.get(namingKey).string()) === value, 15_000, 50);
});

test('an instance that is deregistered on purpose stays deregistered (drain), and comes back with undrain', async () => {
  await etcd.put(k.nodeDrain(node)).value('{}').exec();
  await waitFor('deregistered by the drain', async () => (await etcd.get(regKey).string()) === null, 15_000, 50);
  // Two drift checks later it is still gone: repair only restores what the agent means to have written.
  await new Promise((r) => setTimeout(r, 4_500));
  assert.equal(await etcd.get(regKey).string(), null);
  await etcd.delete().key(k.nodeDrain(node)).exec();
  await waitFor('registered again after undrain', async () => (await etcd.get(regKey).string()) !== null, 15_000, 50);
});
