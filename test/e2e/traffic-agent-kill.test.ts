// The agent (a separate process) SIGKILLed under load: the real Envoy sidecars keep serving their last
// configuration, reconnect to the restarted agent and ACK again, nothing is re-sent in a loop afterwards,
// and no container is recreated.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { Etcd3 } from 'etcd3';
import { startEtcd, freePort, type TestEtcd } from '../helpers/etcd.js';
import { tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { putDocs, randomPortBase } from '../helpers/local-mesh.js';
import { runCli } from '../helpers/cli.js';
import { adminPort, composeDown, containerIds, requests, sidecarStats, spawnAgentProcess, startLoad, stopLoads, trafficMesh, type AgentSetup } from '../helpers/agent-traffic.js';

const node = `kill-${Math.random().toString(36).slice(2, 8)}`;
const prefix = `/kill-${node}`;
const base = randomPortBase();
const proxy = base + 3;
const stateDir = tempDir('meshlet-traffic-kill-');
const webSidecar = `sidecar~${node}~web-v1`;
let etcdServer: TestEtcd;
let etcd: Etcd3;
let setup: AgentSetup;
const children: ChildProcess[] = [];

function spawnAgent(): ReturnType<typeof spawnAgentProcess> {
  const a = spawnAgentProcess(setup);
  children.push(a.child);
  return a;
}

interface SidecarStatus { id: string; connected: boolean; acked?: Partial<Record<'cds' | 'eds' | 'lds' | 'rds', string>> }

/** web's sidecar as `meshlet status` shows it, when it is connected and has ACKed listeners and clusters. */
async function connectedWithAcks(pid: number): Promise<SidecarStatus | undefined> {
  // The node status key says which agent process wrote it; `meshlet status` shows what that agent's xDS server saw.
  const raw = await etcd.get(`${prefix}/nodes/${node}/status`).string();
  if (!raw || (JSON.parse(raw) as { pid?: number }).pid !== pid) return undefined;
  const r = await runCli(['status', '-o', 'json', '--etcd', etcdServer.url, '--prefix', prefix]);
  if (r.code !== 0) return undefined;
  const n = (JSON.parse(r.out) as { nodes: { node: string; sidecars?: SidecarStatus[] }[] }).nodes.find((x) => x.node === node);
  const s = n?.sidecars?.find((x) => x.id === webSidecar);
  return s?.connected && s.acked?.lds && s.acked.cds ? s : undefined;
}

/** The xDS responses the agent logged (debug) for web's sidecar. */
function responsesTo(log: string): number {
  return log.split('\n').filter((l) => l.includes('xds response') && l.includes(webSidecar)).length;
}

const XDS_STATS = '^(control_plane\\.connected_state|cluster_manager\\.cds\\.update_success|listener_manager\\.lds\\.update_success|cluster_manager\\.cds\\.update_rejected|listener_manager\\.lds\\.update_rejected)$';

before(async () => {
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
  setup = { node, etcdUrl: etcdServer.url, prefix, stateDir, xdsPort: await freePort(), base };
  await putDocs(etcd, prefix, trafficMesh(base, node, { weights: { v1: 50, v2: 50 } }));
});

after(async () => {
  await stopLoads();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  composeDown(node, stateDir);
  etcd?.close();
  await etcdServer?.stop();
});

test('SIGKILL the agent under load: Envoy keeps serving, reconnects and ACKs, then stays quiet; nothing recreated', async () => {
  const first = spawnAgent();
  await waitFor('both versions answering through web\'s sidecar', async () => {
    const t = await requests(proxy, 100);
    return t.ok === 100 && (t.byVersion.v1 ?? 0) > 0 && (t.byVersion.v2 ?? 0) > 0;
  }, 120_000, 200);
  await waitFor('web\'s sidecar connected with ACKs (first agent)', () => connectedWithAcks(first.child.pid!), 60_000, 200);
  const admin = adminPort(stateDir, 'web-v1');
  const ids = await containerIds(node);
  assert.equal(Object.keys(ids).length, 6);

  const edsBefore = await waitFor('the endpoints version web\'s sidecar ACKed', async () => {
    const st = JSON.parse((await etcd.get(`${prefix}/nodes/${node}/status`).string()) ?? '{}') as { xds?: Record<string, { acked?: Record<string, string> }> };
    return st.xds?.[webSidecar]?.acked?.ClusterLoadAssignment;
  }, 30_000, 100);
  const load = startLoad(proxy, { workers: 2, pauseMs: 20 });
  await waitFor('load running', () => load.tally.ok > 20, 30_000, 10);
  first.child.kill('SIGKILL');
  await new Promise((r) => first.child.once('exit', r));
  await waitFor('Envoy to notice its xDS server is gone', async () => (await sidecarStats(admin, XDS_STATS))['control_plane.connected_state'] === 0, 30_000, 50);
  // Served from its last configuration while nobody answers its xDS stream.
  const whileDown = load.tally.ok;
  await waitFor('requests served while the agent is down', () => load.tally.ok >= whileDown + 100, 60_000, 20);
  const downTally = { total: load.tally.total, failures: load.tally.failures.length, byVersion: { ...load.tally.byVersion } };
  assert.deepEqual(load.tally.failures, [], 'no failed request while the agent was down');

  const second = spawnAgent();
  await waitFor('Envoy reconnected', async () => (await sidecarStats(admin, XDS_STATS))['control_plane.connected_state'] === 1, 60_000, 100);
  await waitFor('web\'s sidecar connected with ACKs (restarted agent)', () => connectedWithAcks(second.child.pid!), 60_000, 200);
  // Let the reconnection settle (Envoy re-requests endpoints after clusters), then nothing more may arrive.
  await waitFor('the restarted agent to apply the desired state', async () => {
    const st = JSON.parse((await etcd.get(`${prefix}/nodes/${node}/status`).string()) ?? '{}') as { pid?: number; appliedRevision?: number };
    return st.pid === second.child.pid && (st.appliedRevision ?? 0) > 0;
  }, 60_000, 200);
  let last = '';
  const settled = await waitFor('xDS traffic to web\'s sidecar to stop', async () => {
    const now = JSON.stringify({ stats: await sidecarStats(admin, XDS_STATS), responses: responsesTo(second.stderr()) });
    const same = now === last;
    last = now;
    return same ? (JSON.parse(now) as { stats: Record<string, number>; responses: number }) : undefined;
  }, 60_000, 1_000);
  assert.ok(settled.responses > 0, 'the restarted agent answered web\'s sidecar');
  // The restarted agent sent the endpoints Envoy already had, never an interim set (it once sent empty ones
  // before reading the registry: 503 "no healthy upstream" for a few requests).
  const eds = second.stderr().split('\n').filter((l) => l.includes('xds response') && l.includes(webSidecar) && l.includes('ClusterLoadAssignment'));
  assert.ok(eds.length > 0);
  for (const l of eds) assert.equal((JSON.parse(l) as { version: string }).version, edsBefore, l);
  assert.equal(settled.stats['cluster_manager.cds.update_rejected'] ?? 0, 0);
  assert.equal(settled.stats['listener_manager.lds.update_rejected'] ?? 0, 0);
  // A few seconds later: the same counters, the same number of responses (no push loop).
  await new Promise((r) => setTimeout(r, 4_000));
  const later = { stats: await sidecarStats(admin, XDS_STATS), responses: responsesTo(second.stderr()) };
  assert.deepEqual(later, settled, 'nothing re-sent after the reconnection');
  assert.equal(later.stats['control_plane.connected_state'], 1);

  const t = await load.stop();
  console.log(`# agent SIGKILL: ${downTally.total} requests up to the restart, ${t.total} in all, failed ${t.failures.length}; xDS responses to web after reconnect ${settled.responses}; stats ${JSON.stringify(later.stats)}`);
  assert.deepEqual(t.failures, [], 'no failed request at all');
  assert.ok((t.byVersion.v1 ?? 0) > 0 && (t.byVersion.v2 ?? 0) > 0, JSON.stringify(t.byVersion));
  assert.deepEqual(await containerIds(node), ids, 'no container was recreated');
  const st = JSON.parse((await etcd.get(`${prefix}/nodes/${node}/status`).string())!) as { composeRuns: number };
  assert.equal(st.composeRuns, 0, 'the restarted agent ran no compose');
});
