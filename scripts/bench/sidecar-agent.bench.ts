// The whole path to a real Envoy: an etcd put of a route change (as `meshlet route` stores it) → the agent
// (startAgent: etcd watch, pass, render, snapshot, ADS push) → Envoy 1.40.0 → the first request answered by
// the new version; then the requests that fail while the route flips 20 times under 500 requests/s.
// The measured Envoy runs on the host with the bootstrap the agent wrote (state dir envoy/web-v1.yaml, used
// as written); the apps are fast Node servers on the host. The agent still needs Docker for its compose
// project (a busybox app and a stand-in sidecar that does nothing), so this needs the dev environment.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { parse } from 'yaml';
import { startAgent } from '../../agent/agent.js';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import { keys } from '../../agent/core/model/keys.js';
import { projectName } from '../../agent/core/model/ids.js';
import { parseYamlDocuments } from '../../agent/core/documents/parse-yaml.js';
import { toEtcdEntry } from '../../agent/core/documents/etcd-docs.js';
import { startEnvoy } from '../../test/helpers/envoy.js';
import { startEtcd, freePort } from '../../test/helpers/etcd.js';
import { send } from '../../test/helpers/http-apps.js';
import { tempDir } from '../../test/helpers/paths.js';
import { waitFor } from '../../test/helpers/wait.js';
import { putDocs, randomPortBase } from '../../test/helpers/local-mesh.js';
import { report } from './stats.js';
import { killedOnExit, openLoop, startFastApp } from './sidecar-lib.js';

const FLIPS = Number(process.env.BENCH_SIDECAR_FLIPS ?? 30);
const LOAD_FLIPS = Number(process.env.BENCH_SIDECAR_LOAD_FLIPS ?? 20);
const LOAD_RATE = Number(process.env.BENCH_SIDECAR_LOAD_RATE ?? 500);
const FLIP_EVERY_MS = 250;
const node = `sb-${Math.random().toString(36).slice(2, 6)}`;
const prefix = '/sb';
const k = keys(prefix);
const base = randomPortBase();
const localPort = base + 3;
const xdsPort = await freePort();
const stateDir = tempDir('meshlet-bench-sidecar-');
const etcdServer = await startEtcd();
const etcd = new Etcd3({ hosts: etcdServer.url });
const [a1, a2] = await Promise.all([startFastApp('v1'), startFastApp('v2')]);

const route = (v1: number, v2: number) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api }
spec:
  hosts: [api]
  http:
    - route:
        - { destination: { host: api, subset: v1 }, weight: ${v1} }
        - { destination: { host: api, subset: v2 }, weight: ${v2} }
`;
// The value `meshlet route api --weights v1=100,v2=0` (and the reverse) stores: both destinations, weights swapped.
const stored = (yaml: string) => toEtcdEntry(prefix, parseYamlDocuments('bench.yaml', yaml, [])[0]!);
const to = { v1: stored(route(100, 0)), v2: stored(route(0, 100)) };

await putDocs(etcd, prefix, `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: web }
spec:
  port: ${base}
  versions:
    v1:
      image: ${process.env.MESHLET_TEST_BUSYBOX_IMAGE ?? 'meshlet-test/busybox:1'}
      command: ["sh", "-c", "exec httpd -f -p 127.0.0.1:$PORT -h /www"]
      nodes: [${node}]
  upstreams: [{ service: api, localPort: ${localPort} }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: api }
spec:
  port: ${a1.port}
  versions:
    v1: { image: api:1, nodes: [elsewhere] }
    v2: { image: api:2, port: ${a2.port}, nodes: [elsewhere] }
---
${route(100, 0)}`);
for (const [version, app] of [['v1', a1], ['v2', a2]] as const) {
  await etcd.put(k.instance('api', version, 'elsewhere')).value(JSON.stringify({ service: 'api', version, node: 'elsewhere', address: '127.0.0.1', port: app.port })).exec();
}
const agent = await startAgent({
  node, etcd: { endpoints: [etcdServer.url], prefix, retries: 0 }, stateDir, advertiseAddress: '127.0.0.1', xdsPort, compose: 'auto',
  // The compose project's sidecar is the stand-in: the Envoy measured here is the one started below on the host.
  sidecarImage: process.env.MESHLET_TEST_STANDIN_IMAGE ?? 'meshlet-test/envoy-standin:1', leaseTtl: 10, adminPorts: { from: base + 10, to: base + 19 }, resyncInterval: 30,
}, systemClock, silentLogger, new AbortController().signal);

const bootstrapFile = join(stateDir, 'envoy', 'web-v1.yaml');
await waitFor('the agent to write the sidecar bootstrap', () => existsSync(bootstrapFile), 60_000);
const adminPort = (parse(readFileSync(bootstrapFile, 'utf8')) as { admin: { address: { socket_address: { port_value: number } } } }).admin.address.socket_address.port_value;
const envoy = killedOnExit(await startEnvoy(bootstrapFile, { adminPort }));
await waitFor('v1 answering through the sidecar', async () => (await send(localPort, { timeoutMs: 1000 })).version === 'v1', 30_000, 20);
await waitFor('the first compose run to finish', () => agent.reconciler.stats.composeRuns >= 1 && (agent.reconciler.state.appliedRevision ?? 0) > 0, 120_000);

const flip = (v: 'v1' | 'v2') => etcd.put(to[v].key).value(to[v].value).exec();

// Figure 2: put → first answer from the new version (sequential requests through the sidecar).
const samples: number[] = [];
for (let i = -2; i < FLIPS; i++) {
  const want = i % 2 === 0 ? 'v2' : 'v1';
  const t0 = performance.now();
  await flip(want);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await send(localPort, { timeoutMs: 1000 });
    if (r.status === 200 && r.version === want) break;
    if (Date.now() > deadline) throw new Error(`flip ${i}: ${want} did not answer within 10 s (last: ${r.status} ${r.version ?? r.body})`);
  }
  if (i >= 0) samples.push(performance.now() - t0);
  await new Promise((r) => setTimeout(r, 100));
}
report('etcd put of a route change → first answer from the new version through a real Envoy sidecar', 'ms', samples, {
  path: 'etcd put → agent → ADS → Envoy 1.40.0 (host process, agent-written bootstrap) → app', target: 'p99 ≤ 30', compose: 'idle (route changes run no compose)',
  p90: Math.round([...samples].sort((a, b) => a - b)[Math.ceil(0.9 * samples.length) - 1]! * 1000) / 1000,
});

// Figure 3: 20 flips, one every 250 ms, while the open-loop generator sends 500 requests/s through the sidecar.
await flip('v1');
await waitFor('v1 again', async () => (await send(localPort, { timeoutMs: 1000 })).version === 'v1', 10_000, 5);
let flipsDone = 0;
let flipped!: Promise<void>;
const flips = async () => {
  for (let i = 0; i < LOAD_FLIPS; i++) {
    const t = performance.now();
    await flip(i % 2 === 0 ? 'v2' : 'v1');
    flipsDone++;
    await new Promise((r) => setTimeout(r, Math.max(0, FLIP_EVERY_MS - (performance.now() - t))));
  }
};
// One second of steady traffic first, then the flips; the last one lands about a second before the end.
const run = openLoop({ port: localPort, rate: LOAD_RATE, seconds: (LOAD_FLIPS * FLIP_EVERY_MS) / 1000 + 2, warmupSeconds: 2, connections: 16 }, () => {
  flipped = new Promise((r) => setTimeout(r, 1_000)).then(flips);
});
const load = await run.done;
await flipped;
const finalVersion = (await send(localPort, { timeoutMs: 1000 })).version;
console.log(JSON.stringify({
  name: `failed requests during ${LOAD_FLIPS} flips at ${LOAD_RATE} rps`, unit: 'requests', value: load.failed, sent: load.sent, ok: load.ok,
  flips: flipsDone, flipEveryMs: FLIP_EVERY_MS, byVersion: load.byVersion, byStatus: load.byStatus, errors: load.errors, lastFlipTo: LOAD_FLIPS % 2 === 0 ? 'v1' : 'v2', answeredAfter: finalVersion,
  target: 0, path: 'etcd put (100/0 ↔ 0/100) → agent → ADS → Envoy 1.40.0', generator: 'open loop (scripts/bench/open-loop.ts, Node child process, 16 connections)',
}));

await envoy.stop();
await agent.stop();
for (const a of [a1, a2]) await a.stop();
execFileSync('docker-compose', ['-p', projectName(node), '-f', join(stateDir, 'compose/docker-compose.yml'), 'down', '-t', '1'], { stdio: 'pipe' });
etcd.close();
await etcdServer.stop();
