// The loop with recording fakes: which compose and Docker operations each pass performs, in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { Reconciler, COMPOSE_PATH, LAST_GOOD_PATH, type PassReport } from '../../agent/reconcile.js';
import { loadTemplates } from '../../agent/adapters/files/templates.js';
import { contentHash } from '../../agent/core/model/canonical.js';
import { type Clock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import { ExternalError } from '../../agent/core/errors.js';
import type { ContainerInfo } from '../../agent/adapters/docker/docker-observer.js';
import { FakeDockerObserver, RecordingComposeRunner } from '../helpers/docker-fakes.js';
import { FakeSource, RecordingStateStore } from '../helpers/loop-fakes.js';
import { fixture, tempDir } from '../helpers/paths.js';

const PREFIX = '/meshlet';
const PROJECT = 'meshlet-node-a';
const IMAGES = 'envoyproxy/envoy:v1.32.3,registry.local/bookinfo/productpage:1.0,registry.local/bookinfo/ratings:1.0,registry.local/bookinfo/reviews:1.0';

const neverClock: Clock = { now: () => 0, sleep: () => new Promise(() => {}) };

async function setup(extra: Partial<ConstructorParameters<typeof Reconciler>[1]> = {}) {
  const stateDir = tempDir('meshlet-loop-');
  const source = new FakeSource(PREFIX);
  // One ordered log of every call the loop makes: Docker, compose, xDS publishing, state.json, the node status.
  const ops: string[] = [];
  const docker = new FakeDockerObserver(ops);
  const compose = new RecordingComposeRunner('v1', ops);
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
    {
      source, docker, compose, templates: async () => templates, state: new RecordingStateStore(stateDir, ops), clock: neverClock, log: silentLogger,
      publish: (_rendered, wanted) => void ops.push(`publish ${wanted.revision}`),
      report: async (x) => {
        ops.push(`report ${x.desiredRevision}`);
        reports.push(x);
      },
      ...extra,
    },
  );
  await r.init();
  ops.length = 0; // init lists the project once, for the admin ports its sidecars use
  const mesh = readFileSync(fixture('bookinfo', 'services.yaml'), 'utf8') + '\n---\n' + readFileSync(fixture('bookinfo', 'routes.yaml'), 'utf8');
  for (const img of ['registry.local/bookinfo/productpage:1.0', 'registry.local/bookinfo/reviews:1.0', 'registry.local/bookinfo/ratings:1.0', 'envoyproxy/envoy:v1.32.3']) docker.images.add(img);
  return { r, source, docker, compose, ops, reports, stateDir, mesh };
}

test('no desired state yet: a pass touches nothing', async () => {
  const { r, ops } = await setup();
  assert.equal(await r.pass(), undefined);
  assert.deepEqual(ops, []);
});

test('first pass: list, publish, check images, check the file, up, confirm, save, report; the same state again runs nothing', async () => {
  const { r, source, ops, stateDir, mesh, reports } = await setup();
  source.load(mesh);
  const rev = source.revision;
  await r.pass();
  const file = join(stateDir, COMPOSE_PATH);
  assert.deepEqual(ops, [`list ${PROJECT}`, `publish ${rev}`, `missingImages ${IMAGES}`, `check ${PROJECT} ${file}`, `up ${PROJECT} ${file}`, `list ${PROJECT}`, `save applied ${rev}`, `report ${rev}`]);
  assert.equal(readFileSync(join(stateDir, LAST_GOOD_PATH), 'utf8'), readFileSync(file, 'utf8'));
  assert.equal(reports.at(-1)!.lastApply!.ok, true);
  assert.equal(reports.at(-1)!.appliedRevision, source.revision);

  ops.length = 0;
  await r.pass();
  await r.pass();
  const idle = [`list ${PROJECT}`, `publish ${rev}`, `save applied ${rev}`, `report ${rev}`];
  assert.deepEqual(ops, [...idle, ...idle]);
});

test('xDS is published while Docker has not answered the listing; nothing is applied until it does', async () => {
  const { r, source, docker, ops, stateDir, mesh } = await setup();
  source.load(mesh);
  const rev = source.revision;
  const answer = docker.holdLists();
  const pass = r.pass();
  for (let i = 0; i < 50; i++) await new Promise(setImmediate); // let the pass run as far as it can
  assert.deepEqual(ops, [`list ${PROJECT}`, `publish ${rev}`]);
  assert.equal(existsSync(join(stateDir, COMPOSE_PATH)), false, 'no file written');
  assert.equal(r.state.appliedRevision, undefined);
  await r.publishNow();
  assert.deepEqual(ops, [`list ${PROJECT}`, `publish ${rev}`, `publish ${rev}`], 'publishNow() publishes while the pass waits for Docker');

  answer();
  await pass;
  const file = join(stateDir, COMPOSE_PATH);
  assert.deepEqual(ops.slice(3), [`missingImages ${IMAGES}`, `check ${PROJECT} ${file}`, `up ${PROJECT} ${file}`, `list ${PROJECT}`, `save applied ${rev}`, `report ${rev}`]);
  assert.equal(r.state.appliedRevision, rev);
});

test('a Docker listing that fails ends the pass after publishing: nothing written, saved or reported (run() retries)', async () => {
  const { r, source, docker, ops, stateDir, mesh, reports } = await setup();
  source.load(mesh);
  docker.failNextList(new ExternalError('docker daemon went away'));
  await assert.rejects(r.pass(), /docker daemon went away/);
  assert.deepEqual(ops, [`list ${PROJECT}`, `publish ${source.revision}`]);
  assert.equal(existsSync(join(stateDir, COMPOSE_PATH)), false);
  assert.deepEqual(reports, []);
});

test('a change to another node\'s workload neither runs compose nor rewrites the compose file', async () => {
  const { r, source, ops, stateDir, mesh } = await setup();
  source.load(mesh);
  await r.pass();
  const before = readFileSync(join(stateDir, COMPOSE_PATH), 'utf8');
  ops.length = 0;
  source.load(mesh.replace('STAR_COLOR: black', 'STAR_COLOR: blue')); // reviews v2 runs on node-b
  await r.pass();
  const rev = source.revision;
  assert.deepEqual(ops, [`list ${PROJECT}`, `publish ${rev}`, `save applied ${rev}`, `report ${rev}`]);
  assert.equal(readFileSync(join(stateDir, COMPOSE_PATH), 'utf8'), before);
});

test('a change to this node\'s project runs up once (no new check while templates are unchanged)', async () => {
  const { r, source, ops, stateDir, mesh } = await setup();
  source.load(mesh);
  await r.pass();
  ops.length = 0;
  source.load(mesh.replace('LOG_LEVEL: info', 'LOG_LEVEL: debug'));
  await r.pass();
  const rev = source.revision;
  assert.deepEqual(ops, [`list ${PROJECT}`, `publish ${rev}`, `missingImages ${IMAGES}`, `up ${PROJECT} ${join(stateDir, COMPOSE_PATH)}`, `list ${PROJECT}`, `save applied ${rev}`, `report ${rev}`]);
  assert.match(readFileSync(join(stateDir, COMPOSE_PATH), 'utf8'), /LOG_LEVEL: debug/);
});

test('drift: a stopped, a missing or a foreign container makes the next pass run up', async () => {
  const { r, source, docker, ops, stateDir, mesh } = await setup();
  source.load(mesh);
  const rev = source.revision;
  await r.pass();
  const list = await docker.list(PROJECT);
  for (const [name, change] of [
    ['stopped', () => docker.updateContainer(PROJECT, list[0]!.id, { state: 'exited' })],
    ['removed', () => docker.setContainers(PROJECT, list.slice(1))],
    ['changed by hand', () => docker.updateContainer(PROJECT, list[0]!.id, { configHash: 'edited' })],
    ['foreign', () => docker.setContainers(PROJECT, [...list, { ...list[0]!, id: 'x', composeService: 'intruder' }])],
  ] as const) {
    await r.pass(); // converge (the fake compose resets containers on up)
    ops.length = 0;
    change();
    await r.pass();
    assert.equal(ops.filter((o) => o.startsWith('up')).length, 1, name);
    assert.deepEqual(ops, [`list ${PROJECT}`, `publish ${rev}`, `missingImages ${IMAGES}`, `up ${PROJECT} ${join(stateDir, COMPOSE_PATH)}`, `list ${PROJECT}`, `save applied ${rev}`, `report ${rev}`], name);
  }
});

test('compose failure: the error is reported naming the action, the last-good file and applied state stay, the next pass tries again', async () => {
  const { r, source, compose, ops, stateDir, mesh, reports } = await setup();
  source.load(mesh);
  await r.pass();
  const applied = { hash: r.state.appliedHash, revision: source.revision };
  const lastGood = readFileSync(join(stateDir, LAST_GOOD_PATH), 'utf8');
  compose.failNext('up', new ExternalError('compose exploded'));
  source.load(mesh.replace('LOG_LEVEL: info', 'LOG_LEVEL: debug'));
  const rev = source.revision;
  const file = join(stateDir, COMPOSE_PATH);
  ops.length = 0;
  await r.pass();
  assert.deepEqual(ops, [`list ${PROJECT}`, `publish ${rev}`, `missingImages ${IMAGES}`, `up ${PROJECT} ${file}`, `save applied ${applied.revision}`, `report ${rev}`], 'stops at the failed up: no confirm, no last-good');
  assert.equal(reports.at(-1)!.lastApply!.ok, false);
  assert.match(reports.at(-1)!.lastApply!.message!, /compose exploded/);
  assert.equal(reports.at(-1)!.lastApply!.action, 'compose up');
  assert.equal(readFileSync(join(stateDir, LAST_GOOD_PATH), 'utf8'), lastGood);
  assert.equal(r.state.appliedHash, applied.hash);
  ops.length = 0;
  await r.pass();
  assert.equal(ops.filter((o) => o.startsWith('up')).length, 1);
  assert.deepEqual(ops, [`list ${PROJECT}`, `publish ${rev}`, `missingImages ${IMAGES}`, `up ${PROJECT} ${file}`, `list ${PROJECT}`, `save applied ${rev}`, `report ${rev}`]);
  assert.equal(reports.at(-1)!.lastApply!.ok, true);
});

test('a missing image stops the apply before compose runs, naming the image', async () => {
  const { r, source, docker, ops, mesh, reports } = await setup();
  docker.images.delete('registry.local/bookinfo/ratings:1.0');
  source.load(mesh);
  await r.pass();
  const rev = source.revision;
  assert.deepEqual(ops, [`list ${PROJECT}`, `publish ${rev}`, `missingImages ${IMAGES}`, 'save applied -', `report ${rev}`]);
  assert.match(reports.at(-1)!.lastApply!.message!, /registry\.local\/bookinfo\/ratings:1\.0.*never pulls/);
  assert.equal(reports.at(-1)!.lastApply!.action, 'check images');
});

test('a bad document is rejected alone and the rest is applied', async () => {
  const { r, source, ops, stateDir, mesh, reports } = await setup();
  source.load(mesh);
  source.put(`${PREFIX}/desired/services/broken`, '{not json');
  source.put(`${PREFIX}/desired/routes/other-name`, JSON.stringify({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'reviews2' }, spec: { hosts: ['reviews'], http: [{ route: [{ destination: { host: 'reviews' } }] }] } }));
  await r.pass();
  const rejected = reports.at(-1)!.rejected;
  assert.deepEqual(rejected.map((i) => i.doc.source).sort(), [`${PREFIX}/desired/routes/other-name`, `${PREFIX}/desired/services/broken`]);
  assert.equal(ops.filter((o) => o.startsWith('up')).length, 1);
  assert.match(readFileSync(join(stateDir, COMPOSE_PATH), 'utf8'), /productpage-v1:/);
});

test('an upstream TLS file missing on the host is reported on its DestinationRule field and not mounted; the rest applies', async () => {
  const asked: string[][] = [];
  const { r, source, stateDir, mesh, reports } = await setup({ hostFiles: (paths) => (asked.push(paths), new Set(paths.filter((p) => p.endsWith('ca.pem')))) });
  source.load(mesh);
  source.put(`${PREFIX}/desired/subsets/details`, JSON.stringify({ apiVersion: 'networking.istio.io/v1', kind: 'DestinationRule', metadata: { name: 'details' }, spec: { host: 'details', trafficPolicy: { tls: { mode: 'MUTUAL', caCertificates: '/etc/tls/ca.pem', clientCertificate: '/etc/tls/client.pem', privateKey: '/etc/tls/key.pem' } } } }));
  await r.pass();
  assert.deepEqual(asked.at(-1), ['/etc/tls/ca.pem', '/etc/tls/client.pem', '/etc/tls/key.pem']);
  assert.deepEqual(reports.at(-1)!.rejected.map((i) => [i.doc.name, i.path]), [['details', 'spec.trafficPolicy.tls.clientCertificate'], ['details', 'spec.trafficPolicy.tls.privateKey']]);
  const compose = parse(readFileSync(join(stateDir, COMPOSE_PATH), 'utf8')) as { services: Record<string, { volumes: string[] }> };
  assert.deepEqual(compose.services['productpage-v1-envoy']!.volumes.slice(1), ['/etc/tls/ca.pem:/etc/meshlet/upstream-tls/etc/tls/ca.pem:ro']);
});

test('standing down (another agent holds the node): passes still publish xDS but write, run, save and report nothing', async () => {
  const { r, source, ops, stateDir, mesh, reports } = await setup();
  source.load(mesh);
  await r.pass();
  const before = readFileSync(join(stateDir, COMPOSE_PATH), 'utf8');
  const applied = r.state.appliedRevision;
  r.standDown('node node-a is run by another agent');
  ops.length = 0;
  reports.length = 0;
  source.load(mesh.replace('LOG_LEVEL: info', 'LOG_LEVEL: debug'));
  const report = await r.pass(['etcd']);
  const rev = source.revision;
  assert.deepEqual(ops, [`list ${PROJECT}`, `publish ${rev}`], 'observed and published; no compose, no save, no report');
  assert.equal(report?.plan?.composeReason, 'the rendered project changed', 'the plan still says what it would do');
  assert.equal(readFileSync(join(stateDir, COMPOSE_PATH), 'utf8'), before, 'the compose file is not rewritten');
  assert.equal(r.state.appliedRevision, applied);
  assert.deepEqual(reports, []);
  assert.equal(r.standingDown, 'node node-a is run by another agent');
});

test('a rejected document lists every problem, its own and those with the set; what refers to a refused one says so once (issue 10)', async () => {
  const { r, source, ops, stateDir, mesh, reports } = await setup();
  source.load(mesh);
  const vs = (name: string, host: string, route: unknown[]) => JSON.stringify({ apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name }, spec: { hosts: [host], http: [{ route }] } });
  // Weights adding up to 90 and a subset reviews does not have.
  source.put(`${PREFIX}/desired/routes/reviews`, vs('reviews', 'reviews', [{ destination: { host: 'reviews', subset: 'v1' }, weight: 80 }, { destination: { host: 'reviews', subset: 'v9' }, weight: 10 }]));
  // A Service with a bad port, and a route to it.
  source.put(`${PREFIX}/desired/services/extra`, JSON.stringify({ apiVersion: 'meshlet.dev/v1', kind: 'Service', metadata: { name: 'extra' }, spec: { port: 70000, versions: { v1: { image: 'x', nodes: ['node-a'] } } } }));
  source.put(`${PREFIX}/desired/routes/extra`, vs('extra', 'extra', [{ destination: { host: 'extra', subset: 'v1' }, weight: 60 }, { destination: { host: 'extra' }, weight: 40 }]));
  await r.pass();
  // Sorted by key, each document's problems together, each once: as the node status lists them.
  const rejected = reports.at(-1)!.rejected.map((i) => `${i.doc.source}: ${i.path}: ${i.message}`);
  assert.deepEqual(rejected, [
    `${PREFIX}/desired/routes/extra: spec.hosts[0]: Service extra is not valid: see the problems listed for ${PREFIX}/desired/services/extra: Service "extra" (document 1)`,
    `${PREFIX}/desired/routes/reviews: spec.http[0].route: expected weights adding up to 100, got 80 + 10 = 90`,
    `${PREFIX}/desired/routes/reviews: spec.http[0].route[1].destination.subset: Service reviews has no subset v9 (did you mean "v1"?); known subsets: v1, v2, v3`,
    `${PREFIX}/desired/services/extra: spec.port: expected a port (an integer) from 1 to 65535, got 70000`,
  ]);
  // The rest is applied: one compose run, with the other services.
  assert.equal(ops.filter((o) => o.startsWith('up')).length, 1);
  assert.match(readFileSync(join(stateDir, COMPOSE_PATH), 'utf8'), /productpage-v1:/);
});

