// `meshlet status` with real Envoy sidecars run by the agent as compose containers: each sidecar's xDS state and
// admin address, a NACK from Envoy (the last good version keeps serving, nothing is re-sent), and an Envoy that
// exits at start (exit code and log tail). Loopback traffic only.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import { projectName } from '../../agent/core/model/ids.js';
import { TYPE, type Json } from '../../agent/core/xds/envoy-types.js';
import type { XdsResources } from '../../agent/core/xds/build-xds.js';
import { startEtcd, type TestEtcd, freePort } from '../helpers/etcd.js';
import { ROOT, tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { runCli } from '../helpers/cli.js';
import { oneLine } from '../../agent/commands/status.js';
import { localMesh, putDocs, randomPortBase } from '../helpers/local-mesh.js';

// The real Envoy: this file is about what a real sidecar reports.
const SIDECAR = process.env.MESHLET_TEST_SIDECAR_IMAGE ?? 'meshlet-test/envoy:1.40.0';
const xdsPort = await freePort();
const node = `st-${Math.random().toString(36).slice(2, 8)}`;
const project = projectName(node);
const prefix = `/e2e-${node}`;
const base = randomPortBase();
const stateDir = tempDir('meshlet-sidecar-status-');
// A copy of templates/ the last test breaks on purpose (the agent watches it).
const templatesDir = tempDir('meshlet-templates-');
cpSync(join(ROOT, 'templates'), templatesDir, { recursive: true });
const webId = `sidecar~${node}~web-v1`;
let etcdServer: TestEtcd;
let etcd: Etcd3;
let agent: RunningAgent;

interface Sidecar { id: string; workload?: string; admin?: string; connected: boolean; acked: Record<string, string>; nack?: { type: string; version: string; message: string } }
interface Down { composeService: string; state: string; exitCode?: number; restarts: number; logTail: string[] }

async function status(): Promise<{ sidecars: Sidecar[]; containers: Down[] }> {
  const r = await runCli(['status', '--etcd', etcdServer.url, '--prefix', prefix, '-o', 'json']);
  assert.equal(r.code, 0, r.err);
  return JSON.parse(r.out).nodes.find((n: { node: string }) => n.node === node);
}

async function admin(sidecar: Sidecar, path: string): Promise<string> {
  const res = await fetch(`http://${sidecar.admin}${path}`, { signal: AbortSignal.timeout(5000) });
  assert.equal(res.status, 200, path);
  return res.text();
}

async function stat(sidecar: Sidecar, name: string): Promise<number> {
  const body = JSON.parse(await admin(sidecar, `/stats?format=json&filter=${encodeURIComponent(`^${name}$`)}`)) as { stats: { name: string; value: number }[] };
  return body.stats.find((s) => s.name === name)?.value ?? 0;
}

before(async () => {
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
  agent = await startAgent({
    node, etcd: { endpoints: [etcdServer.url], prefix, retries: 0 }, stateDir, advertiseAddress: '127.0.0.1', xdsPort, compose: 'auto',
    sidecarImage: SIDECAR, templatesDir, leaseTtl: 5, adminPorts: { from: base + 10, to: base + 19 }, resyncInterval: 2,
  }, systemClock, silentLogger, new AbortController().signal);
  await putDocs(etcd, prefix, localMesh(base, node));
});

after(async () => {
  await agent?.stop();
  try {
    execFileSync('docker-compose', ['-p', project, '-f', join(stateDir, 'compose/docker-compose.yml'), 'down', '-t', '1'], { stdio: 'pipe' });
  } catch {
    /* nothing was brought up */
  }
  etcd?.close();
  await etcdServer?.stop();
});

test('meshlet status lists every real sidecar: connected, ACKed cds/eds/lds/rds, and an admin address that answers', async () => {
  // api's sidecars have no upstream: they ACK empty cluster and listener sets and ask for no endpoints or routes.
  const st = await waitFor('three sidecars connected, web\'s with every type ACKed', async () => {
    const s = await status();
    const web = s?.sidecars.find((c) => c.id === webId);
    return s?.sidecars.length === 3 && s.sidecars.every((c) => c.connected && c.acked.cds && c.acked.lds) && web?.acked.eds && web.acked.rds ? s : undefined;
  }, 60_000, 250);
  const ports = (JSON.parse(readFileSync(join(stateDir, 'state.json'), 'utf8')) as { adminPorts: Record<string, number> }).adminPorts;
  assert.deepEqual(st.sidecars.map((c) => [c.workload, c.admin]), Object.entries(ports).sort().map(([w, p]) => [w, `127.0.0.1:${p}`]));
  const web = st.sidecars.find((c) => c.id === webId)!;
  // It is the real Envoy behind that address, holding the listener meshlet sent for web's upstream api.
  assert.match(await admin(web, '/server_info'), /"version": ".*\/1\.40\.0\//);
  assert.match(await admin(web, '/config_dump'), new RegExp(`"port_value": ${base + 3}`));
  // And it carries traffic: web's sidecar → api.
  await waitFor('a call through web\'s sidecar', async () => (await fetch(`http://127.0.0.1:${base + 3}/`)).status === 200 || undefined, 30_000, 250);

  const table = await runCli(['status', '--etcd', etcdServer.url, '--prefix', prefix]);
  const row = table.out.split('\n').find((l) => l.includes(webId));
  assert.ok(row, table.out);
  // Endpoints change as instances register: the versions are checked for shape, the rest exactly.
  const cells = row.split(/\s+/);
  assert.deepEqual(cells.slice(0, 4), [node, webId, 'yes', web.admin]);
  for (const v of cells.slice(4, 8)) assert.match(v, /^[0-9a-f]{8}$/, row);
  assert.equal(cells[8], '-', 'no NACK');
});

test('a listener Envoy refuses (the strict check cannot know: two listeners on one port) shows as a NACK with Envoy\'s message; the last good version keeps serving and the bad one is never re-sent', async () => {
  const before = (await status()).sidecars.find((c) => c.id === webId)!;
  const good = agent.xds.cache.getSnapshot(webId)!;
  const json = (t: keyof typeof good.resources) => [...good.resources[t].values()].map((r) => r.json);
  const [listener] = json(TYPE.listener);
  assert.ok(listener, 'web has a listener for api');
  // Protos, PGV and consistency all allow it; Envoy refuses a second listener on an address already taken.
  const twin: Json = { ...listener, name: `${String(listener.name)}-twin` };
  const bad: XdsResources = { listeners: [listener, twin], routes: json(TYPE.route), clusters: json(TYPE.cluster), endpoints: json(TYPE.endpoint) };
  const restore: XdsResources = { listeners: json(TYPE.listener), routes: json(TYPE.route), clusters: json(TYPE.cluster), endpoints: json(TYPE.endpoint) };
  const set = agent.xds.cache.setSnapshotUncheckedForTests(webId, bad);
  assert.ok(set.ok, JSON.stringify(set));

  const nacked = await waitFor('the NACK in meshlet status', async () => (await status()).sidecars.find((c) => c.id === webId && c.nack), 20_000, 200);
  assert.equal(nacked.nack!.type, 'lds');
  assert.match(nacked.nack!.message, /duplicate address|already/i, nacked.nack!.message);
  assert.equal(nacked.acked.lds, before.acked.lds, 'the ACKed listener version is still the last good one');
  assert.equal(nacked.connected, true);
  const table = await runCli(['status', '--etcd', etcdServer.url, '--prefix', prefix]);
  assert.ok(table.out.split('\n').some((l) => l.includes(`${webId} refused lds ${nacked.nack!.version}`) && l.includes(oneLine(nacked.nack!.message))), table.out);

  // Envoy still runs the good listener: its config dump has the old version and no twin.
  const dump = JSON.parse(await admin(nacked, '/config_dump?resource=dynamic_listeners')) as { configs: { name: string; active_state?: { version_info: string }; error_state?: { details: string } }[] };
  const active = dump.configs.filter((c) => c.active_state);
  assert.deepEqual(active.map((c) => [c.name, c.active_state!.version_info]), [[listener.name, before.acked.lds]]);
  assert.match(dump.configs.find((c) => c.name === twin.name)?.error_state?.details ?? '', /duplicate address/, 'Envoy keeps the refused one as an error only');
  // The good listener still serves. One answer may be a 503 when an api instance's health check flaps on a
  // loaded machine (its endpoints leave the subset), which says nothing about the listener: retry briefly.
  await waitFor('traffic still flows through the last good listener', async () => (await fetch(`http://127.0.0.1:${base + 3}/`)).status === 200 || undefined, 15_000, 250);

  // Not retried in a loop: Envoy counts one rejected LDS update and no further attempts while the agent keeps passing.
  const rejected = await stat(nacked, 'listener_manager.lds.update_rejected');
  const attempts = await stat(nacked, 'listener_manager.lds.update_attempt');
  const passes = agent.reconciler.stats.passes;
  agent.reconciler.triggers.notify('test: a pass while the NACK stands');
  await waitFor('more agent passes', () => agent.reconciler.stats.passes > passes, 10_000);
  await new Promise((r) => setTimeout(r, 3000));
  assert.equal(rejected, 1);
  assert.equal(await stat(nacked, 'listener_manager.lds.update_rejected'), rejected, 'no further rejection');
  assert.equal(await stat(nacked, 'listener_manager.lds.update_attempt'), attempts, 'no further LDS response');

  // A good snapshot again: ACKed, and the NACK leaves the status.
  assert.ok(agent.xds.cache.setSnapshotUncheckedForTests(webId, restore).ok);
  await waitFor('the NACK to clear', async () => {
    const c = (await status()).sidecars.find((x) => x.id === webId)!;
    return !c.nack && c.acked.lds === before.acked.lds;
  }, 20_000, 200);
});

test('an Envoy that exits at start (its bootstrap names a listener address it cannot parse) shows with its exit code and last log lines; fixing the template brings it back', async () => {
  const file = join(templatesDir, 'envoy-bootstrap.yaml');
  const original = readFileSync(file, 'utf8');
  // The protos allow any string as an address; Envoy exits at start with "malformed IP address".
  writeFileSync(file, `${original}
static_resources:
  listeners:
    - name: unparseable
      address: { socket_address: { address: not-an-ip, port_value: ${base + 9} } }
      filter_chains:
        - filters:
            - name: envoy.filters.network.tcp_proxy
              typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy, stat_prefix: x, cluster: none }
`);
  const down = await waitFor('the sidecars to show as down with exit code 1 and Envoy\'s error', async () => {
    const s = await status();
    const sidecars = s.containers.filter((c) => c.composeService.endsWith('-envoy'));
    return sidecars.length === 3 && sidecars.every((c) => c.exitCode === 1 && c.logTail.some((l) => /malformed IP address: not-an-ip/.test(l))) ? sidecars : undefined;
  }, 90_000, 250);
  // Between crashes Docker shows it `running` for a moment: the status keeps it listed with the last exit code.
  for (const c of down) assert.match(c.state, /^(restarting|exited|running)$/, JSON.stringify(c));
  assert.ok(down.every((c) => c.logTail.length <= 10));
  // Compose keeps restarting it (restart: unless-stopped): the count grows, the status follows.
  await waitFor('a restart count', async () => (await status()).containers.some((c) => c.composeService === 'web-v1-envoy' && c.restarts >= 2) || undefined, 60_000, 500);
  const table = await runCli(['status', '--etcd', etcdServer.url, '--prefix', prefix]);
  assert.match(table.out, /^\S+\s+web-v1-envoy\s+(restarting|exited|running)\s+1\s+\d+$/m, table.out);
  assert.match(table.out, /^ {2}web-v1-envoy \| .*malformed IP address: not-an-ip/m, table.out);
  // The apps keep running.
  assert.equal((await fetch(`http://127.0.0.1:${base}/`)).status, 200);

  writeFileSync(file, original);
  await waitFor('the sidecars back, nothing down, all connected', async () => {
    const s = await status();
    return s.containers.length === 0 && s.sidecars.every((c) => c.connected) || undefined;
  }, 90_000, 500);
});
