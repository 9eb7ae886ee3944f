// The agent's xDS server end to end: desired state and registrations in etcd, a real grpc-js-xds client that the
// agent did not start (served through the fallback), and the operator's canary verbs changing what it does.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import * as grpcXds from '@grpc/grpc-js-xds';
import { Etcd3 } from 'etcd3';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import { keys } from '../../agent/core/model/keys.js';
import { projectName } from '../../agent/core/model/ids.js';
import { startEtcd, freePort, type TestEtcd } from '../helpers/etcd.js';
import { tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { localMesh, putDocs, randomPortBase } from '../helpers/local-mesh.js';
import { callMany, callOnce, echoClient, startEcho, xdsBootstrap, type EchoServer } from '../helpers/grpc-mesh.js';
import { runCli } from '../helpers/cli.js';

const node = `xds-${Math.random().toString(36).slice(2, 8)}`;
const prefix = `/x-${node}`;
const k = keys(prefix);
const base = randomPortBase();
const xdsPort = await freePort();
const stateDir = tempDir('meshlet-agent-xds-');
let etcdServer: TestEtcd;
let etcd: Etcd3;
let agent: RunningAgent;
let servers: EchoServer[] = [];
let client: ReturnType<typeof echoClient>;

// greeter runs on another node ("elsewhere"); its instances are registered there (written here by the test).
const greeter = (weights: string) => `
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: greeter }
spec:
  protocol: grpc
  port: ${base + 7}
  versions:
    v1: { image: greeter:1, nodes: [elsewhere] }
    v2: { image: greeter:2, port: ${base + 8}, nodes: [elsewhere] }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: greeter }
spec:
  hosts: [greeter]
  http:
    - match: [{ headers: { end-user: { exact: jason } } }]
      route: [{ destination: { host: greeter, subset: v2 } }]
    - route:
${weights}
`;

before(async () => {
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
  servers = await Promise.all([startEcho('g1', 'v1'), startEcho('g2', 'v2')]);
  await putDocs(etcd, prefix, localMesh(base, node));
  await putDocs(etcd, prefix, greeter('        - { destination: { host: greeter, subset: v1 }, weight: 90 }\n        - { destination: { host: greeter, subset: v2 }, weight: 10 }'));
  const lease = await etcd.lease(60);
  for (const s of servers) {
    await lease.put(k.instance('greeter', s.version, 'elsewhere')).value(JSON.stringify({ service: 'greeter', version: s.version, node: 'elsewhere', address: '127.0.0.1', port: s.port })).exec();
  }
  agent = await startAgent({
    node, etcd: { endpoints: [etcdServer.url], prefix, retries: 0 }, stateDir, advertiseAddress: '127.0.0.1', xdsPort, compose: 'auto',
    sidecarImage: process.env.MESHLET_TEST_SIDECAR_IMAGE ?? 'meshlet-test/envoy-standin:1', leaseTtl: 10, adminPorts: { from: base + 10, to: base + 19 }, resyncInterval: 5,
  }, systemClock, silentLogger, new AbortController().signal);
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = xdsBootstrap(xdsPort, 'proxyless~elsewhere~outside-app');
  grpcXds.register();
  client = echoClient('xds:///greeter');
});

after(async () => {
  client?.close();
  await agent?.stop();
  for (const s of servers) await s.stop();
  try {
    execFileSync('docker-compose', ['-p', projectName(node), '-f', join(stateDir, 'compose/docker-compose.yml'), 'down', '-t', '1'], { stdio: 'pipe' });
  } catch {
    /* nothing up */
  }
  etcd?.close();
  await etcdServer?.stop();
});

const flags = () => ['--etcd', etcdServer.url, '--prefix', prefix];

test('a proxyless client the agent did not start is served: 90/10 split and the jason header match', async () => {
  await waitFor('the client to get answers', async () => (await callOnce(client)).ok || undefined, 30_000);
  const tally = await callMany(client, 2000);
  const v2 = tally.byVersion.v2 ?? 0;
  assert.deepEqual(tally.errors, {});
  assert.ok(v2 >= 140 && v2 <= 260, `v2 got ${v2} of 2000`);
  const jason = await callMany(client, 200, { headers: { 'end-user': 'jason' } });
  assert.equal(jason.byVersion.v2, 200);
});

test('meshlet promote, route and rollback change what the connected client does, without restarting it', async () => {
  const promote = await runCli(['promote', 'greeter', 'v2', ...flags()]);
  assert.equal(promote.code, 0, promote.err);
  await waitFor('all calls on v2', async () => ((await callMany(client, 50)).byVersion.v2 === 50) || undefined, 10_000, 20);
  const route = await runCli(['route', 'greeter', '--weights', 'v1=50,v2=50', ...flags()]);
  assert.equal(route.code, 0, route.err);
  await waitFor('a 50/50 split', async () => {
    const t = await callMany(client, 400);
    return (t.byVersion.v1 ?? 0) > 140 && (t.byVersion.v2 ?? 0) > 140 || undefined;
  }, 10_000, 50);
  const rollback = await runCli(['rollback', 'greeter', ...flags()]);
  assert.equal(rollback.code, 0, rollback.err);
  await waitFor('all calls on v2 again', async () => ((await callMany(client, 50)).byVersion.v2 === 50) || undefined, 10_000, 20);
});

test('an instance deregistered stops receiving calls', async () => {
  await runCli(['promote', 'greeter', 'v1', ...flags()]);
  await waitFor('v1 only', async () => ((await callMany(client, 50)).byVersion.v1 === 50) || undefined, 10_000, 20);
  const extra = await startEcho('g3', 'v1');
  servers.push(extra);
  await etcd.put(k.instance('greeter', 'v1', 'third')).value(JSON.stringify({ service: 'greeter', version: 'v1', node: 'third', address: '127.0.0.1', port: extra.port })).exec();
  await waitFor('g3 to get calls', async () => ((await callMany(client, 100)).byServer.g3 ?? 0) > 0 || undefined, 10_000, 50);
  await etcd.delete().key(k.instance('greeter', 'v1', 'third')).exec();
  await waitFor('g3 to get no calls', async () => ((await callMany(client, 200)).byServer.g3 ?? 0) === 0 || undefined, 10_000, 50);
});

test('meshlet status shows the connected client and the versions it ACKed', async () => {
  const st = await waitFor('status with the client', async () => {
    const r = await runCli(['status', ...flags(), '-o', 'json']);
    const n = JSON.parse(r.out).nodes.find((x: { node: string }) => x.node === node);
    const c = n?.sidecars.find((x: { id: string }) => x.id === 'proxyless~elsewhere~outside-app');
    return c?.connected && c.acked?.lds ? c : undefined;
  }, 10_000);
  // acked is structured per discovery service (cds/eds/lds/rds) since the status lists real sidecars.
  assert.ok(st.acked.lds);
  assert.ok(st.acked.rds);
});

test('the local mesh\'s sidecars (the real Envoy image when MESHLET_TEST_SIDECAR_IMAGE names it) connect and ACK, no NACK', async () => {
  const want = ['api-v1', 'api-v2', 'web-v1'].map((w) => `sidecar~${node}~${w}`);
  const sidecars = await waitFor('every sidecar connected with ACKs', async () => {
    const r = await runCli(['status', ...flags(), '-o', 'json']);
    const n = JSON.parse(r.out).nodes.find((x: { node: string }) => x.node === node);
    const list = (n?.sidecars ?? []) as { id: string; connected: boolean; acked?: Partial<Record<'cds' | 'eds' | 'lds' | 'rds', string>>; nack?: unknown }[];
    const mine = want.map((id) => list.find((c) => c.id === id));
    if (mine.every((c) => c?.connected && c.acked?.lds && c.acked.cds)) return mine;
    // Not yet: say what the status shows, so a timeout names the sidecar and any container problem.
    throw new Error(`sidecars ${JSON.stringify(mine)}; containers ${JSON.stringify(n?.containers ?? [])}; last apply ${JSON.stringify(n?.lastApply ?? null)}`);
  }, 120_000, 500);
  for (const c of sidecars) assert.equal(c!.nack, undefined, `${c!.id}: ${JSON.stringify(c!.nack)}`);
  // web calls api through its sidecar: it also ACKed the route and the endpoints.
  const web = sidecars.find((c) => c!.id.endsWith('~web-v1'))!;
  assert.ok(web.acked!.rds, JSON.stringify(web));
  assert.ok(web.acked!.eds, JSON.stringify(web));
  // With the real Envoy, web's proxy port answers: api's busybox page through the sidecar.
  if (!/standin/.test(process.env.MESHLET_TEST_SIDECAR_IMAGE ?? 'standin')) {
    await waitFor('a 200 through web\'s sidecar', async () => (await fetch(`http://127.0.0.1:${base + 3}/`)).status === 200 || undefined, 60_000, 200);
  }
});
