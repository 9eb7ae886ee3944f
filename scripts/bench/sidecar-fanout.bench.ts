// One route change fanned out to 10 and then 30 real Envoy sidecars (Envoy 1.40.0 processes on the host, each
// its own node id and admin port) connected to one ADS server (the agent's SnapshotCache + AdsServer, fed by
// its renderer): from the change being published to every sidecar having ACKed every resource type of its
// new snapshot. Envoy runs with its default concurrency (one worker per core: 2 here) unless
// BENCH_ENVOY_CONCURRENCY says otherwise. No etcd, no Docker.
import { contentHash } from '../../agent/core/model/canonical.js';
import { TYPE } from '../../agent/core/xds/envoy-types.js';
import { xdsNodeId } from '../../agent/core/model/ids.js';
import { startEnvoyMesh } from '../../test/helpers/envoy-mesh.js';
import type { RunningEnvoy } from '../../test/helpers/envoy.js';
import { report } from './stats.js';
import { envoyConcurrency, listenerPorts, memoryMiB, percentiles, startFastApp, startSidecar } from './sidecar-lib.js';

const SIZES = (process.env.BENCH_FANOUT_SIZES ?? '10,30').split(',').map(Number);
const CHANGES = Number(process.env.BENCH_FANOUT_CHANGES ?? 20);
const round = (x: number) => Math.round(x * 1000) / 1000;

const [a1, a2] = await Promise.all([startFastApp('v1'), startFastApp('v2')]);
const instances = [
  { service: 'api', version: 'v1', node: 'elsewhere', address: '127.0.0.1', port: a1.port },
  { service: 'api', version: 'v2', node: 'elsewhere', address: '127.0.0.1', port: a2.port },
];
const client = (i: number) => `c${String(i + 1).padStart(2, '0')}`;

// `n` workloads on this node that all call api through their own sidecar; api v1/v2 live elsewhere.
const yaml = (n: number, w1: number) => [
  ...Array.from({ length: n }, (_, i) => `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: ${client(i)} }
spec:
  port: ${30000 + i}
  versions: { v1: { image: ${client(i)}:1, nodes: [local] } }
  upstreams: [{ service: api, localPort: ${localPort(i)} }]
`),
  `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: api }
spec:
  port: ${a1.port}
  versions:
    v1: { image: api:1, nodes: [elsewhere] }
    v2: { image: api:2, port: ${a2.port}, nodes: [elsewhere] }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api }
spec:
  hosts: [api]
  http:
    - route:
        - { destination: { host: api, subset: v1 }, weight: ${w1} }
        - { destination: { host: api, subset: v2 }, weight: ${100 - w1} }
`,
].join('---\n');

const mesh = await startEnvoyMesh();
const concurrency = envoyConcurrency();
// Below the ephemeral range (see listenerPorts); clear of the apps' and the clients' own `port` values.
const localPorts = await listenerPorts(Math.max(...SIZES), [mesh.xdsPort, a1.port, a2.port, ...Array.from({ length: 100 }, (_, i) => 30000 + i)]);
const localPort = (i: number) => localPorts[i]!;
const envoys: RunningEnvoy[] = [];
const ids = (n: number) => Array.from({ length: n }, (_, i) => xdsNodeId('sidecar', mesh.node, client(i), 'v1'));

// The same rule as the mesh's synced(): every type of the client's snapshot ACKed at the hash of all its resources.
const expected = (id: string) => {
  const snap = mesh.cache.getSnapshot(id)!;
  const out: Record<string, string> = {};
  for (const [type, pool] of Object.entries(snap.resources)) {
    const all = [...pool.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    if (all.length === 0 && type !== TYPE.listener && type !== TYPE.cluster) continue;
    out[type] = contentHash(all.map((r) => [r.name, r.version]));
  }
  return out;
};

/** Applies the change and resolves with ms from the start of apply() to the last of `n` sidecars ACKing it. */
function change(n: number, w1: number): Promise<{ ms: number; applyMs: number }> {
  return new Promise((resolve, reject) => {
    const want = new Map<string, Record<string, string>>();
    const waiting = new Set(ids(n));
    const check = (id: string) => {
      const c = mesh.ads.clients()[id];
      const nack = c && Object.values(c.nacked).find(Boolean);
      if (nack) return reject(new Error(`${id} NACKed: ${nack.message}`));
      if (c?.connected && Object.entries(want.get(id)!).every(([type, v]) => c.acked[type as keyof typeof c.acked] === v)) waiting.delete(id);
    };
    const t0 = performance.now();
    let applyMs = 0;
    const timer = setTimeout(() => (off(), reject(new Error(`${waiting.size} of ${n} sidecars did not ACK within 15 s`))), 15_000);
    const finish = () => {
      if (waiting.size > 0) return;
      const ms = performance.now() - t0;
      clearTimeout(timer);
      off();
      resolve({ ms, applyMs });
    };
    const off = mesh.ads.on((e) => {
      if (applyMs === 0 || (e.kind !== 'ack' && e.kind !== 'nack') || !waiting.has(e.nodeId)) return;
      check(e.nodeId);
      finish();
    });
    mesh.apply(yaml(n, w1), instances);
    applyMs = performance.now() - t0;
    // ACKs only arrive on a later turn of the event loop, so none is missed while the targets are computed.
    for (const id of waiting) want.set(id, expected(id));
    for (const id of [...waiting]) check(id);
    finish();
  });
}

for (const n of SIZES) {
  mesh.apply(yaml(n, 100), instances);
  const t0 = performance.now();
  const already = envoys.length;
  for (let i = envoys.length; i < n; i++) envoys.push(await startSidecar(mesh, `${client(i)}-v1`, concurrency.args, localPorts));
  const startMs = performance.now() - t0;
  for (let i = 0; i < n; i++) await mesh.synced(`${client(i)}-v1`);
  await new Promise((r) => setTimeout(r, 1_000));
  const mem = envoys.slice(0, n).map((e) => memoryMiB(e.process.pid!));
  const sum = (f: (m: (typeof mem)[number]) => number) => round(mem.reduce((a, m) => a + f(m), 0));
  const samples: number[] = [];
  const applies: number[] = [];
  for (let c = -2; c < CHANGES; c++) {
    const r = await change(n, c % 2 === 0 ? 0 : 100);
    if (c >= 0) samples.push(r.ms), applies.push(r.applyMs);
    await new Promise((res) => setTimeout(res, 200));
  }
  const s = percentiles(samples);
  report(`one route change fanned out to ${n} real Envoy sidecars on one ADS server → all ACKed`, 'ms', samples, {
    p90: s.p90, applyP50: percentiles(applies).p50, applyNote: 'includes render + strict check + publish of every snapshot (in the measured time)',
    envoyConcurrency: concurrency.label, envoysMiB: { rssSum: sum((m) => m.rss), pssSum: sum((m) => m.pss), anonSum: sum((m) => m.anon), rssEachP50: percentiles(mem.map((m) => m.rss)).p50 },
    startedNow: n - already, secondsToStartThem: round(startMs / 1000), envoy: '1.40.0',
  });
}

await Promise.all(envoys.map((e) => e.stop()));
await mesh.stop();
for (const a of [a1, a2]) await a.stop();
