// The Docker adapters against the real dockerd and docker-compose of the dev environment
// (scripts/dev-env.sh): compose runner, container listing, images, and the event feed.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { stringify } from 'yaml';
import { createDocker } from '../../agent/adapters/docker/docker.js';
import { detectCompose, ExecComposeRunner, type ComposeRunner } from '../../agent/adapters/docker/compose-runner.js';
import { DockerApiObserver, parseEvent, type ContainerInfo, type DockerEvent } from '../../agent/adapters/docker/docker-observer.js';
import { ExternalError } from '../../agent/core/errors.js';
import { tempDir } from '../helpers/paths.js';

const run = promisify(execFile);
const DOCKER_HOST = requireEnv('DOCKER_HOST');
const BUSYBOX = process.env.MESHLET_TEST_BUSYBOX_IMAGE || 'meshlet-test/busybox:1';
// These tests prove compose and Docker adapter mechanics, not Envoy: the sidecar is the stand-in, which checks
// its -c file and idles (the real Envoy image runs in agent.test.ts, sidecar-status.test.ts and the traffic tests).
const SIDECAR = process.env.MESHLET_TEST_STANDIN_IMAGE || 'meshlet-test/envoy-standin:1';
// dev-env.sh down removes containers with this label, should a test die before its cleanup.
const TEST_LABELS = { 'meshlet.test': '1', 'meshlet.node': 'node-t' };

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run through scripts/test.sh, or first: . /tmp/meshlet-dev/env`);
  return value;
}

const projects = new Map<string, string>(); // project → its compose file
const newProject = (file: string) => {
  const p = `meshlet-t${Math.random().toString(36).slice(2, 10)}`;
  projects.set(p, file);
  return p;
};

after(async () => {
  // Every project, even when a test failed half-way, then whatever compose left behind.
  const docker = createDocker(DOCKER_HOST);
  await Promise.all([...projects].map(async ([p, file]) => {
    writeFileSync(file, stringify({ version: '2.4', services: {} })); // down needs a file; --remove-orphans does the rest
    await run('docker-compose', ['-p', p, '-f', file, 'down', '-t', '1', '--remove-orphans'], { env: { ...process.env, DOCKER_HOST } }).catch(() => undefined);
    const left = await docker.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${p}`] } });
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  }));
});

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

type Svc = Record<string, unknown>;
const httpd = (service: string, port: number, extra: Svc = {}): Svc => ({
  image: BUSYBOX,
  command: ['httpd', '-f', '-p', `127.0.0.1:${port}`, '-h', '/www'],
  network_mode: 'host',
  // busybox httpd as PID 1 ignores SIGTERM: without init a recreate waits the full grace period.
  init: true,
  stop_grace_period: '1s',
  environment: { PORT: String(port) },
  labels: { ...TEST_LABELS, 'meshlet.role': 'app', 'meshlet.service': service, 'meshlet.version': 'v1' },
  ...extra,
});
const envoy = (service: string): Svc => ({
  image: SIDECAR,
  command: ['envoy', '-c', '/etc/envoy/envoy.yaml', '--disable-hot-restart'],
  network_mode: 'host',
  stop_grace_period: '1s',
  labels: { ...TEST_LABELS, 'meshlet.role': 'sidecar', 'meshlet.service': service, 'meshlet.version': 'v1' },
  volumes: ['./envoy.yaml:/etc/envoy/envoy.yaml:ro'],
});

function writeCompose(file: string, services: Record<string, Svc>): void {
  writeFileSync(file, stringify({ version: '2.4', services }));
}

const byService = (list: ContainerInfo[]) => Object.fromEntries(list.map((c) => [c.composeService, c]));

async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await fn();
  return [v, Math.round(performance.now() - t0)];
}

// Records what a watch delivers.
function recorder() {
  const events: Array<DockerEvent & { at: number }> = [];
  const errors: Error[] = [];
  let resyncs = 0;
  return {
    events, errors,
    get resyncs() { return resyncs; },
    handlers: { event: (e: DockerEvent) => { events.push({ ...e, at: performance.now() }); }, resync: () => { resyncs++; }, error: (err: Error) => { errors.push(err); } },
  };
}

describe('compose runner and observer on a real project', () => {
  const docker = createDocker(DOCKER_HOST);
  const observer = new DockerApiObserver(docker);
  const dir = tempDir('meshlet-docker-');
  const file = join(dir, 'docker-compose.yml');
  const project = newProject(file);
  const services: Record<string, Svc> = {};
  const ports: Record<string, number> = {};
  let compose: ComposeRunner;

  before(async () => {
    for (const s of ['a', 'b', 'h', 'q']) ports[s] = await freePort();
    writeFileSync(join(dir, 'envoy.yaml'), 'node: {id: test}\n');
    services['web-a'] = httpd('web-a', ports.a!);
    services['web-b'] = httpd('web-b', ports.b!);
    services['web-a-envoy'] = envoy('web-a');
  });

  it('auto-detects docker-compose v1 (no v2 plugin here)', async () => {
    compose = await detectCompose('auto', { dockerHost: DOCKER_HOST });
    assert.equal(compose.flavour, 'v1');
    assert.ok(compose instanceof ExecComposeRunner);
    assert.match(compose.version, /^1\.\d+\.\d+/);
  });

  it('fails clearly when v2 is insisted on, or when nothing is installed', async () => {
    await assert.rejects(detectCompose('v2', { dockerHost: DOCKER_HOST }), (err: Error) => {
      assert.ok(err instanceof ExternalError);
      assert.match(err.message, /Docker Compose v2 not found/);
      assert.match(err.message, /`docker compose version`/);
      assert.match(err.message, /`docker-compose version`: Compose 1\.\d+\.\d+ is not v2/);
      return true;
    });
    await assert.rejects(detectCompose('auto', { dockerBin: '/nonexistent/docker', composeBin: '/nonexistent/docker-compose' }), (err: Error) => {
      assert.ok(err instanceof ExternalError);
      assert.match(err.message, /\/nonexistent\/docker compose version`: \/nonexistent\/docker is not installed/);
      assert.match(err.message, /\/nonexistent\/docker-compose version`: \/nonexistent\/docker-compose is not installed/);
      return true;
    });
  });

  it('up brings the project up, and list finds it by its labels', async () => {
    writeCompose(file, services);
    await compose.up(project, file);
    const list = await observer.list(project);
    assert.deepEqual(list.map((c) => c.composeService), ['web-a', 'web-a-envoy', 'web-b']);
    for (const c of list) {
      assert.equal(c.state, 'running', c.name);
      assert.equal(c.health, undefined, 'no health check, no health');
      assert.match(c.configHash ?? '', /^[0-9a-f]{64}$/);
      assert.ok(c.startedAt && Date.parse(c.startedAt) > Date.now() - 120_000, c.startedAt);
    }
    const s = byService(list);
    assert.deepEqual([s['web-a']!.role, s['web-a']!.service, s['web-a']!.version, s['web-a']!.image], ['app', 'web-a', 'v1', BUSYBOX]);
    assert.deepEqual([s['web-a-envoy']!.role, s['web-a-envoy']!.service, s['web-a-envoy']!.image], ['sidecar', 'web-a', SIDECAR]);
    // The bootstrap's host path, as a new agent reads it back for the admin port (compose made the relative path absolute).
    assert.deepEqual(s['web-a-envoy']!.binds, { '/etc/envoy/envoy.yaml': join(dir, 'envoy.yaml') });
    assert.equal(s['web-a']!.binds, undefined, 'no bind mount, no binds');
    // Really serving on the host network.
    for (const p of [ports.a, ports.b]) assert.equal((await (await fetch(`http://127.0.0.1:${p}/`)).text()).trim(), 'meshlet-test busybox');
  });

  it('a no-op up changes nothing; a changed env recreates exactly that container', async (t) => {
    const before = byService(await observer.list(project));
    const [, noop] = await timed(() => compose.up(project, file));
    const same = byService(await observer.list(project));
    for (const s of Object.keys(before)) assert.equal(same[s]!.id, before[s]!.id, `${s} kept`);

    services['web-a'] = httpd('web-a', ports.a!, { environment: { PORT: String(ports.a), LOG_LEVEL: 'debug' } });
    writeCompose(file, services);
    const [, change] = await timed(() => compose.up(project, file));
    const after = byService(await observer.list(project));
    assert.notEqual(after['web-a']!.id, before['web-a']!.id, 'web-a recreated');
    assert.notEqual(after['web-a']!.configHash, before['web-a']!.configHash);
    assert.equal(after['web-a']!.state, 'running');
    assert.equal(after['web-b']!.id, before['web-b']!.id, 'web-b kept');
    assert.equal(after['web-a-envoy']!.id, before['web-a-envoy']!.id, 'web-a-envoy kept');
    t.diagnostic(`compose v1 up -d: no-op ${noop} ms, one container recreated ${change} ms`);
  });

  it('a service removed from the file loses its container (--remove-orphans)', async (t) => {
    const [list, listMs] = await timed(() => observer.list(project));
    t.diagnostic(`observer.list of ${list.length} containers: ${listMs} ms`);
    const before = byService(list);
    delete services['web-b'];
    writeCompose(file, services);
    await compose.up(project, file);
    const after = byService(await observer.list(project));
    assert.deepEqual(Object.keys(after).sort(), ['web-a', 'web-a-envoy']);
    assert.equal(after['web-a']!.id, before['web-a']!.id);
    await assert.rejects(docker.getContainer(before['web-b']!.id).inspect(), /no such container/i);
  });

  it('missingImages names only the missing ones and pulls nothing', async () => {
    assert.deepEqual(await observer.missingImages([BUSYBOX, 'nope/missing:1', SIDECAR, 'nope/missing:1']), ['nope/missing:1']);
    assert.deepEqual(await observer.missingImages([]), []);
    await assert.rejects(docker.getImage('nope/missing:1').inspect(), (err: { statusCode?: number }) => err.statusCode === 404);
  });

  it('check and up refuse a broken file with compose\'s own words, touching nothing', async (t) => {
    const bad = join(dir, 'broken.yml');
    writeCompose(bad, { ...services, 'web-a': { ...services['web-a'], bogus_key: 1 } });
    const before = (await observer.list(project)).map((c) => c.id);
    for (const op of ['check', 'up'] as const) {
      await assert.rejects(compose[op](project, bad), (err: Error) => {
        assert.ok(err instanceof ExternalError, String(err));
        assert.match(err.message, /Unsupported config option for services.web-a: 'bogus_key'/);
        assert.match(err.message, /exit 1/);
        return true;
      });
    }
    const [, checkMs] = await timed(() => compose.check(project, file));
    t.diagnostic(`compose v1 config -q: ${checkMs} ms`);
    assert.deepEqual((await observer.list(project)).map((c) => c.id), before);
  });

  it('watch: resync on start, die of a killed container within a second, nothing of other projects', async (t) => {
    const otherFile = join(tempDir('meshlet-docker-'), 'docker-compose.yml');
    const other = newProject(otherFile);
    writeCompose(otherFile, { 'web-q': httpd('web-q', ports.q!) });
    await compose.up(other, otherFile);
    const [q] = await observer.list(other);
    assert.ok(q);

    const rec = recorder();
    const w = observer.watch(project, rec.handlers);
    try {
      await waitFor('resync', 5000, () => rec.resyncs === 1);
      assert.equal(w.state, 'streaming');
      // The other project's container dies first: were it delivered, it would come before ours.
      await docker.getContainer(q.id).kill();
      const target = byService(await observer.list(project))['web-a']!;
      const t0 = performance.now();
      await docker.getContainer(target.id).kill();
      const die = await waitFor('die of web-a', 5000, () => rec.events.find((e) => e.id === target.id && e.action === 'die'));
      assert.ok(die.at - t0 < 1000, `die after ${Math.round(die.at - t0)} ms`);
      t.diagnostic(`kill → die event: ${Math.round(die.at - t0)} ms`);
      assert.deepEqual([die.composeService, die.service, die.version, die.exitCode], ['web-a', 'web-a', 'v1', 137]);
      assert.ok(die.timeNano > BigInt(Date.now() - 60_000) * 1_000_000n, String(die.timeNano));
      assert.deepEqual(rec.events.filter((e) => e.id === q.id), [], 'no event of the other project');
      assert.ok(rec.events.every((e) => e.composeService !== 'web-q'));
      assert.equal((byService(await observer.list(project))['web-a']!).state, 'exited');
      assert.deepEqual(rec.errors, []);
    } finally {
      w.close();
    }
    assert.equal(w.state, 'closed');
  });

  it('an exec health check shows as health_status: healthy, and in list', async (t) => {
    const rec = recorder();
    const w = observer.watch(project, rec.handlers);
    try {
      await waitFor('resync', 5000, () => rec.resyncs === 1);
      services['web-h'] = httpd('web-h', ports.h!, {
        healthcheck: { test: ['CMD', 'wget', '-q', '-O', '/dev/null', `http://127.0.0.1:${ports.h}/`], interval: '1s', timeout: '1s', retries: 3, start_period: '0s' },
      });
      writeCompose(file, services);
      const t0 = performance.now();
      await compose.up(project, file); // also starts the killed web-a again
      const h = await waitFor('web-h created', 5000, async () => byService(await observer.list(project))['web-h']);
      const healthy = await waitFor('health_status: healthy', 15_000, () => rec.events.find((e) => e.id === h.id && e.action === 'health_status: healthy'));
      assert.equal(healthy.composeService, 'web-h');
      t.diagnostic(`up → health_status: healthy (interval 1s): ${Math.round(healthy.at - t0)} ms`);
      assert.ok(rec.events.some((e) => e.id === h.id && e.action === 'start'));
      // Health checks run execs every second; the daemon-side filter keeps them out.
      assert.ok(rec.events.every((e) => !e.action.startsWith('exec_')), rec.events.map((e) => e.action).join());
      const listed = byService(await observer.list(project));
      assert.equal(listed['web-h']!.health, 'healthy');
      assert.equal(listed['web-a']!.health, undefined);
      assert.equal(listed['web-a']!.state, 'running');
    } finally {
      w.close();
    }
  });

  it('watch reconnects after a cut or an outage, resyncs each time, and keeps delivering', async () => {
    const proxy = await socketProxy(new URL(DOCKER_HOST).pathname, join(tempDir('meshlet-proxy-'), 'docker.sock'));
    const viaProxy = new DockerApiObserver(createDocker(`unix://${proxy.path}`), { backoff: { firstMs: 50, maxMs: 400 } });
    const rec = recorder();
    const w = viaProxy.watch(project, rec.handlers);
    try {
      await waitFor('first resync', 5000, () => rec.resyncs === 1);
      proxy.cut();
      await waitFor('resync after the cut', 5000, () => rec.resyncs === 2);
      assert.ok(rec.errors.length >= 1 && rec.errors.every((e) => e instanceof ExternalError), rec.errors.join());

      await proxy.stop(); // dockerd "away": connects are refused for a while
      await waitFor('backoff', 5000, () => w.state === 'backoff' || undefined);
      await new Promise((r) => setTimeout(r, 600));
      assert.equal(rec.resyncs, 2, 'no resync while the daemon is away');
      const failed = rec.errors.length;
      assert.ok(failed >= 3, `retried with backoff (${failed} errors)`);
      await proxy.start();
      await waitFor('resync after the outage', 5000, () => rec.resyncs === 3);
      assert.equal(w.state, 'streaming');

      const target = byService(await observer.list(project))['web-a-envoy']!;
      await docker.getContainer(target.id).kill();
      await waitFor('die through the new stream', 5000, () => rec.events.find((e) => e.id === target.id && e.action === 'die'));
    } finally {
      w.close();
      await proxy.stop();
    }
    const seen = rec.events.length;
    await compose.up(project, file); // restarts web-a-envoy: start events nobody may receive now
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(rec.events.length, seen, 'nothing after close');
    assert.equal(w.state, 'closed');
  });
});

describe('createDocker (no Docker needed)', () => {
  it('uses exactly the address given: no timeout, host or TLS leaking in from the environment', () => {
    // The modem's connection fields are not in its typings.
    type Modem = { socketPath?: string; host?: string; port?: number; timeout?: number; protocol?: string };
    const modemOf = (d: Docker) => d.modem as unknown as Modem;
    const saved = { ...process.env };
    try {
      // docker-modem reads these itself and merges them under explicit options.
      Object.assign(process.env, { DOCKER_HOST: 'tcp://10.9.9.9:2376', DOCKER_CLIENT_TIMEOUT: '100' });
      const unix = modemOf(createDocker('unix:///run/x.sock'));
      assert.deepEqual([unix.socketPath, unix.host, unix.timeout, unix.protocol], ['/run/x.sock', undefined, undefined, 'http']);
      const tcp = modemOf(createDocker('tcp://127.0.0.1:2375'));
      assert.deepEqual([tcp.host, tcp.port, tcp.timeout, tcp.protocol], ['127.0.0.1', 2375, undefined, 'http']);
      assert.equal(modemOf(createDocker()).host, '10.9.9.9', 'default: $DOCKER_HOST');
      assert.throws(() => createDocker('ssh://me@host'), /bad Docker address/);
      assert.throws(() => createDocker('tcp://127.0.0.1'), /port is required/);
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });
});

describe('event stream parsing (no Docker needed)', () => {
  it('keeps timeNano exact (beyond 2^53) and reads the labels', () => {
    const line = '{"status":"die","id":"abc","from":"x","Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{"com.docker.compose.service":"reviews-v1","exitCode":"137","meshlet.service":"reviews","meshlet.version":"v1"}},"scope":"local","time":1767000000,"timeNano":1767000000123456789}';
    assert.deepEqual(parseEvent(line), { id: 'abc', action: 'die', composeService: 'reviews-v1', service: 'reviews', version: 'v1', exitCode: 137, timeNano: 1767000000123456789n });
    assert.equal(parseEvent('{"Type":"image","Action":"pull","Actor":{"ID":"busybox"}}'), undefined);
  });

  it('reassembles lines split across chunks, even inside a UTF-8 character', async () => {
    const stream = new PassThrough();
    const fakeDocker = { getEvents: async () => stream } as unknown as Docker;
    const rec = recorder();
    const w = new DockerApiObserver(fakeDocker).watch('p', rec.handlers);
    await waitFor('resync', 1000, () => rec.resyncs === 1);
    const text = Buffer.from(
      '{"Type":"container","Action":"start","Actor":{"ID":"a1","Attributes":{"meshlet.service":"caf\u00e9"}},"timeNano":1}\n' +
      '{"Type":"container","Action":"health_status: healthy","Actor":{"ID":"a2","Attributes":{}},"timeNano":2}\n', 'utf8');
    const cut = text.indexOf(0xc3) + 1; // between the two bytes of "é"
    for (const part of [text.subarray(0, 10), text.subarray(10, cut), text.subarray(cut, cut + 90), text.subarray(cut + 90)]) {
      stream.write(part);
      await new Promise((r) => setImmediate(r));
    }
    assert.deepEqual(rec.events.map(({ at: _at, ...e }) => e), [
      { id: 'a1', action: 'start', service: 'caf\u00e9', timeNano: 1n },
      { id: 'a2', action: 'health_status: healthy', timeNano: 2n },
    ]);
    w.close();
    assert.deepEqual(rec.errors, []);
  });
});

describe('compose runner guards (a stub compose binary)', () => {
  // Answers `version --short` like v1, then behaves as $STUB_MODE says; logs each call's span.
  const dir = tempDir('meshlet-stub-');
  const stub = join(dir, 'docker-compose');
  const log = join(dir, 'calls.log');
  writeFileSync(stub, `#!/bin/sh
case "$*" in *"version --short"*) echo 1.29.2; exit 0 ;; esac
echo "start $(date +%s%N)" >> "${log}"
case "$STUB_MODE" in
  usage) echo "Usage: up [options] [--scale SERVICE=NUM...] [--] [SERVICE...]" >&2 ;;
  sleep) sleep "$STUB_SLEEP" ;;
esac
echo "end $(date +%s%N)" >> "${log}"
exit 0
`);
  chmodSync(stub, 0o755);
  const runner = (mode: string, extra: { timeoutMs?: number; sleep?: string } = {}) =>
    detectCompose('v1', { composeBin: stub, env: { ...process.env, STUB_MODE: mode, STUB_SLEEP: extra.sleep ?? '0' }, ...(extra.timeoutMs ? { timeoutMs: extra.timeoutMs } : {}) });

  it('treats usage text with exit 0 as a failure', async () => {
    const r = await runner('usage');
    await assert.rejects(r.up('meshlet-stub', join(dir, 'x.yml')), /printed its usage text[\s\S]*Usage: up \[options\]/);
    await (await runner('ok')).up('meshlet-stub', join(dir, 'x.yml'));
  });

  it('kills a compose that runs past its time limit', async () => {
    const r = await runner('sleep', { timeoutMs: 300, sleep: '5' });
    const [err, ms] = await timed(() => r.up('meshlet-stub', join(dir, 'x.yml')).then(() => undefined, (e: Error) => e));
    assert.ok(err instanceof ExternalError);
    assert.match(err.message, /timed out after 0\.3 s/);
    assert.ok(ms < 3000, `${ms} ms`);
  });

  it('runs one compose at a time, also after a failure', async () => {
    rmSync(log, { force: true });
    const r = await runner('sleep', { sleep: '0.2' });
    await Promise.all([
      r.up('meshlet-stub', join(dir, 'x.yml')),
      r.check('meshlet-stub', '/nonexistent-dir/x.yml').catch(() => undefined), // cwd missing: fails at spawn
      r.up('meshlet-stub', join(dir, 'x.yml')),
    ]);
    const spans = readFileSync(log, 'utf8').trim().split('\n');
    assert.deepEqual(spans.map((l) => l.split(' ')[0]), ['start', 'end', 'start', 'end']);
  });

  it('refuses a project name compose would rewrite or refuse', async () => {
    await assert.rejects((await runner('ok')).up('Meshlet.Node', join(dir, 'x.yml')), /bad compose project name/);
  });
});

// A unix socket that forwards to dockerd; cut() drops every connection, stop()/start() refuse new ones for a while.
async function socketProxy(target: string, path: string) {
  const conns = new Set<Socket>();
  let server: Server | undefined;
  const start = async () => {
    rmSync(path, { force: true });
    const s = createServer((client) => {
      const upstream = connect(target);
      conns.add(client).add(upstream);
      const drop = () => { client.destroy(); upstream.destroy(); conns.delete(client); conns.delete(upstream); };
      for (const sock of [client, upstream]) sock.on('error', drop).on('close', drop);
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => s.listen(path, resolve));
    server = s;
  };
  const cut = () => { for (const c of conns) c.destroy(); };
  const stop = async () => {
    const s = server;
    server = undefined;
    cut();
    if (s) await new Promise((resolve) => s.close(resolve));
    rmSync(path, { force: true });
  };
  await start();
  return { path, cut, stop, start };
}
