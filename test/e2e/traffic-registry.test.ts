// web's real Envoy sidecar follows the registry beyond its own node: instances another node's agent registered
// get requests, a newly placed version gets them once healthy, and a drained node's instances get none.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3, type Lease } from 'etcd3';
import type { RunningAgent } from '../../agent/agent.js';
import { keys } from '../../agent/core/model/keys.js';
import { startEtcd, freePort, type TestEtcd } from '../helpers/etcd.js';
import { tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { putDocs, randomPortBase } from '../helpers/local-mesh.js';
import { runCli } from '../helpers/cli.js';
import { startHttpApp, type HttpApp } from '../helpers/http-apps.js';
import {
  adminPort, composeDown, containerIds, endpointsOf, expectedEndpoints, requests, sidecarEndpoints, startLocalAgent, trafficMesh, type RegisteredInstance,
} from '../helpers/agent-traffic.js';

const node = `reg-${Math.random().toString(36).slice(2, 8)}`;
const prefix = `/reg-${node}`;
const k = keys(prefix);
const base = randomPortBase();
const proxy = base + 3;
const stateDir = tempDir('meshlet-traffic-reg-');
let etcdServer: TestEtcd;
let etcd: Etcd3;
let agent: RunningAgent;
let admin: number;
let otherLease: Lease;
const apps: HttpApp[] = [];

const flags = () => ['--etcd', etcdServer.url, '--prefix', prefix];

async function registered(): Promise<RegisteredInstance[]> {
  const r = await runCli(['get', 'instances', '-o', 'json', ...flags()]);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out) as RegisteredInstance[];
}

/** Waits until web's sidecar holds, per api cluster, exactly the registered instances and `want` is that set. */
async function sidecarHolds(what: string, want: string[]): Promise<void> {
  await waitFor(`web's sidecar endpoints == registry == ${what}`, async () => {
    const eps = endpointsOf('api', await sidecarEndpoints(admin));
    const reg = await registered();
    const same = JSON.stringify(eps) === JSON.stringify(expectedEndpoints('api', reg, Object.keys(eps)));
    return Object.keys(eps).length > 0 && same && JSON.stringify([...new Set(Object.values(eps).flat())].sort()) === JSON.stringify([...want].sort());
  }, 60_000, 100);
}

/** Registers a host app as an instance of api on another node, the way that node's agent would (its lease). */
async function registerElsewhere(app: HttpApp, otherNode: string): Promise<void> {
  await otherLease.put(k.instance('api', app.version, otherNode)).value(JSON.stringify({ ...app.instance(otherNode), container: 'elsewhere', healthySince: new Date().toISOString() })).exec();
}

const local = (port: number) => `127.0.0.1:${port}`;

before(async () => {
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
  otherLease = etcd.lease(60);
  // api v1 here, v2 placed on node "elsewhere"; no VirtualService: round robin over every instance.
  await putDocs(etcd, prefix, trafficMesh(base, node, { versions: ['v1'], elsewhere: ['v2'] }));
  agent = await startLocalAgent({ node, etcdUrl: etcdServer.url, prefix, stateDir, xdsPort: await freePort(), base });
  admin = await waitFor('web\'s sidecar admin port', () => adminPort(stateDir, 'web-v1'), 60_000);
  await waitFor('api v1 answering through web\'s sidecar', async () => (await requests(proxy, 50)).byVersion.v1 === 50, 90_000, 200);
});

after(async () => {
  await agent?.stop();
  composeDown(node, stateDir);
  for (const a of apps) await a.close();
  await otherLease?.revoke().catch(() => undefined);
  etcd?.close();
  await etcdServer?.stop();
});

test('instances registered by other nodes\' agents are used; one deregistered there stops getting requests', async () => {
  const v2 = await startHttpApp('api', 'v2', 'remote-v2');
  const extra = await startHttpApp('api', 'v1', 'remote-v1');
  apps.push(v2, extra);
  await registerElsewhere(v2, 'elsewhere');
  await registerElsewhere(extra, 'third');
  await sidecarHolds('v1 here + two elsewhere', [local(base + 1), local(v2.port), local(extra.port)]);
  const t = await requests(proxy, 600);
  assert.equal(t.ok, 600, JSON.stringify(t.failures.slice(0, 3)));
  for (const app of [`api-v1@${node}`, 'remote-v2', 'remote-v1']) assert.ok((t.byApp[app] ?? 0) > 100, `${app}: ${JSON.stringify(t.byApp)}`);

  await etcd.delete().key(k.instance('api', 'v1', 'third')).exec();
  await sidecarHolds('remote-v1 gone', [local(base + 1), local(v2.port)]);
  const seen = extra.seen.length;
  const after = await requests(proxy, 300);
  assert.equal(after.ok, 300);
  assert.equal(after.byApp['remote-v1'] ?? 0, 0);
  assert.equal(extra.seen.length, seen, 'the deregistered app was sent nothing');
});

test('a version newly placed on this node gets requests once healthy, and nothing running is recreated', async () => {
  const ids = await containerIds(node);
  await putDocs(etcd, prefix, trafficMesh(base, node, { versions: ['v1', 'v3'], elsewhere: ['v2'] }));
  await waitFor('api v3 registered', async () => (await registered()).some((i) => i.version === 'v3'), 90_000, 200);
  const v2 = apps[0]!;
  await sidecarHolds('v1, v3 here + v2 elsewhere', [local(base + 1), local(base + 2), local(v2.port)]);
  const t = await requests(proxy, 600);
  assert.equal(t.ok, 600);
  assert.ok((t.byVersion.v3 ?? 0) > 100, JSON.stringify(t.byVersion));
  const now = await containerIds(node);
  for (const [svc, id] of Object.entries(ids)) assert.equal(now[svc], id, `${svc} was left alone`);
  assert.deepEqual(Object.keys(now).filter((s) => !(s in ids)).sort(), ['api-v3', 'api-v3-envoy']);
});

test('a drained node\'s instances get no requests (the other node\'s do); undrained, they get them again', async () => {
  const v2 = apps[0]!;
  const d = await runCli(['drain', '--node', node, ...flags()]);
  assert.equal(d.code, 0, d.err);
  // Everything of this node is deregistered, web included; its sidecar still runs and routes to what is left.
  await sidecarHolds('only the other node\'s v2', [local(v2.port)]);
  const t = await requests(proxy, 300);
  assert.equal(t.ok, 300, JSON.stringify(t.failures.slice(0, 3)));
  assert.deepEqual(t.byApp, { 'remote-v2': 300 });

  const u = await runCli(['undrain', '--node', node, ...flags()]);
  assert.equal(u.code, 0, u.err);
  await sidecarHolds('this node\'s instances back', [local(base + 1), local(base + 2), local(v2.port)]);
  const back = await requests(proxy, 600);
  assert.equal(back.ok, 600);
  assert.ok((back.byApp[`api-v1@${node}`] ?? 0) > 100 && (back.byApp[`api-v3@${node}`] ?? 0) > 100, JSON.stringify(back.byApp));
});
