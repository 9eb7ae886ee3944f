// xDS: route change → first call on the new version (grpc-js-xds), one change fanned out to 200 ADS
// streams until all ACK, and snapshot build + validation for a node with ~40 sidecars.
import * as grpcXds from '@grpc/grpc-js-xds';
import { TYPE } from '../../agent/core/xds/envoy-types.js';
import { loadDesired } from '../../agent/core/documents/desired.js';
import { renderNode } from '../../agent/core/render/render-node.js';
import { workloadsOn } from '../../agent/core/render/placement.js';
import { DEFAULT_ADMIN_PORTS } from '../../agent/core/render/admin-ports.js';
import { loadTemplates } from '../../agent/adapters/files/templates.js';
import { SnapshotCache } from '../../agent/xds/snapshot-cache.js';
import { AdsServer } from '../../agent/xds/ads-server.js';
import { callOnce, echoClient, greeterResources, startEcho, xdsBootstrap, type RouteSpec } from '../../test/helpers/grpc-mesh.js';
import { RawAdsClient } from '../../test/helpers/raw-ads-client.js';
import { bigMesh } from './big-mesh.js';
import { report, time } from './stats.js';

const FLIPS = Number(process.env.BENCH_XDS_FLIPS ?? 30);
const STREAMS = Number(process.env.BENCH_XDS_STREAMS ?? 200);
const FANOUT_CHANGES = Number(process.env.BENCH_XDS_CHANGES ?? 20);
const BUILD_RUNS = Number(process.env.BENCH_XDS_BUILD_RUNS ?? 50);

const now = () => performance.now();

// (a) A connected grpc-js-xds client calling in a tight loop; time from setSnapshot to the first reply from the new version.
async function routeChangeToFirstCall(): Promise<void> {
  const cache = new SnapshotCache();
  const server = new AdsServer({ cache });
  const port = await server.start(0);
  const [v1, v2] = await Promise.all([startEcho('v1', 'v1'), startEcho('v2', 'v2')]);
  const node = 'proxyless~bench~client-v1';
  process.env.GRPC_XDS_BOOTSTRAP_CONFIG = xdsBootstrap(port, node);
  grpcXds.register();
  const client = echoClient('xds:///greeter');
  const measure = async (name: string, specs: [RouteSpec, string][]) => {
    const samples: number[] = [];
    for (let i = -2; i < FLIPS; i++) {
      const [spec, want] = specs[(i + 2) % 2]!;
      const t0 = now();
      const set = cache.setSnapshot(node, greeterResources(spec, [v1, v2]));
      if (!set.ok) throw new Error(set.errors.join('; '));
      for (let calls = 0; ; calls++) {
        const r = await callOnce(client);
        if (r.ok && r.reply.version === want) break;
        if (now() - t0 > 10_000) throw new Error(`${name}: no call on ${want} after 10 s`);
      }
      if (i >= 0) samples.push(now() - t0); // the first two flips warm up
    }
    report(name, 'ms', samples, { flips: samples.length });
  };
  // As asked: 100/0 ↔ 0/100. meshlet leaves weight-0 destinations out, so each flip also swaps the cluster (CDS + EDS round trips).
  await measure('xds_route_change_to_first_call_100_0_flip', [
    [{ weights: { v1: 100 } }, 'v1'],
    [{ weights: { v2: 100 } }, 'v2'],
  ]);
  // Both clusters stay referenced (a header route keeps v2 in use): the flip is a RouteConfiguration change alone.
  await measure('xds_route_change_to_first_call_rds_only', [
    [{ weights: { v1: 100 }, jason: 'v2' }, 'v1'],
    [{ weights: { v2: 100 }, jason: 'v1' }, 'v2'],
  ]);
  client.close();
  await server.stop();
  v1.stop();
  v2.stop();
}

// (b) STREAMS raw ADS clients (distinct node ids, own connections) that ACK everything; one route change for all.
async function fanOut(): Promise<void> {
  const cache = new SnapshotCache();
  const server = new AdsServer({ cache });
  const port = await server.start(0);
  const [v1, v2] = await Promise.all([startEcho('v1', 'v1'), startEcho('v2', 'v2')]);
  const ids = Array.from({ length: STREAMS }, (_, i) => `proxyless~bench~app${String(i).padStart(3, '0')}-v1`);
  const specs: RouteSpec[] = [{ weights: { v1: 90, v2: 10 } }, { weights: { v1: 10, v2: 90 } }];
  const setAll = (spec: RouteSpec) => {
    const res = greeterResources(spec, [v1, v2]);
    for (const id of ids) if (!cache.setSnapshot(id, res).ok) throw new Error('snapshot refused');
  };
  setAll(specs[0]!);
  const ackedRoute = new Map<string, string>();
  let waiting: { before: Map<string, string>; remaining: Set<string>; done: () => void } | undefined;
  server.on((e) => {
    if (e.kind !== 'ack' || e.typeUrl !== TYPE.route) return;
    ackedRoute.set(e.nodeId, e.version);
    if (waiting && e.version !== waiting.before.get(e.nodeId) && waiting.remaining.delete(e.nodeId) && waiting.remaining.size === 0) waiting.done();
  });
  const names: Record<string, string[]> = { [TYPE.listener]: ['greeter'], [TYPE.route]: ['greeter'], [TYPE.cluster]: ['greeter|v1', 'greeter|v2'], [TYPE.endpoint]: ['greeter|v1', 'greeter|v2'] };
  const clients = ids.map((id) => {
    const c = new RawAdsClient(port, id, { ownConnection: true });
    c.onResponse = (r) => c.ack(r, names[r.type_url]);
    for (const type of [TYPE.listener, TYPE.route, TYPE.cluster, TYPE.endpoint]) c.send({ type_url: type, resource_names: names[type] });
    return c;
  });
  const start = now();
  while (ackedRoute.size < STREAMS) {
    if (now() - start > 30_000) throw new Error(`only ${ackedRoute.size} of ${STREAMS} streams ACKed the first routes`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const samples: number[] = [];
  const setTimes: number[] = [];
  for (let i = 1; i <= FANOUT_CHANGES; i++) {
    const allAcked = new Promise<void>((done) => (waiting = { before: new Map(ackedRoute), remaining: new Set(ids), done }));
    const t0 = now();
    setAll(specs[i % 2]!);
    setTimes.push(now() - t0);
    await allAcked;
    samples.push(now() - t0);
    await new Promise((r) => setTimeout(r, 50));
  }
  report('xds_route_change_fanout_all_acked', 'ms', samples, { streams: STREAMS, setSnapshotAllMsP50: Math.round(setTimes.sort((a, b) => a - b)[setTimes.length >> 1]! * 1000) / 1000 });
  const violations = clients.flatMap((c) => c.violations);
  if (violations.length > 0) throw new Error(`protocol invariants broken: ${violations.slice(0, 3).join('; ')}`);
  for (const c of clients) c.close();
  await server.stop();
  v1.stop();
  v2.stop();
}

// (c) renderNode for a node with ~40 workloads, then setSnapshot (consistency + strict validation + hashing) for each of its clients.
async function buildAndValidate(): Promise<void> {
  const mesh = bigMesh();
  const templates = await loadTemplates();
  const node = 'node-07';
  const opts = {
    node, advertiseAddress: '127.0.0.1', prefix: '/meshlet', sidecarImage: 'envoyproxy/envoy:v1.32.3',
    paths: { envoyDir: '../envoy', xdsDir: '../xds' }, xdsPort: 15010, adminPorts: DEFAULT_ADMIN_PORTS, previousAdminPorts: {},
  };
  const { desired, issues } = loadDesired([{ source: 'big.yaml', text: mesh.yaml }], { xdsPort: 15010 });
  if (issues.length > 0) throw new Error(issues[0]!.message);
  const workloads = workloadsOn(desired, node).length;
  const parts = { render: [] as number[], set: [] as number[] };
  const setAll = (cache: SnapshotCache, instances = mesh.instances) => {
    const t0 = now();
    const r = renderNode(desired, instances, templates, opts);
    const t1 = now();
    for (const [id, res] of Object.entries(r.snapshots)) {
      const out = cache.setSnapshot(id, res);
      if (!out.ok) throw new Error(`${id}: ${out.errors[0]}`);
    }
    parts.render.push(t1 - t0);
    parts.set.push(now() - t1);
    return Object.keys(r.snapshots).length;
  };
  for (let i = 0; i < 5; i++) setAll(new SnapshotCache()); // load protos, warm the JIT
  const median = (xs: number[]) => Math.round([...xs].sort((a, b) => a - b)[xs.length >> 1]! * 1000) / 1000;
  const runs = { cold: [] as number[], warm: [] as number[] };
  const split = { cold: { render: [] as number[], set: [] as number[] }, warm: { render: [] as number[], set: [] as number[] } };
  let clients = 0;
  const shared = new SnapshotCache();
  setAll(shared);
  for (let i = 0; i < BUILD_RUNS; i++) {
    // Cold: a fresh cache validates every resource (each distinct content once).
    parts.render = split.cold.render;
    parts.set = split.cold.set;
    const [a, n] = await time(() => setAll(new SnapshotCache()));
    runs.cold.push(a);
    clients = n;
    // Warm: the agent's steady state, one instance moved; only changed resources are validated again.
    parts.render = split.warm.render;
    parts.set = split.warm.set;
    const moved = mesh.instances.map((x, j) => (j === i % mesh.instances.length ? { ...x, port: x.port + 1 + (i % 2) } : x));
    const [b] = await time(() => setAll(shared, moved));
    runs.warm.push(b);
  }
  for (const kind of ['cold', 'warm'] as const) {
    report(`xds_build_validate_set_node_40_workloads_${kind}`, 'ms', runs[kind], { workloads, clients, renderNodeMsP50: median(split[kind].render), setSnapshotsMsP50: median(split[kind].set) });
  }
}

await routeChangeToFirstCall();
await fanOut();
await buildAndValidate();
// grpc-js-xds leaves load-balancer timers behind after a channel closes; don't wait for them.
process.exit(0);
