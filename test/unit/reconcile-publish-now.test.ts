// publishNow(): while a pass is busy with compose, a registry or route change is published at once, not after
// compose returns; between passes it does nothing (the next pass publishes first thing).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Reconciler } from '../../agent/reconcile.js';
import { join } from 'node:path';
import { COMPOSE_PATH } from '../../agent/reconcile.js';
import { loadTemplates } from '../../agent/adapters/files/templates.js';
import { type Clock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import type { Instance } from '../../agent/core/model/model.js';
import { FakeDockerObserver, RecordingComposeRunner } from '../helpers/docker-fakes.js';
import { FakeSource, RecordingStateStore } from '../helpers/loop-fakes.js';
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

const endpointsOfWeb = (published: unknown[]) => published.map((snaps) => {
  const web = (snaps as Record<string, { endpoints: { endpoints?: { lb_endpoints: { endpoint: { address: { socket_address: { port_value: number } } } }[] }[] }[] }>)['sidecar~node-a~web-v1']!;
  return web.endpoints.flatMap((cla) => (cla.endpoints ?? []).flatMap((l) => l.lb_endpoints.map((e) => e.endpoint.address.socket_address.port_value)));
});

test('a registry change during a compose run is published before compose returns; none between passes', async () => {
  const source = new FakeSource();
  source.load(MESH);
  const rev = source.revision;
  const ops: string[] = []; // one ordered log: Docker, compose, publishing, state.json, the node status
  let instances: Instance[] = [{ service: 'api', version: 'v1', node: 'node-b', address: '10.0.0.2', port: 18081 }];
  const docker = new FakeDockerObserver(ops);
  for (const img of ['web:1', 'envoy:test']) docker.images.add(img);
  const compose = new RecordingComposeRunner('v1', ops);
  let release!: () => void;
  const upStarted = new Promise<void>((resolve) => {
    compose.onUp = (project) => {
      resolve();
      return new Promise<void>((r) => (release = r)).then(() => docker.setContainers(project, ['web-v1', 'web-v1-envoy'].map((name) => ({ id: name, name, composeService: name, state: 'running', image: '-' }))));
    };
  });
  const published: unknown[] = [];
  const templates = await loadTemplates();
  const clock: Clock = { now: () => 0, sleep: () => new Promise(() => {}) };
  const stateDir = tempDir('meshlet-publish-now-');
  const r = new Reconciler(
    { node: 'node-a', project: 'meshlet-node-a', stateDir, prefix: '/meshlet', advertiseAddress: '127.0.0.1', sidecarImage: 'envoy:test', xdsPort: 15010, adminPorts: { from: 15100, to: 15199 } },
    {
      source, docker, compose, templates: async () => templates, state: new RecordingStateStore(stateDir, ops), instances: () => instances, clock, log: silentLogger,
      publish: (rendered, wanted) => {
        ops.push(`publish ${wanted.revision}`);
        published.push(rendered.render.snapshots);
      },
      report: async (x) => void ops.push(`report ${x.desiredRevision}`),
    },
  );
  await r.init();
  ops.length = 0; // init lists the project once, for the admin ports its sidecars use

  await r.publishNow();
  assert.equal(published.length, 0, 'no pass running: nothing published ahead');
  const pass = r.pass(['test']);
  await upStarted;
  assert.deepEqual(endpointsOfWeb(published), [[18081]], 'the pass published before compose');

  instances = [{ service: 'api', version: 'v1', node: 'node-b', address: '10.0.0.2', port: 18082 }];
  await r.publishNow();
  assert.deepEqual(endpointsOfWeb(published), [[18081], [18082]], 'published while compose still runs');
  assert.deepEqual(ops.filter((o) => o.startsWith('up')).length, 1);
  const file = join(stateDir, COMPOSE_PATH);
  const P = 'meshlet-node-a';
  assert.deepEqual(ops, [`list ${P}`, `publish ${rev}`, `missingImages envoy:test,web:1`, `check ${P} ${file}`, `up ${P} ${file}`, `publish ${rev}`], 'the second publish while up has not returned');
  release();
  await pass;
  assert.deepEqual(ops.slice(6), [`list ${P}`, `save applied ${rev}`, `report ${rev}`]);
  await r.publishNow();
  assert.equal(published.length, 2, 'the pass ended: nothing published ahead');
});
