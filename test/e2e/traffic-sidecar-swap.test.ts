// What requests see while compose replaces web's real Envoy sidecar under load: once through the agent (the
// base bootstrap template changes, so every sidecar's bootstrap does) and once by compose alone
// (`up --force-recreate` of that one service).
//
// Seen (docker-compose 1.29, Envoy 1.40, 2 cores): compose stops the old sidecar BEFORE it starts the new one, so
// the two never run side by side (processes listening on the port: 1 → 0 → 1) and `enable_reuse_port` never
// comes into play; in the gap nothing listens on web's proxy port: new connections are refused and keep-alive
// connections are cut. Requests DO fail during the swap: through the agent (all three sidecars recreated) 60–180
// per load over 0.4–0.7 s; `up --force-recreate` of the one service 4–10 per load over 25–65 ms. The numbers
// are printed. Asserted: the order (old died before new started, never two listening processes), that failures
// are connection-level only, and that nothing fails once the new sidecar serves.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import type { RunningAgent } from '../../agent/agent.js';
import { projectName } from '../../agent/core/model/ids.js';
import { createDocker } from '../../agent/adapters/docker/docker.js';
import { startEtcd, freePort, type TestEtcd } from '../helpers/etcd.js';
import { ROOT, tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { putDocs, randomPortBase } from '../helpers/local-mesh.js';
import { adminPort, composeDown, containerIds, requests, startLoad, stopLoads, startLocalAgent, trafficMesh, type Load, type LoadTally } from '../helpers/agent-traffic.js';

const node = `swap-${Math.random().toString(36).slice(2, 8)}`;
const project = projectName(node);
const prefix = `/swap-${node}`;
const base = randomPortBase();
const proxy = base + 3;
const stateDir = tempDir('meshlet-traffic-swap-');
const templatesDir = join(tempDir('meshlet-templates-'), 'templates');
let etcdServer: TestEtcd;
let etcd: Etcd3;
let agent: RunningAgent;

interface Ev { action: string; id: string; at: bigint }

/** Docker's start/die events of web's sidecar while `fn` runs. */
async function sidecarEvents(fn: () => Promise<void>): Promise<Ev[]> {
  const abort = new AbortController();
  const stream = await createDocker().getEvents({ filters: { type: ['container'], label: [`com.docker.compose.project=${project}`, 'com.docker.compose.service=web-v1-envoy'], event: ['start', 'die'] }, abortSignal: abort.signal });
  const events: Ev[] = [];
  let buf = '';
  stream.on('data', (c: Buffer) => {
    buf += c.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const e = JSON.parse(buf.slice(0, i)) as { Action: string; id: string; timeNano: number };
      events.push({ action: e.Action, id: e.id, at: BigInt(e.timeNano) });
      buf = buf.slice(i + 1);
    }
  });
  stream.on('error', () => {});
  try {
    await fn();
    await waitFor('docker events of the swap', () => events.some((e) => e.action === 'start'), 120_000, 20);
  } finally {
    abort.abort();
  }
  return events;
}

/**
 * Samples how many processes listen on web's proxy port (`ss -p`; with reuse_port each Envoy worker thread has
 * its own socket, so sockets are counted by pid), until stopped: the distinct counts seen, in order.
 */
function listenerSampler(): { stop(): Promise<number[]> } {
  let running = true;
  const seen: number[] = [];
  const loop = (async () => {
    while (running) {
      const out = await new Promise<string>((resolve) => execFile('ss', ['-Hltnp', `sport = :${proxy}`], (err, stdout) => resolve(err ? '' : stdout)));
      const n = new Set([...out.matchAll(/pid=(\d+)/g)].map((m) => m[1])).size;
      if (seen.at(-1) !== n) seen.push(n);
    }
  })();
  return { stop: async () => { running = false; await loop; return seen; } };
}

/** Runs `swap` under two loads (keep-alive connections, and a new connection per request); returns both tallies. */
async function underLoad(swap: () => Promise<void>): Promise<{ keep: LoadTally; fresh: LoadTally; afterKeep: number; afterFresh: number; events: Ev[]; oldId: string; newId: string; listening: number[] }> {
  const oldId = (await containerIds(node))['web-v1-envoy']!;
  const keep: Load = startLoad(proxy, { workers: 2, pauseMs: 5 });
  const fresh: Load = startLoad(proxy, { workers: 2, pauseMs: 5, fresh: true });
  await waitFor('loads running', () => keep.tally.ok > 50 && fresh.tally.ok > 50, 30_000, 10);
  assert.deepEqual([keep.tally.failures, fresh.tally.failures], [[], []], 'no failure before the swap');
  const listeners = listenerSampler();
  const events = await sidecarEvents(swap);
  const newId = await waitFor('a new web sidecar container', async () => {
    const id = (await containerIds(node))['web-v1-envoy'];
    return id && id !== oldId ? id : undefined;
  }, 120_000, 100);
  // The new sidecar serves once both loads get answers again; from then on nothing may fail.
  const [k0, f0] = [keep.tally.ok, fresh.tally.ok];
  await waitFor('both loads answered by the new sidecar', () => keep.tally.ok > k0 + 50 && fresh.tally.ok > f0 + 50, 120_000, 20);
  const listening = await listeners.stop();
  const afterKeep = keep.tally.failures.length;
  const afterFresh = fresh.tally.failures.length;
  const [k1, f1] = [keep.tally.ok, fresh.tally.ok];
  await waitFor('more requests after the swap', () => keep.tally.ok > k1 + 200 && fresh.tally.ok > f1 + 200, 60_000, 20);
  return { keep: await keep.stop(), fresh: await fresh.stop(), afterKeep, afterFresh, events, oldId, newId, listening };
}

function check(what: string, r: Awaited<ReturnType<typeof underLoad>>): void {
  const died = r.events.find((e) => e.action === 'die' && e.id === r.oldId);
  const started = r.events.find((e) => e.action === 'start' && e.id === r.newId);
  const gapMs = died && started ? Number(started.at - died.at) / 1e6 : NaN;
  const span = (t: LoadTally) => (t.failures.length > 0 ? `, first to last failure ${t.failures.at(-1)!.at - t.failures[0]!.at} ms` : '');
  const show = (t: LoadTally) => `${t.failures.length} of ${t.total} failed${span(t)} ${JSON.stringify([...new Set(t.failures.map((f) => `${f.status} ${f.body.slice(0, 60)}`))].slice(0, 4))}`;
  console.log(`# ${what}: keep-alive ${show(r.keep)}; new connection per request ${show(r.fresh)}; old sidecar died → new started: ${gapMs.toFixed(0)} ms; processes listening on the port over time: ${r.listening.join(' → ')}`);
  assert.ok(died && started, `events: ${JSON.stringify(r.events.map((e) => [e.action, e.id.slice(0, 12)]))}`);
  assert.ok(died.at < started.at, 'compose stopped the old sidecar before starting the new one (never side by side)');
  assert.ok(Math.max(...r.listening) <= 1, `never two listeners on the port: ${r.listening.join(' → ')}`);
  assert.equal(r.keep.failures.length, r.afterKeep, 'nothing failed on keep-alive connections once the new sidecar served');
  assert.equal(r.fresh.failures.length, r.afterFresh, 'nothing failed on new connections once the new sidecar served');
  // What fails is the connection (refused, reset: status 0), or Envoy's own 503 for a request cut mid-way.
  for (const f of [...r.keep.failures, ...r.fresh.failures]) assert.ok(f.status === 0 || f.status === 503, JSON.stringify(f));
}

before(async () => {
  cpSync(join(ROOT, 'templates'), templatesDir, { recursive: true });
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
  await putDocs(etcd, prefix, trafficMesh(base, node, { weights: { v1: 50, v2: 50 } }));
  agent = await startLocalAgent({ node, etcdUrl: etcdServer.url, prefix, stateDir, xdsPort: await freePort(), base, templatesDir });
  await waitFor('both versions answering through web\'s sidecar', async () => {
    const t = await requests(proxy, 100);
    return t.ok === 100 && (t.byVersion.v1 ?? 0) > 0 && (t.byVersion.v2 ?? 0) > 0;
  }, 120_000, 200);
});

after(async () => {
  await stopLoads();
  await agent?.stop();
  composeDown(node, stateDir);
  etcd?.close();
  await etcdServer?.stop();
});

test('the base bootstrap template changes: the agent has compose recreate the sidecars (apps untouched); requests fail only during the swap', async () => {
  const ids = await containerIds(node);
  const file = join(templatesDir, 'envoy-bootstrap.yaml');
  const r = await underLoad(async () => {
    writeFileSync(file, readFileSync(file, 'utf8').replace('max_active_downstream_connections: 50000', 'max_active_downstream_connections: 40000'));
  });
  check('agent recreates web\'s sidecar', r);
  const now = await containerIds(node);
  for (const app of ['api-v1', 'api-v2', 'web-v1']) assert.equal(now[app], ids[app], `${app} untouched`);
  for (const sc of ['api-v1-envoy', 'api-v2-envoy', 'web-v1-envoy']) assert.notEqual(now[sc], ids[sc], `${sc} recreated`);
  const dump = await (await fetch(`http://127.0.0.1:${adminPort(stateDir, 'web-v1')}/config_dump`)).text();
  assert.match(dump, /40000/, 'the new sidecar runs the new bootstrap');
  assert.equal((await requests(proxy, 200)).ok, 200);
});

test('compose alone force-recreates web\'s sidecar: the same picture', async () => {
  const r = await underLoad(async () => {
    execFileSync('docker-compose', ['-p', project, '-f', join(stateDir, 'compose/docker-compose.yml'), 'up', '-d', '--no-deps', '--force-recreate', 'web-v1-envoy'], { stdio: 'pipe', env: process.env });
  });
  check('docker-compose up --force-recreate web-v1-envoy', r);
  assert.equal((await requests(proxy, 200)).ok, 200);
});
