// The state dir as operators find it: 0700, state.json 0600 (the agent's own), the compose file, last-good
// file and bootstraps 0644 (read by operators and containers), and the etcd password in none of them — the
// agent runs against an etcd with authentication on. Sidecars are the stand-in: only the files matter here.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import { startEtcd, type TestEtcd, freePort } from '../helpers/etcd.js';
import { tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { composeDown } from '../helpers/agent-traffic.js';
import { localMesh, putDocs, randomPortBase } from '../helpers/local-mesh.js';

const STANDIN = process.env.MESHLET_TEST_STANDIN_IMAGE ?? 'meshlet-test/envoy-standin:1';
const PASSWORD = `pw-${Math.random().toString(36).slice(2)}-S3cret`;
const node = `files-${Math.random().toString(36).slice(2, 8)}`;
const prefix = `/f-${node}`;
const base = randomPortBase();
const stateDir = join(tempDir('meshlet-agent-files-'), 'state');
let etcdServer: TestEtcd;
let etcd: Etcd3;
let agent: RunningAgent;

const etcdctl = (...args: string[]) => execFileSync('etcdctl', [`--endpoints=${etcdServer.url}`, ...args], { env: { ...process.env, ETCDCTL_API: '3' }, stdio: 'pipe' }).toString();

before(async () => {
  etcdServer = await startEtcd();
  etcdctl('role', 'add', 'root');
  etcdctl('user', 'add', `root:${PASSWORD}`, '--interactive=false');
  etcdctl('user', 'grant-role', 'root', 'root');
  etcdctl('auth', 'enable');
  etcd = new Etcd3({ hosts: etcdServer.url, auth: { username: 'root', password: PASSWORD } });
  await putDocs(etcd, prefix, localMesh(base, node));
  agent = await startAgent({
    node, etcd: { endpoints: [etcdServer.url], prefix, retries: 0, user: 'root', password: PASSWORD }, stateDir, advertiseAddress: '127.0.0.1',
    xdsPort: await freePort(), compose: 'auto', sidecarImage: STANDIN, leaseTtl: 10, adminPorts: { from: base + 10, to: base + 19 }, resyncInterval: 5,
  }, systemClock, silentLogger, new AbortController().signal);
  await waitFor('the first apply', () => (agent.reconciler.state.appliedRevision ?? 0) > 0 && statSync(join(stateDir, 'compose/docker-compose.last-good.yml'), { throwIfNoEntry: false }), 90_000, 100);
});

after(async () => {
  await agent?.stop();
  composeDown(node, stateDir);
  etcd?.close();
  await etcdServer?.stop();
});

const mode = (path: string) => (statSync(path).mode & 0o777).toString(8);

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)])).sort();
}

test('modes: the state dir 0700, state.json 0600, compose files and bootstraps 0644', () => {
  assert.equal(mode(stateDir), '700');
  assert.equal(mode(join(stateDir, 'state.json')), '600');
  assert.equal(mode(join(stateDir, 'compose/docker-compose.yml')), '644');
  assert.equal(mode(join(stateDir, 'compose/docker-compose.last-good.yml')), '644');
  const boots = readdirSync(join(stateDir, 'envoy'));
  assert.deepEqual(boots.sort(), ['api-v1.yaml', 'api-v2.yaml', 'web-v1.yaml']);
  for (const b of boots) assert.equal(mode(join(stateDir, 'envoy', b)), '644', b);
});

test('the etcd password is in no file the agent wrote, and not in the node status', async () => {
  const all = files(stateDir);
  assert.ok(all.length >= 6, all.join('\n'));
  for (const f of all) assert.ok(!readFileSync(f, 'utf8').includes(PASSWORD), `${f} holds the etcd password`);
  // The status is written after the pass that applied (a CI run read it too early once).
  const status = await waitFor('the node status', async () => (await etcd.get(`${prefix}/nodes/${node}/status`).string()) || undefined, 30_000);
  assert.ok(!status.includes(PASSWORD), 'the node status holds the etcd password');
});
