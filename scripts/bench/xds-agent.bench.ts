// Through the whole agent: an etcd put of a route change → the first call on the new version at a connected
// grpc-js-xds client (etcd watch, pass, snapshot, push, client update). Needs the dev environment (Docker).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import * as grpcXds from '@grpc/grpc-js-xds';
import { Etcd3 } from 'etcd3';
import { startAgent } from '../../agent/agent.js';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import { keys } from '../../agent/core/model/keys.js';
import { projectName } from '../../agent/core/model/ids.js';
import { startEtcd, freePort } from '../../test/helpers/etcd.js';
import { tempDir } from '../../test/helpers/paths.js';
import { waitFor } from '../../test/helpers/wait.js';
import { localMesh, putDocs, randomPortBase } from '../../test/helpers/local-mesh.js';
import { callOnce, echoClient, startEcho, xdsBootstrap } from '../../test/helpers/grpc-mesh.js';
import { report } from './stats.js';

const FLIPS = Number(process.env.BENCH_XDS_FLIPS ?? 30);
const node = `xb-${Math.random().toString(36).slice(2, 6)}`;
const prefix = '/xb';
const k = keys(prefix);
const base = randomPortBase();
const xdsPort = await freePort();
const stateDir = tempDir('meshlet-bench-xds-');
const etcdServer = await startEtcd();
const etcd = new Etcd3({ hosts: etcdServer.url });
const servers = await Promise.all([startEcho('g1', 'v1'), startEcho('g2', 'v2')]);
const route = (v: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: greeter }
spec:
  hosts: [greeter]
  http:
    - route: [{ destination: { host: greeter, subset: ${v} } }]
`;
await putDocs(etcd, prefix, localMesh(base, node));
await putDocs(etcd, prefix, `apiVersion: meshlet.dev/v1
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
kind: DestinationRule
metadata: { name: greeter }
spec:
  host: greeter
  subsets: [{ name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } }]
---
${route('v1')}`);
for (const s of servers) {
  await etcd.put(k.instance('greeter', s.version, 'elsewhere')).value(JSON.stringify({ service: 'greeter', version: s.version, node: 'elsewhere', address: '127.0.0.1', port: s.port })).exec();
}
const agent = await startAgent({
  node, etcd: { endpoints: [etcdServer.url], prefix, retries: 0 }, stateDir, advertiseAddress: '127.0.0.1', xdsPort, compose: 'auto',
  sidecarImage: process.env.MESHLET_TEST_SIDECAR_IMAGE ?? 'meshlet-test/envoy-standin:1', leaseTtl: 10, adminPorts: { from: base + 10, to: base + 19 }, resyncInterval: 30,
}, systemClock, silentLogger, new AbortController().signal);
process.env.GRPC_XDS_BOOTSTRAP_CONFIG = xdsBootstrap(xdsPort, 'proxyless~elsewhere~bench-app');
grpcXds.register();
const client = echoClient('xds:///greeter');
await waitFor('first answers', async () => (await callOnce(client)).ok || undefined, 60_000);
await waitFor('the first compose run to finish', () => agent.reconciler.stats.composeRuns >= 1 && (agent.reconciler.state.appliedRevision ?? 0) > 0, 120_000);

const samples: number[] = [];
for (let i = -2; i < FLIPS; i++) {
  const want = i % 2 === 0 ? 'v2' : 'v1';
  const t0 = performance.now();
  // A canary flip as `meshlet route greeter --weights v1=100,v2=0` writes it: both destinations, weights swapped.
  const w = (v: string) => (v === want ? 100 : 0);
  await etcd.put(k.desiredDoc('routes', 'greeter')).value(JSON.stringify({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'greeter' }, spec: { hosts: ['greeter'], http: [{ route: ['v1', 'v2'].map((v) => ({ destination: { host: 'greeter', subset: v }, weight: w(v) })) }] } })).exec();
  for (;;) {
    const r = await callOnce(client, {}, 2_000);
    if (r.ok && r.reply.version === want) break;
  }
  if (i >= 0) samples.push(performance.now() - t0);
  await new Promise((r) => setTimeout(r, 100));
}
report('xds_etcd_route_put_to_first_call_on_new_version', 'ms', samples, { path: 'etcd put → agent → grpc-js-xds', compose: 'idle' });
client.close();
await agent.stop();
for (const s of servers) await s.stop();
execFileSync('docker-compose', ['-p', projectName(node), '-f', join(stateDir, 'compose/docker-compose.yml'), 'down', '-t', '1'], { stdio: 'pipe' });
etcd.close();
await etcdServer.stop();
process.exit(0); // grpc-js-xds leaves failover timers running after close
