// `meshlet agent` refused at start leaves nothing behind: a state dir that did not exist is not created (nor its
// parents), an existing one keeps its content and mode; a start that fails after the claim removes what it made.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { keys } from '../../agent/core/model/keys.js';
import { EXIT } from '../../agent/cli.js';
import { startEtcd, freePort, type TestEtcd } from '../helpers/etcd.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';

let etcdServer: TestEtcd;
let etcd: Etcd3;

before(async () => {
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
});

after(async () => {
  etcd?.close();
  await etcdServer?.stop();
});

interface Node {
  node: string;
  k: ReturnType<typeof keys>;
}

function newNode(): Node {
  const node = `refused-${Math.random().toString(36).slice(2, 8)}`;
  return { node, k: keys(`/${node}`) };
}

const agentArgs = (n: Node, stateDir: string, xdsPort: number, extra: string[] = []) =>
  ['agent', '--node', n.node, '--etcd', etcdServer.url, '--prefix', n.k.prefix, '--state-dir', stateDir, '--advertise-address', '127.0.0.1', '--xds-port', String(xdsPort), '--lease-ttl', '30', ...extra];

/** The node claimed by another live agent (its lease kept alive) until `release` is called. */
async function claimedElsewhere(n: Node): Promise<{ release(): Promise<void> }> {
  const other = etcd.lease(30, { autoKeepAlive: true });
  other.on('lost', () => {});
  const id = await other.grant();
  await etcd.put(n.k.nodeOwner(n.node)).value(JSON.stringify({ node: n.node, host: 'host-b', pid: 4242, lease: id })).lease(id).exec();
  return { release: () => other.revoke().then(() => {}) };
}

/** Every entry under `dir`: path → mode and content (folders: mode only), to compare before and after. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p);
      out[p.slice(dir.length)] = `${(st.mode & 0o777).toString(8)} ${st.isDirectory() ? '(dir)' : readFileSync(p, 'utf8')}`;
      if (st.isDirectory()) walk(p);
    }
  };
  out['.'] = (statSync(dir).mode & 0o777).toString(8);
  walk(dir);
  return out;
}

test('node claimed by another live agent: exit 3 naming it; the state dir (and its parents) were never created', async () => {
  const n = newNode();
  const root = tempDir('meshlet-refused-');
  const stateDir = join(root, 'var', 'lib', 'meshlet');
  const claim = await claimedElsewhere(n);
  try {
    const r = await runCli(agentArgs(n, stateDir, await freePort()));
    assert.equal(r.code, EXIT.conflict, r.err);
    assert.match(r.err, new RegExp(`node ${n.node} is already run by another agent \\(pid 4242 on host host-b`));
    assert.equal(existsSync(join(root, 'var')), false, `nothing under ${root}: ${readdirSync(root).join(', ')}`);
  } finally {
    await claim.release();
  }
});

test('node claimed by another live agent: an existing state dir keeps its files, their content and the modes', async () => {
  const n = newNode();
  const stateDir = tempDir('meshlet-refused-existing-');
  chmodSync(stateDir, 0o755);
  mkdirSync(join(stateDir, 'compose'));
  writeFileSync(join(stateDir, 'compose', 'docker-compose.yml'), '# from the last run\n');
  writeFileSync(join(stateDir, 'state.json'), JSON.stringify({ node: n.node, leaseId: '12345', adminPorts: { 'web-v1': 15000 } }), { mode: 0o600 });
  const before = snapshot(stateDir);
  const claim = await claimedElsewhere(n);
  try {
    const r = await runCli(agentArgs(n, stateDir, await freePort()));
    assert.equal(r.code, EXIT.conflict, r.err);
    assert.deepEqual(snapshot(stateDir), before);
  } finally {
    await claim.release();
  }
});

test('bad flags: exit 2 naming them; no state dir', async () => {
  const n = newNode();
  const root = tempDir('meshlet-refused-flags-');
  const stateDir = join(root, 'state');
  const r = await runCli(agentArgs({ ...n, node: 'Bad_Node' }, stateDir, await freePort(), ['--advertise-address', 'not-an-ip']));
  assert.equal(r.code, EXIT.invalid, r.err);
  assert.match(r.err, /--node/);
  assert.match(r.err, /--advertise-address/);
  assert.deepEqual(readdirSync(root), []);
});

test('a start that fails after the claim (the xDS port taken): exit 3; the state dir it made is removed again, an existing one is kept', async () => {
  const n = newNode();
  const xdsPort = await freePort();
  const taken = await new Promise<Server>((resolve, reject) => {
    const srv = createServer().once('error', reject);
    srv.listen(xdsPort, '127.0.0.1', () => resolve(srv));
  });
  try {
    const root = tempDir('meshlet-refused-xds-');
    const r = await runCli(agentArgs(n, join(root, 'state'), xdsPort));
    assert.equal(r.code, EXIT.conflict, r.err);
    assert.match(r.err, new RegExp(`cannot serve xDS on 127\\.0\\.0\\.1:${xdsPort}`));
    assert.deepEqual(readdirSync(root), [], 'the state dir made for this start is gone');

    const existing = tempDir('meshlet-refused-xds-existing-');
    mkdirSync(join(existing, 'compose'));
    const again = await runCli(agentArgs(n, existing, xdsPort));
    assert.equal(again.code, EXIT.conflict, again.err);
    assert.deepEqual(readdirSync(existing), ['compose'], 'a state dir that was there stays');
  } finally {
    await new Promise((r) => taken.close(r));
  }
});
