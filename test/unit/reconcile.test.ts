// The loop with recording fakes: which compose and Docker operations each pass performs, in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { Reconciler, COMPOSE_PATH, LAST_GOOD_PATH, type PassReport } from '../../agent/reconcile.js';
import type { DesiredEntry, PrefixSnapshot, DesiredSource } from '../../agent/adapters/etcd/etcd-source.js';
import { StateStore } from '../../agent/adapters/files/state-store.js';
import { loadTemplates } from '../../agent/adapters/files/templates.js';
import { parseYamlDocuments } from '../../agent/core/documents/parse-yaml.js';
import { toEtcdEntry } from '../../agent/core/documents/etcd-docs.js';
import { contentHash } from '../../agent/core/model/canonical.js';
import { type Clock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import { ExternalError } from '../../agent/core/errors.js';
import type { ContainerInfo } from '../../agent/adapters/docker/docker-observer.js';
import { FakeDockerObserver, RecordingComposeRunner } from '../helpers/docker-fakes.js';
import { fixture, tempDir } from '../helpers/paths.js';

const PREFIX = '/meshlet';
const PROJECT = 'meshlet-node-a';

class FakeSource implements DesiredSource {
  state = 'watching' as const;
  snap: PrefixSnapshot | undefined;
  revision = 0;
  entries = new Map<string, DesiredEntry>();
  current() {
    return this.snap;
  }
  put(key: string, value: string) {
    this.revision++;
    this.entries.set(key, { key, value, modRevision: this.revision });
    this.snap = { revision: this.revision, entries: new Map(this.entries) };
  }
  delete(key: string) {
    this.revision++;
    this.entries.delete(key);
    this.snap = { revision: this.revision, entries: new Map(this.entries) };
  }
  load(yaml: string) {
    for (const raw of parseYamlDocuments('fixture', yaml, [])) {
      const e = toEtcdEntry(PREFIX, raw);
      this.put(e.key, e.value);
    }
  }
}

const neverClock: Clock = { now: () => 0, sleep: () => new Promise(() => {}) };

async function setup() {
  const stateDir = tempDir('meshlet-loop-');
  const source = new FakeSource();
  const docker = new FakeDockerObserver();
  const compose = new RecordingComposeRunner();
  const reports: PassReport[] = [];
  // Compose "runs" the file: one running container per compose service, its config hash from the service's content.
  compose.onUp = (project, file) => {
    const doc = parse(readFileSync(file, 'utf8')) as { services: Record<string, { image: string; labels: Record<string, string> }> };
    const containers: ContainerInfo[] = Object.entries(doc.services).map(([name, svc]) => ({
      id: `id-${name}-${contentHash(svc)}`,
      name,
      composeService: name,
      state: 'running',
      image: svc.image,
      configHash: contentHash(svc),
    }));
    docker.setContainers(project, containers);
  };
  const templates = await loadTemplates();
  const r = new Reconciler(
    { node: 'node-a', project: PROJECT, stateDir, prefix: PREFIX, advertiseAddress: '127.0.0.1', sidecarImage: 'envoyproxy/envoy:v1.32.3', xdsPort: 15010, adminPorts: { from: 15100, to: 15199 } },
    { source, docker, compose, templates: async () => templates, state: new StateStore(stateDir), report: async (x) => void reports.push(x), clock: neverClock, log: silentLogger },
  );
  await r.init();
  const mesh = readFileSync(fixture('bookinfo', 'services.yaml'), 'utf8') + '\n---\n' + readFileSync(fixture('bookinfo', 'routes.yaml'), 'utf8');
  for (const img of ['registry.local/bookinfo/productpage:1.0', 'registry.local/bookinfo/reviews:1.0', 'registry.local/bookinfo/ratings:1.0', 'envoyproxy/envoy:v1.32.3']) docker.images.add(img);
  return { r, source, docker, compose, reports, stateDir, mesh };
}

test('no desired state yet: a pass touches nothing', async () => {
  const { r, docker, compose } = await setup();
  assert.equal(await r.pass(), undefined);
  assert.deepEqual(compose.ops, []);
  assert.deepEqual(docker.ops, []);
});

test('first pass: list, check images, check the file, up, confirm; the same state again runs nothing', async () => {
  const { r, source, docker, compose, stateDir, mesh, reports } = await setup();
  source.load(mesh);
  await r.pass();
  const file = join(stateDir, COMPOSE_PATH);
  assert.deepEqual(compose.ops, [`check ${PROJECT} ${file}`, `up ${PROJECT} ${file}`]);
  assert.deepEqual(docker.ops, [`list ${PROJECT}`, `missingImages envoyproxy/envoy:v1.32.3,registry.local/bookinfo/productpage:1.0,registry.local/bookinfo/ratings:1.0,registry.local/bookinfo/reviews:1.0`, `list ${PROJECT}`]);
  assert.equal(readFileSync(join(stateDir, LAST_GOOD_PATH), 'utf8'), readFileSync(file, 'utf8'));
  assert.equal(reports.at(-1)!.lastApply!.ok, true);
  assert.equal(reports.at(-1)!.appliedRevision, source.revision);

  compose.ops.length = 0;
  docker.ops.length = 0;
  await r.pass();
  await r.pass();
  assert.deepEqual(compose.ops, []);
  assert.deepEqual(docker.ops, [`list ${PROJECT}`, `list ${PROJECT}`]);
});

test('a change to another node\'s workload neither runs compose nor rewrites the compose file', async () => {
  const { r, source, compose, stateDir, mesh } = await setup();
  source.load(mesh);
  await r.pass();
  const before = readFileSync(join(stateDir, COMPOSE_PATH), 'utf8');
  compose.ops.length = 0;
  source.load(mesh.replace('STAR_COLOR: black', 'STAR_COLOR: blue')); // reviews v2 runs on node-b
  await r.pass();
  assert.deepEqual(compose.ops, []);
  assert.equal(readFileSync(join(stateDir, COMPOSE_PATH), 'utf8'), before);
});

test('a change to this node\'s project runs up once (no new check while templates are unchanged)', async () => {
  const { r, source, compose, stateDir, mesh } = await setup();
  source.load(mesh);
  await r.pass();
  compose.ops.length = 0;
  source.load(mesh.replace('LOG_LEVEL: info', 'LOG_LEVEL: debug'));
  await r.pass();
  assert.deepEqual(compose.ops, [`up ${PROJECT} ${join(stateDir, COMPOSE_PATH)}`]);
  assert.match(readFileSync(join(stateDir, COMPOSE_PATH), 'utf8'), /LOG_LEVEL: debug/);
});

test('drift: a stopped, a missing or a foreign container makes the next pass run up', async () => {
  const { r, source, docker, compose, mesh } = await setup();
  source.load(mesh);
  await r.pass();
  const list = await docker.list(PROJECT);
  for (const [name, change] of [
    ['stopped', () => docker.updateContainer(PROJECT, list[0]!.id, { state: 'exited' })],
    ['removed', () => docker.setContainers(PROJECT, list.slice(1))],
    ['changed by hand', () => docker.updateContainer(PROJECT, list[0]!.id, { configHash: 'edited' })],
    ['foreign', () => docker.setContainers(PROJECT, [...list, { ...list[0]!, id: 'x', composeService: 'intruder' }])],
  ] as const) {
    await r.pass(); // converge (the fake compose resets containers on up)
    compose.ops.length = 0;
    change();
    await r.pass();
    assert.equal(compose.ops.filter((o) => o.startsWith('up')).length, 1, name);
  }
});

test('compose failure: the error is reported, the last-good file and applied state stay, the next pass tries again', async () => {
  const { r, source, compose, stateDir, mesh, reports } = await setup();
  source.load(mesh);
  await r.pass();
  const lastGood = readFileSync(join(stateDir, LAST_GOOD_PATH), 'utf8');
  const applied = r.state.appliedHash;
  compose.failNext('up', new ExternalError('compose exploded'));
  source.load(mesh.replace('LOG_LEVEL: info', 'LOG_LEVEL: debug'));
  await r.pass();
  assert.equal(reports.at(-1)!.lastApply!.ok, false);
  assert.match(reports.at(-1)!.lastApply!.message!, /compose exploded/);
  assert.equal(readFileSync(join(stateDir, LAST_GOOD_PATH), 'utf8'), lastGood);
  assert.equal(r.state.appliedHash, applied);
  compose.ops.length = 0;
  await r.pass();
  assert.equal(compose.ops.filter((o) => o.startsWith('up')).length, 1);
  assert.equal(reports.at(-1)!.lastApply!.ok, true);
});

test('a missing image stops the apply before compose runs, naming the image', async () => {
  const { r, source, docker, compose, mesh, reports } = await setup();
  docker.images.delete('registry.local/bookinfo/ratings:1.0');
  source.load(mesh);
  await r.pass();
  assert.deepEqual(compose.ops, []);
  assert.match(reports.at(-1)!.lastApply!.message!, /registry\.local\/bookinfo\/ratings:1\.0.*never pulls/);
});

test('a bad document is rejected alone and the rest is applied', async () => {
  const { r, source, compose, stateDir, mesh, reports } = await setup();
  source.load(mesh);
  source.put(`${PREFIX}/desired/services/broken`, '{not json');
  source.put(`${PREFIX}/desired/routes/other-name`, JSON.stringify({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'reviews2' }, spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] } }));
  await r.pass();
  const rejected = reports.at(-1)!.rejected;
  assert.deepEqual(rejected.map((i) => i.doc.source).sort(), [`${PREFIX}/desired/routes/other-name`, `${PREFIX}/desired/services/broken`]);
  assert.equal(compose.ops.filter((o) => o.startsWith('up')).length, 1);
  assert.match(readFileSync(join(stateDir, COMPOSE_PATH), 'utf8'), /productpage-v1:/);
});
