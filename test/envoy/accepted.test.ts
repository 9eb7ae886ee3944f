// Everything meshlet emits is accepted by Envoy itself: every bootstrap it renders passes
// `envoy --mode validate`, and every sidecar's xDS resources are ACKed by a running Envoy, which then
// holds exactly those listeners, routes, clusters and endpoints. The strict proto check stays the fast
// offline check; this is the ground truth it must agree with.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import type { Json } from '../../agent/core/xds/envoy-types.js';
import type { XdsResources } from '../../agent/core/xds/build-xds.js';
import { SnapshotCache } from '../../agent/xds/snapshot-cache.js';
import { AdsServer } from '../../agent/xds/ads-server.js';
import { XDS_CLUSTER } from '../../agent/core/render/render-bootstrap.js';
import { ROOT, tempDir } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/etcd.js';
import { dumpedNames, startEnvoy, validateBootstrap } from '../helpers/envoy.js';
import { waitFor } from '../helpers/wait.js';

process.chdir(ROOT);

// Every desired state the repo ships, rendered for every node it places work on.
const RENDERS: { name: string; files: string[]; instances?: string; nodes: string[] }[] = [
  { name: 'bookinfo', files: ['fixtures/bookinfo/services.yaml', 'fixtures/bookinfo/routes.yaml'], instances: 'fixtures/bookinfo/instances.yaml', nodes: ['node-a', 'node-b', 'node-c'] },
  { name: 'local', files: ['fixtures/local/mesh.yaml'], nodes: ['local'] },
  // Every http match and route action of issue 14 (redirects, direct responses, CORS, delegation, ...).
  { name: 'http-dsl', files: ['fixtures/http-dsl/mesh.yaml'], instances: 'fixtures/http-dsl/instances.yaml', nodes: ['node-a'] },
];

interface Rendered {
  dir: string;
  bootstraps: string[];
  snapshots: { nodeId: string; file: string }[];
}

const rendered = new Map<string, Rendered>();
async function render(name: string, files: string[], node: string, instances?: string): Promise<Rendered> {
  const key = `${name}/${node}`;
  if (rendered.has(key)) return rendered.get(key)!;
  const dir = join(tempDir('meshlet-accepted-'), 'out');
  const args = ['render', ...files.flatMap((f) => ['-f', f]), ...(instances ? ['--instances', instances] : []), '--node', node, '--out', dir];
  const r = await runCli(args);
  assert.equal(r.code, 0, r.err);
  const envoyDir = join(dir, 'envoy');
  const xdsDir = join(dir, 'xds');
  const out: Rendered = {
    dir,
    bootstraps: readdirSync(envoyDir).sort().map((f) => join(envoyDir, f)),
    snapshots: readdirSync(xdsDir).filter((f) => f.startsWith('sidecar~')).sort().map((f) => ({ nodeId: f.replace(/\.json$/, ''), file: join(xdsDir, f) })),
  };
  rendered.set(key, out);
  return out;
}

for (const r of RENDERS) {
  for (const node of r.nodes) {
    test(`${r.name} on ${node}: every sidecar bootstrap passes envoy --mode validate`, async () => {
      const { bootstraps } = await render(r.name, r.files, node, r.instances);
      assert.ok(bootstraps.length > 0, 'the node runs sidecars');
      for (const file of bootstraps) {
        const v = await validateBootstrap(file);
        assert.ok(v.ok, `${file}: ${v.output}`);
        assert.match(v.output, /OK/);
      }
    });
  }
}

test('envoy --mode validate is a real check: it refuses a bootstrap meshlet must never write', async () => {
  const { bootstraps } = await render('bookinfo', RENDERS[0]!.files, 'node-a', RENDERS[0]!.instances);
  const doc = parse(readFileSync(bootstraps[0]!, 'utf8')) as Json;
  // The ADS cluster named by ads_config missing: Envoy refuses at start.
  (doc.static_resources as Json).clusters = [];
  const file = join(tempDir('meshlet-accepted-bad-'), 'bad.yaml');
  writeFileSync(file, stringify(doc));
  const v = await validateBootstrap(file);
  assert.equal(v.ok, false);
  assert.match(v.output, new RegExp(XDS_CLUSTER));
});

const cache = new SnapshotCache();
const ads = new AdsServer({ cache });
const xdsPort = await ads.start(0);
after(() => ads.stop());

for (const r of RENDERS) {
  for (const node of r.nodes) {
    test(`${r.name} on ${node}: a running Envoy ACKs every sidecar's resources and holds exactly them`, async () => {
      const { dir, snapshots } = await render(r.name, r.files, node, r.instances);
      assert.ok(snapshots.length > 0);
      for (const { nodeId, file } of snapshots) {
        const snap = JSON.parse(readFileSync(file, 'utf8')) as XdsResources & { node_id: string };
        const res: XdsResources = { listeners: snap.listeners, routes: snap.routes, clusters: snap.clusters, endpoints: snap.endpoints };
        const set = cache.setSnapshot(nodeId, res);
        assert.ok(set.ok, JSON.stringify(set));
        // The bootstrap meshlet rendered for this sidecar, pointed at this test's ADS server and a free admin port.
        const workload = nodeId.split('~')[2]!;
        const boot = parse(readFileSync(join(dir, 'envoy', `${workload}.yaml`), 'utf8')) as Json;
        const adminPort = await freePort();
        (boot.admin as Json) = { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } };
        const xds = ((boot.static_resources as Json).clusters as Json[]).find((c) => c.name === XDS_CLUSTER)!;
        (xds.load_assignment as Json).endpoints = [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: xdsPort } } } }] }];
        const envoy = await startEnvoy(boot, { adminPort });
        try {
          const types = ['Cluster', 'ClusterLoadAssignment', 'Listener', 'RouteConfiguration'];
          await waitFor(`${nodeId} to ACK every type`, () => {
            const c = ads.clients()[nodeId];
            const nack = c && Object.entries(c.nacked).find(([, n]) => n);
            if (nack) throw new Error(`${nodeId} NACKed ${nack[0]}: ${nack[1]!.message}`);
            const acked = Object.keys(c?.acked ?? {}).map((t) => t.split('.').pop());
            // Routes and endpoints are asked for by name: a sidecar with none asks for none.
            const need = types.filter((t) => (t === 'RouteConfiguration' ? res.routes.length > 0 : t === 'ClusterLoadAssignment' ? res.endpoints.length > 0 : true));
            return need.every((t) => acked.includes(t));
          }, 20_000, 20);
          const dump = await envoy.configDump();
          const names = (list: Json[], key = 'name') => list.map((x) => String(x[key])).sort();
          assert.deepEqual(dumpedNames(dump, 'listeners'), names(res.listeners), `${nodeId} listeners`);
          assert.deepEqual(dumpedNames(dump, 'routes'), names(res.routes), `${nodeId} routes`);
          assert.deepEqual(dumpedNames(dump, 'clusters'), names(res.clusters), `${nodeId} clusters`);
          // Envoy holds endpoints per cluster: compare addresses, which it only knows once it took the assignment.
          const held = await envoy.endpoints();
          for (const cla of res.endpoints) {
            const want = ((cla.endpoints ?? []) as Json[]).flatMap((l) => (l.lb_endpoints as Json[]).map((e) => {
              const sa = ((e.endpoint as Json).address as Json).socket_address as Json;
              return `${sa.address}:${sa.port_value}`;
            })).sort();
            assert.deepEqual(held[String(cla.cluster_name)] ?? [], want, `${nodeId} endpoints of ${cla.cluster_name}`);
          }
        } finally {
          await envoy.stop();
          cache.deleteSnapshot(nodeId);
        }
      }
    });
  }
}
