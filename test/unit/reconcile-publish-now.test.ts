// publishNow(): while a pass is busy with compose, a registry or route change is published at once, not after
// compose returns; between passes it does nothing (the next pass publishes first thing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Reconciler } from '../../agent/reconcile.js';
import type { DesiredEntry, PrefixSnapshot, DesiredSource } from '../../agent/adapters/etcd/etcd-source.js';
import { StateStore } from '../../agent/adapters/files/state-store.js';
import { loadTemplates } from '../../agent/adapters/files/templates.js';
import { parseYamlDocuments } from '../../agent/core/documents/parse-yaml.js';
import { toEtcdEntry } from '../../agent/core/documents/etcd-docs.js';
import { type Clock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import type { Instance } from '../../agent/core/model/model.js';
import { FakeDockerObserver, RecordingComposeRunner } from '../helpers/docker-fakes.js';
import { tempDir } from '../helpers/paths.js';

const MESH = `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: web }
spec:
  port: 18080
  versions: { v1: { image: web:1, nodes: [node-a] } }
  upstreams: [{ service: api, mode: proxy, localPort: 18180 }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: api }
spec:
  port: 18081
  versions: { v1: { image: api:1, nodes: [node-b] } }
`;

class Source implements DesiredSource {
  state = 'watching' as const;
  snap: PrefixSnapshot | undefined;
  current() {
    return this.snap;
  }
  load(yaml: string) {
    const entries = new Map<string, DesiredEntry>();
    let rev = 0;
    for (const raw of parseYamlDocuments('t', yaml, [])) {
      const e = toEtcdEntry('/meshlet', raw);
      entries.set(e.key, { key: e.key, value: e.value, modRevision: ++rev });
    }
    this.snap = { revision: rev, entries };
  }
}

const endpointsOfWeb = (published: unknown[]) => published.map((snaps) => {
  const web = (snaps as Record<string, { endpoints: { endpoints?: { lb_endpoints: { endpoint: { address: { socket_address: { port_value: number } } } }[] }[] }[] }>)['sidecar~node-a~web-v1']!;
  return web.endpoints.flatMap((cla) => (cla.endpoints ?? []).flatMap((l) => l.lb_endpoints.map((e) => e.endpoint.address.socket_address.port_value)));
});

test('a registry change during a compose run is published before compose returns; none between passes', async () => {
  const source = new Source();
  source.load(MESH);
  let instances: Instance[] = [{ service: 'api', version: 'v1', node: 'node-b', address: '10.0.0.2', port: 18081 }];
  const docker = new FakeDockerObserver();
  for (const img of ['web:1', 'envoy:test']) docker.images.add(img);
  const compose = new RecordingComposeRunner();
  let release!: () => void;
  const upStarted = new Promise<void>((resolve) => {
    compose.onUp = () => {
      resolve();
      return new Promise<void>((r) => (release = r));
    };
  });
  const published: unknown[] = [];
  const templates = await loadTemplates();
  const clock: Clock = { now: () => 0, sleep: () => new Promise(() => {}) };
  const stateDir = tempDir('meshlet-publish-now-');
  const r = new Reconciler(
    { node: 'node-a', project: 'meshlet-node-a', stateDir, prefix: '/meshlet', advertiseAddress: '127.0.0.1', sidecarImage: 'envoy:test', xdsPort: 15010, adminPorts: { from: 15100, to: 15199 } },
    { source, docker, compose, templates: async () => templates, state: new StateStore(stateDir), instances: () => instances, publish: (plan) => void published.push(plan.render.snapshots), report: async () => {}, clock, log: silentLogger },
  );
  await r.init();

  await r.publishNow();
  assert.equal(published.length, 0, 'no pass running: nothing published ahead');
  const pass = r.pass(['test']);
  await upStarted;
  assert.deepEqual(endpointsOfWeb(published), [[18081]], 'the pass published before compose');

  instances = [{ service: 'api', version: 'v1', node: 'node-b', address: '10.0.0.2', port: 18082 }];
  await r.publishNow();
  assert.deepEqual(endpointsOfWeb(published), [[18081], [18082]], 'published while compose still runs');
  assert.deepEqual(compose.ops.filter((o) => o.startsWith('up')).length, 1);
  release();
  await pass;
});
