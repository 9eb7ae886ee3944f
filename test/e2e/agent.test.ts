// The agent on a real etcd and a real Docker Engine with docker-compose: bring-up, changes, drift, bad input.
// Sidecars are the real Envoy (MESHLET_TEST_SIDECAR_IMAGE).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import type Docker from 'dockerode';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { systemClock } from '../../agent/core/clock.js';
import { jsonLogger, silentLogger } from '../../agent/core/logger.js';
import { keys } from '../../agent/core/model/keys.js';
import { projectName } from '../../agent/core/model/ids.js';
import { DEFAULT_ADMIN_PORTS } from '../../agent/core/render/admin-ports.js';
import { ConflictError } from '../../agent/core/errors.js';
import { createDocker } from '../../agent/adapters/docker/docker.js';
import { startEtcd, type TestEtcd, freePort } from '../helpers/etcd.js';
import { tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { localMesh, putDocs, randomPortBase } from '../helpers/local-mesh.js';
import { runCli } from '../helpers/cli.js';

// Each test file gets its own xDS port, so a running agent or demo on 15010 is never in the way.
const xdsPort = await freePort();

const SIDECAR = process.env.MESHLET_TEST_SIDECAR_IMAGE ?? 'meshlet-test/envoy-standin:1';
const node = `e2e-${Math.random().toString(36).slice(2, 8)}`;
const project = projectName(node);
const prefix = `/e2e-${node}`;
const k = keys(prefix);
const base = randomPortBase();
let etcdServer: TestEtcd;
let etcd: Etcd3;
let docker: Docker;
let agent: RunningAgent;
const stateDir = tempDir('meshlet-agent-');
const abort = new AbortController();
// The agent's last log lines, shown when a wait times out (a CI run once timed out here, never reproduced).
const logLines: string[] = [];
const logger = jsonLogger('info', (line) => {
  logLines.push(line);
  if (logLines.length > 40) logLines.shift();
});

function agentOptions(dir: string) {
  return {
    node,
    etcd: { endpoints: [etcdServer.url], prefix, retries: 0 },
    stateDir: dir,
    advertiseAddress: '127.0.0.1',
    xdsPort,
    compose: 'auto' as const,
    sidecarImage: SIDECAR,
    leaseTtl: 5,
    adminPorts: { ...DEFAULT_ADMIN_PORTS, from: base + 10, to: base + 19 },
    resyncInterval: 2,
  };
}

async function containers(): Promise<Map<string, { id: string; state: string }>> {
  const list = await docker.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${project}`] } });
  return new Map(list.map((c) => [c.Labels['com.docker.compose.service']!, { id: c.Id, state: c.State }]));
}

/** The revision of a desired-state write (a delete too), which is what the agent's source sees. */
async function deleted(key: string): Promise<number> {
  return Number((await etcd.delete().key(key).exec()).header.revision);
}

async function settled(rev: number): Promise<void> {
  // The agent has applied `rev`, the revision of the test's last desired write. Not etcd's current revision:
  // the agent's own registry and status writes move that too, and its desired source never sees them.
  try {
    await waitFor('the agent to apply the latest revision', () => {
      const s = agent.source.current();
      return !!s && s.revision >= rev && (agent.reconciler.state.appliedRevision ?? 0) >= rev;
    }, 60_000);
  } catch (err) {
    const seen = { wanted: rev, source: agent.source.current()?.revision, applied: agent.reconciler.state.appliedRevision, stats: agent.reconciler.stats };
    throw new Error(`${(err as Error).message}\n${JSON.stringify(seen)}\nthe agent's last log lines:\n${logLines.join('\n')}`);
  }
}

async function status(): Promise<Record<string, unknown>> {
  return JSON.parse((await etcd.get(k.nodeStatus(node)).string())!);
}

before(async () => {
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
  docker = createDocker();
  agent = await startAgent(agentOptions(stateDir), systemClock, logger, abort.signal);
});

after(async () => {
  await agent?.stop();
  try {
    execFileSync('docker-compose', ['-p', project, '-f', join(stateDir, 'compose/docker-compose.yml'), 'down', '-t', '1'], { stdio: 'pipe' });
  } catch {
    /* nothing was brought up */
  }
  etcd?.close();
  await etcdServer?.stop();
});

test('the agent brings up every app with its sidecar, on host networking, and compose accepts the file on disk', async () => {
  await settled(await putDocs(etcd, prefix, localMesh(base, node)));
  const c = await containers();
  assert.deepEqual([...c.keys()].sort(), ['api-v1', 'api-v1-envoy', 'api-v2', 'api-v2-envoy', 'web-v1', 'web-v1-envoy']);
  for (const [svc, { id, state }] of c) {
    assert.equal(state, 'running', svc);
    const info = await docker.getContainer(id).inspect();
    assert.equal(info.HostConfig.NetworkMode, 'host', svc);
  }
  const file = join(stateDir, 'compose/docker-compose.yml');
  execFileSync('docker-compose', ['-p', project, '-f', file, 'config', '-q'], { stdio: 'pipe' });
  assert.equal(readFileSync(join(stateDir, 'compose/docker-compose.last-good.yml'), 'utf8'), readFileSync(file, 'utf8'));
  const res = await waitFor('web to answer', async () => (await fetch(`http://127.0.0.1:${base}/`)).status === 200 || undefined, 20_000);
  assert.equal(res, true);
  const st = await status();
  assert.equal((st.lastApply as { ok: boolean }).ok, true);
  assert.deepEqual(st.rejected, []);
  assert.equal(st.lease, agent.lease.id);
  const lease = (await etcd.get(k.nodeStatus(node)).exec()).kvs[0]!.lease;
  assert.equal(String(lease), agent.lease.id, 'the status is bound to the node lease');
});

test('changing one version\'s env recreates exactly that app container, not its sidecar', async () => {
  const before = await containers();
  const runs = agent.reconciler.stats.composeRuns;
  await settled(await putDocs(etcd, prefix, localMesh(base, node).replace('GREETING: hello', 'GREETING: bonjour')));
  await waitFor('a compose run', () => agent.reconciler.stats.composeRuns > runs);
  const now = await containers();
  for (const [svc, { id }] of before) {
    if (svc === 'api-v1') assert.notEqual(now.get(svc)?.id, id, 'api-v1 was recreated');
    else assert.equal(now.get(svc)?.id, id, `${svc} was left alone`);
  }
});

test('re-writing identical documents runs no compose and recreates nothing', async () => {
  const before = await containers();
  const runs = agent.reconciler.stats.composeRuns;
  const passes = agent.reconciler.stats.passes;
  await settled(await putDocs(etcd, prefix, localMesh(base, node).replace('GREETING: hello', 'GREETING: bonjour')));
  await waitFor('a pass over the new revision', () => agent.reconciler.stats.passes > passes);
  assert.equal(agent.reconciler.stats.composeRuns, runs);
  assert.deepEqual(await containers(), before);
});

test('a compose file edited by hand is overwritten and logged', async () => {
  const file = join(stateDir, 'compose/docker-compose.yml');
  const good = readFileSync(file, 'utf8');
  appendFileSync(file, '\n# hand edit\n');
  await waitFor('the file to be rewritten', () => readFileSync(file, 'utf8') === good, 20_000);
  assert.ok(agent.reconciler.stats.handEditsOverwritten >= 1);
});

test('a container stopped or removed by hand comes back', async () => {
  const c = await containers();
  await docker.getContainer(c.get('api-v2')!.id).stop({ t: 1 });
  await docker.getContainer(c.get('web-v1-envoy')!.id).remove({ force: true });
  await waitFor('both to run again', async () => {
    const now = await containers();
    return now.get('api-v2')?.state === 'running' && now.get('web-v1-envoy')?.state === 'running';
  }, 30_000);
});

test('a bad document written into etcd by hand is rejected alone; the status names it; the rest keeps running', async () => {
  const before = await containers();
  const runs = agent.reconciler.stats.composeRuns;
  await etcd.put(k.desiredDoc('services', 'broken')).value('{"apiVersion": "meshlet.dev/v1", "kind": "Service"').exec();
  // Two problems: one of its own (spec.prot) and one with the set (an upstream no Service defines); both are listed.
  const typo = { prot: 'http', port: base + 5, versions: { v1: { image: 'x', nodes: [node] } }, upstreams: [{ service: 'nowhere', localPort: base + 7 }] };
  const put = await etcd.put(k.desiredDoc('services', 'typo')).value(JSON.stringify({ apiVersion: 'meshlet.dev/v1', kind: 'Service', metadata: { name: 'typo' }, spec: typo })).exec();
  await settled(Number(put.header.revision));
  const st = await waitFor('the status to list all three', async () => {
    const s = await status();
    return (s.rejected as unknown[]).length >= 3 ? s : undefined;
  });
  const rejected = st.rejected as { key: string; path: string; message: string }[];
  assert.ok(rejected.some((r) => r.key === k.desiredDoc('services', 'broken') && /invalid JSON/.test(r.message)), JSON.stringify(rejected));
  assert.deepEqual(rejected.filter((r) => r.key === k.desiredDoc('services', 'typo')).map((r) => `${r.path}: ${r.message}`), [
    'spec.prot: unknown field (did you mean "protocol"?); expected one of: protocol, port, versions, upstreams, sidecar',
    'spec.upstreams[0].service: no Service named nowhere',
  ]);
  assert.equal(agent.reconciler.stats.composeRuns, runs);
  assert.deepEqual(await containers(), before);
  await deleted(k.desiredDoc('services', 'broken'));
  await settled(await deleted(k.desiredDoc('services', 'typo')));
});

test('a missing image is a clear error naming it; nothing is pulled and running containers are untouched', async () => {
  const before = await containers();
  const extra = `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: ghost }
spec:
  port: ${base + 6}
  versions: { v1: { image: "meshlet-test/not-here:1", nodes: [${node}] } }
`;
  await putDocs(etcd, prefix, extra);
  const st = await waitFor('an apply error', async () => {
    const s = await status();
    const la = s.lastApply as { ok: boolean; message?: string };
    return la && !la.ok ? la : undefined;
  }, 30_000);
  assert.match(st.message!, /meshlet-test\/not-here:1/);
  assert.match(st.message!, /never pulls/);
  assert.deepEqual(await containers(), before);
  await assert.rejects(docker.getImage('meshlet-test/not-here:1').inspect());
  await etcd.delete().key(k.desiredDoc('services', 'ghost')).exec();
  await waitFor('recovery', async () => ((await status()).lastApply as { ok: boolean }).ok === true, 60_000);
});

test('a sidecar image that does not exist is named in the status and meshlet status; nothing is pulled; the other workloads keep running', async () => {
  const before = await containers();
  const extra = `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: ghostproxy }
spec:
  port: ${base + 7}
  versions: { v1: { image: "${process.env.MESHLET_TEST_BUSYBOX_IMAGE ?? 'meshlet-test/busybox:1'}", command: ["sleep", "600"], nodes: [${node}] } }
  sidecar: { image: "meshlet-test/no-such-envoy:1" }
`;
  await putDocs(etcd, prefix, extra);
  const st = await waitFor('an apply error', async () => {
    const s = await status();
    const la = s.lastApply as { ok: boolean; message?: string };
    return la && !la.ok ? la : undefined;
  }, 30_000);
  assert.match(st.message!, /meshlet-test\/no-such-envoy:1/);
  assert.doesNotMatch(st.message!, /busybox/, 'only the missing image is named');
  const cli = await runCli(['status', '--etcd', etcdServer.url, '--prefix', prefix, '--node', node]);
  assert.match(cli.out, /error: image not present on this host: meshlet-test\/no-such-envoy:1/);
  assert.deepEqual(await containers(), before, 'nothing created, nothing recreated');
  for (const [svc, c] of before) assert.equal(c.state, 'running', svc);
  await assert.rejects(docker.getImage('meshlet-test/no-such-envoy:1').inspect());
  await etcd.delete().key(k.desiredDoc('services', 'ghostproxy')).exec();
  await waitFor('recovery', async () => ((await status()).lastApply as { ok: boolean }).ok === true, 60_000);
});

test('a second agent for the same node refuses to start', async () => {
  await assert.rejects(startAgent(agentOptions(tempDir('meshlet-agent2-')), systemClock, silentLogger, abort.signal), (err: Error) => {
    assert.ok(err instanceof ConflictError);
    assert.match(err.message, new RegExp(`node ${node} is already run by another agent`));
    return true;
  });
});

test('deleting a service removes its containers and leaves the rest', async () => {
  const before = await containers();
  await settled(await deleted(k.desiredDoc('services', 'web')));
  const now = await waitFor('web to go', async () => {
    const c = await containers();
    return c.has('web-v1') || c.has('web-v1-envoy') ? undefined : c;
  }, 30_000);
  for (const svc of ['api-v1', 'api-v1-envoy', 'api-v2', 'api-v2-envoy']) assert.equal(now.get(svc)?.id, before.get(svc)?.id, svc);
});
