// SIGTERM ends `meshlet agent` within --shutdown-timeout whatever etcd does (issue: with etcd frozen by SIGSTOP
// the agent was still running 120 s later, and granted a new lease meanwhile); a second signal exits at once;
// an agent that is still starting against a frozen etcd stops the same way.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { join } from 'node:path';
import { keys } from '../../agent/core/model/keys.js';
import { startEtcd, freePort, type TestEtcd } from '../helpers/etcd.js';
import { ROOT, tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';

const STANDIN = process.env.MESHLET_TEST_STANDIN_IMAGE ?? 'meshlet-test/envoy-standin:1';
const TIMEOUT_S = 3;
// Each test has a deadline of its own: an agent that never exits must fail the test, not hang the run.
let etcdServer: TestEtcd;

before(async () => {
  etcdServer = await startEtcd();
});

after(async () => {
  await etcdServer?.stop(); // thaws a frozen etcd first
});

const freeze = () => process.kill(etcdServer.pid, 'SIGSTOP');
const thaw = () => process.kill(etcdServer.pid, 'SIGCONT');
const leases = () => execFileSync('etcdctl', [`--endpoints=${etcdServer.url}`, 'lease', 'list'], { env: { ...process.env, ETCDCTL_API: '3' } }).toString().split('\n').slice(1).filter(Boolean).sort();

async function spawnAgent(shutdownTimeout: number) {
  const node = `stop-${Math.random().toString(36).slice(2, 8)}`;
  const k = keys(`/${node}`);
  const args = ['agent', '--node', node, '--etcd', etcdServer.url, '--prefix', k.prefix, '--state-dir', tempDir('meshlet-agent-stop-'), '--advertise-address', '127.0.0.1',
    '--sidecar-image', STANDIN, '--xds-port', String(await freePort()), '--lease-ttl', '4', '--shutdown-timeout', String(shutdownTimeout), '--admin-ports', '15910-15919'];
  const child = spawn(process.execPath, [join(ROOT, 'dist/agent/bin.js'), ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.once('exit', (code) => resolve({ code, at: Date.now() })));
  return { child, k, node, stderr: () => stderr, exited };
}

test(`SIGTERM with etcd frozen: the agent exits within --shutdown-timeout (${TIMEOUT_S} s), code 0, and grants no lease meanwhile`, { timeout: 90_000 }, async () => {
  const a = await spawnAgent(TIMEOUT_S);
  await waitFor('the agent running', () => /"agent started"/.test(a.stderr()) && /xds server listening/.test(a.stderr()), 60_000, 50);
  const before = leases();
  freeze();
  try {
    const t0 = Date.now();
    a.child.kill('SIGTERM');
    const { code, at } = await a.exited;
    const ms = at - t0;
    console.log(`# SIGTERM → exit with etcd frozen: ${ms} ms`);
    assert.equal(code, 0, a.stderr());
    // The timeout, plus room for a loaded machine; without the bound it never exited.
    assert.ok(ms < TIMEOUT_S * 1000 + 4_000, `exited after ${ms} ms`);
    assert.doesNotMatch(a.stderr(), /lease lost; granted a new one/);
  } finally {
    thaw();
  }
  const after = leases();
  assert.ok(after.every((l) => before.includes(l)), `a lease was granted after the stop: before ${before}, after ${after}`);
});

test('a second SIGTERM exits at once, while the first stop still waits for a frozen etcd', { timeout: 90_000 }, async () => {
  const a = await spawnAgent(60);
  await waitFor('the agent running', () => /xds server listening/.test(a.stderr()), 60_000, 50);
  freeze();
  try {
    a.child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    a.child.kill('SIGTERM');
    const { code, at } = await a.exited;
    assert.equal(code, 143, a.stderr());
    assert.ok(at - t0 < 3_000, `exited ${at - t0} ms after the second signal`);
    assert.match(a.stderr(), /received SIGTERM again; exiting now/);
  } finally {
    thaw();
  }
});

test('an agent still starting against a frozen etcd stops within the timeout too', { timeout: 90_000 }, async () => {
  freeze();
  try {
    const a = await spawnAgent(TIMEOUT_S);
    await new Promise((r) => setTimeout(r, 1_500)); // its first etcd calls hang on the frozen server
    const t0 = Date.now();
    a.child.kill('SIGTERM');
    const { code, at } = await a.exited;
    assert.equal(code, 0, a.stderr());
    assert.ok(at - t0 < TIMEOUT_S * 1000 + 4_000, `exited after ${at - t0} ms`);
  } finally {
    thaw();
  }
});
