// etcd away for 10 s (the agent's connection goes through a TCP proxy that refuses): nothing is stopped or
// recreated meanwhile; once etcd is back, the lease and registrations come back and a new change applies.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import { keys } from '../../agent/core/model/keys.js';
import { projectName } from '../../agent/core/model/ids.js';
import { createDocker } from '../../agent/adapters/docker/docker.js';
import { startEtcd, type TestEtcd, freePort } from '../helpers/etcd.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { localMesh, putDocs, randomPortBase } from '../helpers/local-mesh.js';
import { adminPort, endpointsOf, sidecarEndpoints } from '../helpers/agent-traffic.js';

// Each test file gets its own xDS port, so a running agent or demo on 15010 is never in the way.
const xdsPort = await freePort();

const node = `outage-${Math.random().toString(36).slice(2, 8)}`;
const project = projectName(node);
const prefix = `/o-${node}`;
const k = keys(prefix);
const base = randomPortBase();
const stateDir = tempDir('meshlet-agent-outage-');
let etcdServer: TestEtcd;
let proxy: TcpProxy;
let etcd: Etcd3;
let agent: RunningAgent;

async function ids(): Promise<Record<string, string>> {
  const list = await createDocker().listContainers({ all: true, filters: { label: [`com.docker.compose.project=${project}`] } });
  return Object.fromEntries(list.map((c) => [`${c.Labels['com.docker.compose.service']}`, `${c.Id} ${c.State}`]).sort());
}

before(async () => {
  etcdServer = await startEtcd();
  proxy = await TcpProxy.forUrl(etcdServer.url);
  etcd = new Etcd3({ hosts: etcdServer.url });
  agent = await startAgent({
    node, etcd: { endpoints: [proxy.url], prefix, retries: 0 }, stateDir, advertiseAddress: '127.0.0.1', xdsPort, compose: 'auto',
    sidecarImage: process.env.MESHLET_TEST_SIDECAR_IMAGE ?? 'meshlet-test/envoy-standin:1', leaseTtl: 4, adminPorts: { from: base + 10, to: base + 19 }, resyncInterval: 2,
  }, systemClock, silentLogger, new AbortController().signal);
});

after(async () => {
  await proxy?.resume();
  await agent?.stop();
  try {
    execFileSync('docker-compose', ['-p', project, '-f', join(stateDir, 'compose/docker-compose.yml'), 'down', '-t', '1'], { stdio: 'pipe' });
  } catch {
    /* nothing up */
  }
  etcd?.close();
  await proxy?.close();
  await etcdServer?.stop();
});

test('etcd away for 10 s: containers untouched; afterwards the lease, the registrations and new changes come back', async () => {
  const rev = await putDocs(etcd, prefix, localMesh(base, node));
  await waitFor('applied and registered', async () => (agent.reconciler.state.appliedRevision ?? 0) >= rev && (await etcd.getAll().prefix(k.registry).keys()).length === 3, 60_000);
  const before = await ids();
  assert.equal(Object.values(before).filter((v) => v.endsWith('running')).length, 6);
  const leaseBefore = agent.lease.id;

  await proxy.suspend('refuse');
  const outageEnd = Date.now() + 10_000;
  while (Date.now() < outageEnd) {
    assert.deepEqual(await ids(), before, 'nothing stopped or recreated while etcd is away');
    await new Promise((r) => setTimeout(r, 1_000));
  }
  // The lease (TTL 4 s) expired on the server meanwhile: its keys are gone.
  assert.deepEqual(await etcd.getAll().prefix(k.registry).keys(), []);
  // web's sidecar, from before etcd answers until the registrations are back: its api endpoints never empty. The
  // registry watch shows this node's keys gone (the lease expired) before the agent puts them back; this host's
  // sidecars take this node's instances from the agent's own registrations, not from that gap.
  const web = adminPort(stateDir, 'web-v1');
  const samples: Record<string, string[]>[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      samples.push(endpointsOf('api', await sidecarEndpoints(web)));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  await proxy.resume();

  await waitFor('a new lease with registrations and status', async () => {
    const regs = await etcd.getAll().prefix(k.registry).keys();
    const st = await etcd.get(k.nodeStatus(node)).string();
    return regs.length === 3 && st !== null && agent.lease.id !== leaseBefore;
  }, 30_000);
  await new Promise((r) => setTimeout(r, 500));
  sampling = false;
  await sampler;
  assert.ok(samples.length > 10, `${samples.length} samples`);
  const gaps = samples.filter((s) => Object.keys(s).length === 0 || Object.values(s).some((eps) => eps.length === 0));
  assert.deepEqual(gaps, [], `web's sidecar lost api endpoints in ${gaps.length} of ${samples.length} samples`);
  const rev2 = await putDocs(etcd, prefix, localMesh(base, node).replace('GREETING: hello', 'GREETING: back'));
  await waitFor('the change after the outage to apply', () => (agent.reconciler.state.appliedRevision ?? 0) >= rev2, 60_000);
  const after = await ids();
  for (const [svc, v] of Object.entries(before)) {
    if (svc === 'api-v1') assert.notEqual(after[svc], v);
    else assert.equal(after[svc], v, svc);
  }
});
