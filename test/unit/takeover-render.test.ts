// A new agent's first render after a takeover: with state.json lost it keeps the admin ports the running
// sidecars' bootstraps name and the header of the files on disk, so it writes the same bytes and gives compose
// nothing to recreate. The loop with recording fakes whose "containers" mount the state dir's real files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { Reconciler } from '../../agent/reconcile.js';
import { loadTemplates } from '../../agent/adapters/files/templates.js';
import { readRenderedFiles, sidecarAdminPorts } from '../../agent/adapters/files/earlier-render.js';
import { keepFilesOnDisk } from '../../agent/core/render/keep-files-on-disk.js';
import { contentHash } from '../../agent/core/model/canonical.js';
import type { Clock } from '../../agent/core/clock.js';
import { silentLogger, type Logger } from '../../agent/core/logger.js';
import type { ContainerInfo } from '../../agent/adapters/docker/docker-observer.js';
import { FakeDockerObserver, RecordingComposeRunner } from '../helpers/docker-fakes.js';
import { FakeSource, RecordingStateStore } from '../helpers/loop-fakes.js';
import { fixture, tempDir } from '../helpers/paths.js';

const PROJECT = 'meshlet-node-a';
const neverClock: Clock = { now: () => 0, sleep: () => new Promise(() => {}) };

function service(name: string, port: number, versions: string[], node = 'node-a'): string {
  return `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: ${name} }
spec:
  port: ${port}
  versions:
${versions.map((v, i) => `    ${v}: { image: app:1, nodes: [${node}]${i > 0 ? `, port: ${port + i}` : ''} }`).join('\n')}
`;
}

interface Compose { services: Record<string, { image: string; labels: Record<string, string>; volumes?: string[] }> }

/** Docker as compose leaves it: one running container per service, its bind mounts from the file's volumes. */
function composeRuns(docker: FakeDockerObserver, compose: RecordingComposeRunner): void {
  compose.onUp = (project, file) => {
    const doc = parse(readFileSync(file, 'utf8')) as Compose;
    docker.setContainers(project, Object.entries(doc.services).map(([name, svc]): ContainerInfo => ({
      id: `id-${name}-${contentHash(svc)}`, name, composeService: name, state: 'running', image: svc.image, configHash: contentHash(svc),
      role: svc.labels['meshlet.role'] as 'app' | 'sidecar',
      ...(svc.volumes ? { binds: Object.fromEntries(svc.volumes.map((v) => { const [host, inside] = v.split(':'); return [inside!, host!]; })) } : {}),
    })));
  };
}

function agent(stateDir: string, source: FakeSource, docker: FakeDockerObserver, compose: RecordingComposeRunner, ops: string[], log: Logger) {
  return new Reconciler(
    { node: 'node-a', project: PROJECT, stateDir, prefix: '/meshlet', advertiseAddress: '127.0.0.1', sidecarImage: 'envoy:1', xdsPort: 15010, adminPorts: { from: 15100, to: 15199 } },
    { source, docker, compose, templates: () => loadTemplates(), state: new RecordingStateStore(stateDir, ops), clock: neverClock, log, report: async () => {} },
  );
}

function files(dir: string): Record<string, { text: string; ino: number }> {
  const out: Record<string, { text: string; ino: number }> = {};
  for (const sub of ['compose', 'envoy']) {
    for (const name of readdirSync(join(dir, sub)).filter((n) => !n.includes('last-good')).sort()) {
      const path = join(dir, sub, name);
      out[`${sub}/${name}`] = { text: readFileSync(path, 'utf8'), ino: statSync(path).ino };
    }
  }
  return out;
}

function recordingLog(lines: string[]): Logger {
  const rec = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`);
  return { debug: () => {}, info: rec('info'), warn: rec('warn'), error: rec('error') };
}

test('state.json lost: the new agent keeps the running sidecars\' admin ports and the files\' header; no file rewritten, no container changed', async () => {
  const stateDir = tempDir('meshlet-takeover-unit-');
  const source = new FakeSource();
  const ops: string[] = [];
  const docker = new FakeDockerObserver(ops);
  docker.images.add('app:1').add('envoy:1');
  const compose = new RecordingComposeRunner('v1', ops);
  composeRuns(docker, compose);
  // web first (15100), then api joins and sorts before it (15101): not the name order.
  const first = agent(stateDir, source, docker, compose, ops, recordingLog([]));
  await first.init();
  source.load(service('web', 18080, ['v1']));
  await first.pass();
  source.load(service('api', 18081, ['v1']));
  await first.pass();
  assert.deepEqual(first.state.adminPorts, { 'api-v1': 15101, 'web-v1': 15100 });
  const before = files(stateDir);
  const containers = await docker.list(PROJECT);

  rmSync(join(stateDir, 'state.json'));
  source.load(service('elsewhere', 19000, ['v1'], 'node-b')); // etcd moved on meanwhile: the header still names the revision the files are from
  const log: string[] = [];
  const second = agent(stateDir, source, docker, compose, ops, recordingLog(log));
  await second.init();
  assert.deepEqual(second.state.adminPorts, { 'api-v1': 15101, 'web-v1': 15100 });
  assert.ok(log.some((l) => l.startsWith('info admin ports kept from the running sidecars') && l.includes('"api-v1":15101')), log.join('\n'));
  ops.length = 0;
  const report = await second.pass();
  assert.deepEqual(files(stateDir), before, 'the same bytes, not rewritten');
  // Without state.json it cannot know compose applied these files: compose runs once, and finds nothing to change.
  assert.equal(report?.plan?.composeReason, 'first apply');
  assert.deepEqual(await docker.list(PROJECT), containers);
  assert.equal(second.state.renderedRevision, first.state.renderedRevision);
  ops.length = 0;
  await second.pass();
  assert.deepEqual(ops.filter((o) => o.startsWith('up')), [], 'then nothing to apply');
});

test('a different state dir: the admin ports come from the bootstraps the running sidecars mount from the old one', async () => {
  const stateDir = tempDir('meshlet-takeover-unit-');
  const source = new FakeSource();
  const docker = new FakeDockerObserver();
  docker.images.add('app:1').add('envoy:1');
  const compose = new RecordingComposeRunner('v1');
  composeRuns(docker, compose);
  const first = agent(stateDir, source, docker, compose, [], recordingLog([]));
  await first.init();
  source.load(service('web', 18080, ['v1']));
  await first.pass();
  source.load(service('api', 18081, ['v1', 'v2']));
  await first.pass();
  const ports = { 'api-v1': 15101, 'api-v2': 15102, 'web-v1': 15100 };
  assert.deepEqual(first.state.adminPorts, ports);

  const other = tempDir('meshlet-takeover-unit-other-');
  const second = agent(other, source, docker, compose, [], recordingLog([]));
  await second.init();
  const report = await second.pass();
  assert.deepEqual(second.state.adminPorts, ports);
  // The bootstraps are the same but mounted from another path: compose recreates the sidecars.
  assert.equal(readFileSync(join(other, 'envoy/web-v1.yaml'), 'utf8'), readFileSync(join(stateDir, 'envoy/web-v1.yaml'), 'utf8'));
  assert.equal(report?.plan?.composeReason, 'first apply');
});

test('sidecarAdminPorts: reads each sidecar\'s mounted bootstrap; the live container wins; apps, missing and garbled files are left out', async () => {
  const dir = tempDir('meshlet-admin-ports-');
  const boot = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return { '/etc/envoy/envoy.yaml': join(dir, name) };
  };
  const c = (over: Partial<ContainerInfo>): ContainerInfo => ({ id: 'x', name: 'x', composeService: 'web-v1-envoy', state: 'running', image: 'envoy', role: 'sidecar', ...over });
  const ports = await sidecarAdminPorts([
    c({ id: 'new', binds: boot('new.yaml', 'admin:\n  address:\n    socket_address: { address: 127.0.0.1, port_value: 15107 }\n') }),
    c({ id: 'old', state: 'exited', binds: boot('old.yaml', 'admin: { address: { socket_address: { port_value: 15100 } } }\n') }),
    c({ composeService: 'api-v1-envoy', binds: { '/etc/envoy/envoy.yaml': join(dir, 'gone.yaml') } }),
    c({ composeService: 'api-v2-envoy', binds: boot('bad.yaml', '{ not: [yaml') }),
    c({ composeService: 'db-v1-envoy', binds: boot('str.yaml', 'admin: { address: { socket_address: { port_value: "15109" } } }\n') }),
    c({ composeService: 'web-v1', role: 'app', binds: boot('app.yaml', 'admin: { address: { socket_address: { port_value: 15111 } } }\n') }),
  ]);
  assert.deepEqual(ports, { 'web-v1': 15107 });
});

test('keepFilesOnDisk: the header revision on disk is kept only when every file is the same bytes', async () => {
  const stateDir = tempDir('meshlet-keep-files-');
  const source = new FakeSource();
  const docker = new FakeDockerObserver();
  docker.images.add('app:1').add('envoy:1');
  const compose = new RecordingComposeRunner('v1');
  const r = agent(stateDir, source, docker, compose, [], recordingLog([]));
  await r.init();
  source.load(service('web', 18080, ['v1']));
  await r.pass();
  const rev = r.state.renderedRevision!;
  const onDisk = await readRenderedFiles(stateDir);
  assert.deepEqual([...onDisk.keys()], ['compose/docker-compose.yml', 'envoy/web-v1.yaml']);
  rmSync(join(stateDir, 'state.json'));
  source.load(service('elsewhere', 19000, ['v1'], 'node-b'));
  const later = source.revision;
  // A fresh agent renders at the latest revision; the disk says `rev`.
  const fresh = agent(stateDir, source, docker, compose, [], recordingLog([]));
  await fresh.init();
  const rendered = (await fresh.pass())!.plan!;
  assert.equal(rendered.renderedRevision, rev);
  const atLatest = { ...rendered, renderedRevision: later };
  assert.equal(keepFilesOnDisk(atLatest, onDisk, 'node-a').renderedRevision, rev);
  const edited = new Map(onDisk).set('envoy/web-v1.yaml', `${onDisk.get('envoy/web-v1.yaml')}# edited\n`);
  assert.equal(keepFilesOnDisk(atLatest, edited, 'node-a').renderedRevision, later, 'a file differs: the project changed');
  const extra = new Map(onDisk).set('envoy/gone-v1.yaml', 'admin: {}\n');
  assert.equal(keepFilesOnDisk(atLatest, extra, 'node-a').renderedRevision, later, 'a workload left: the project changed');
  assert.equal(keepFilesOnDisk({ ...atLatest, revision: rev - 1 }, onDisk, 'node-a').renderedRevision, later, 'a revision etcd has not reached');
});

test('another --xds-port or state dir changes exactly the sidecars and the apps that dial xds:/// (each mounts a bootstrap naming both)', async () => {
  const mesh = readFileSync(fixture('bookinfo', 'services.yaml'), 'utf8');
  const composeOf = async (stateDir: string, xdsPort: number) => {
    const source = new FakeSource();
    source.load(mesh);
    const docker = new FakeDockerObserver();
    const r = new Reconciler(
      { node: 'node-a', project: PROJECT, stateDir, prefix: '/meshlet', advertiseAddress: '127.0.0.1', sidecarImage: 'envoy:1', xdsPort, adminPorts: { from: 15100, to: 15199 } },
      { source, docker, compose: new RecordingComposeRunner('v1'), templates: () => loadTemplates(), state: new RecordingStateStore(stateDir, []), clock: neverClock, log: silentLogger, report: async () => {} },
    );
    await r.init();
    await r.pass(); // images are missing: the files are written, compose does not run
    return (parse(readFileSync(join(stateDir, 'compose/docker-compose.yml'), 'utf8')) as Compose).services;
  };
  const changed = (a: Compose['services'], b: Compose['services']) => Object.keys(a).filter((s) => JSON.stringify(a[s]) !== JSON.stringify(b[s])).sort();
  const dir = tempDir('meshlet-takeover-flags-');
  const base = await composeOf(dir, 15010);
  assert.deepEqual(Object.keys(base).sort(), ['productpage-v1', 'productpage-v1-envoy', 'ratings-v1', 'ratings-v1-envoy', 'reviews-v1', 'reviews-v1-envoy']);
  const sidecarsAndXdsApps = ['productpage-v1-envoy', 'ratings-v1-envoy', 'reviews-v1', 'reviews-v1-envoy'];
  assert.deepEqual(changed(base, await composeOf(tempDir('meshlet-takeover-flags-'), 15010)), sidecarsAndXdsApps, 'another state dir');
  assert.deepEqual(changed(base, await composeOf(dir, 15011)), sidecarsAndXdsApps, 'another --xds-port');
});
