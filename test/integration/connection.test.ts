// The etcd connection of every CLI command: an unreachable etcd is a quick exit 4, credentials are used,
// and the password shows up nowhere, whatever goes wrong.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { runCli, type CliResult } from '../helpers/cli.js';
import { freePort, makeCerts, startEtcd, uniquePrefix, type TestEtcd } from '../helpers/etcd.js';
import { fixture, tempDir } from '../helpers/paths.js';

const SERVICES = fixture('bookinfo', 'services.yaml');
const PASSWORD = 'Pa55-w0rd-never-printed';

const COMMANDS: string[][] = [
  ['apply', '-f', SERVICES],
  ['apply', '-f', SERVICES, '--dry-run'],
  ['get', 'services'],
  ['get', 'nodes', '-o', 'json'],
  ['delete', 'service', 'reviews'],
  ['route', 'reviews', '--weights', 'v1=50,v2=50'],
  ['promote', 'reviews', 'v2'],
  ['rollback', 'reviews'],
];

function assertNoPassword(res: CliResult): void {
  assert.ok(!res.out.includes(PASSWORD) && !res.err.includes(PASSWORD), `the password was printed:\n${res.out}\n${res.err}`);
}

/** Runs with MESHLET_ETCD_PASSWORD set, as an operator would. */
async function withPasswordEnv<T>(fn: () => Promise<T>): Promise<T> {
  process.env.MESHLET_ETCD_PASSWORD = PASSWORD;
  try {
    return await fn();
  } finally {
    delete process.env.MESHLET_ETCD_PASSWORD;
  }
}

describe('etcd unreachable', () => {
  for (const args of COMMANDS) {
    test(`meshlet ${args.join(' ')}: exit 4 "cannot reach etcd" within a few seconds, no stack trace`, async () => {
      const port = await freePort();
      const started = Date.now();
      const res = await runCli([...args, '--etcd', `http://127.0.0.1:${port}`, '--etcd-user', 'root', '--etcd-password', PASSWORD]);
      const took = Date.now() - started;
      assert.equal(res.code, 4, res.err);
      assert.match(res.err, new RegExp(`^error: cannot reach etcd at http://127\\.0\\.0\\.1:${port} \\(`));
      assert.doesNotMatch(res.err, /\n\s+at /, 'no stack trace');
      assert.ok(took < 5_000, `took ${took} ms`);
      assertNoPassword(res);
    });
  }

  test('bad input is exit 2 even when etcd is away: its own problems, and that it was not checked against etcd', async () => {
    const port = await freePort();
    const res = await runCli(['apply', '-f', fixture('bad', 'unknown-field.yaml'), '--etcd', `http://127.0.0.1:${port}`]);
    assert.equal(res.code, 2, res.err);
    const lines = res.err.split('\n');
    assert.equal(lines[0], `error: 1 problem found; nothing was written (the documents were not checked against etcd: cannot reach etcd at http://127.0.0.1:${port}):`);
    assert.match(lines[1]!, /unknown-field\.yaml: Service "reviews" \(document 1\): spec\.prot: unknown field/);
    assert.equal(lines.length, 2);
  });

  test('bad connection flags are exit 2 and never echo a password written into the URL', async () => {
    const res = await runCli(['get', 'services', '--etcd', `http://root:${PASSWORD}@127.0.0.1:2379,ftp://x`]);
    assert.equal(res.code, 2);
    assert.match(res.err, /--etcd: http:\/\/root:\*\*\*@127\.0\.0\.1:2379\/?: give credentials with --etcd-user and --etcd-password/);
    assert.match(res.err, /--etcd: expected an http:\/\/ or https:\/\/ URL/);
    assertNoPassword(res);
  });
});

describe('etcd with authentication', () => {
  let etcd: TestEtcd;
  before(async () => {
    etcd = await startEtcd();
    const ctl = (...args: string[]) => promisify(execFile)('etcdctl', ['--endpoints', etcd.url, ...args], { env: { ...process.env, ETCDCTL_API: '3' } });
    await ctl('user', 'add', `root:${PASSWORD}`);
    await ctl('role', 'add', 'root');
    await ctl('user', 'grant-role', 'root', 'root');
    await ctl('auth', 'enable');
  });
  after(async () => {
    await etcd?.stop();
  });

  test('the right password (from MESHLET_ETCD_PASSWORD) works for every command, and is never printed', async () => {
    const prefix = uniquePrefix();
    await withPasswordEnv(async () => {
      for (const args of [['apply', '-f', SERVICES], ['get', 'services', '-o', 'yaml'], ['route', 'reviews', '--weights', 'v1=50,v2=50'], ['promote', 'reviews', 'v2'], ['rollback', 'reviews'], ['delete', 'route', 'reviews']]) {
        const res = await runCli([...args, '--etcd', etcd.url, '--prefix', prefix, '--etcd-user', 'root']);
        assert.equal(res.code, 0, `${args.join(' ')}: ${res.err}`);
        assertNoPassword(res);
      }
    });
  });

  test('a wrong password is exit 2 with a clear message that shows neither password', async () => {
    const wrong = `${PASSWORD}-wrong`;
    const res = await runCli(['get', 'services', '--etcd', etcd.url, '--etcd-user', 'root', '--etcd-password', wrong]);
    assert.equal(res.code, 2, res.err);
    assert.match(res.err, /--etcd-user: etcd at http:\/\/127\.0\.0\.1:\d+ refused the user name or password of user "root"/);
    assert.ok(!res.err.includes(wrong) && !res.out.includes(wrong));
    assertNoPassword(res);
  });

  test('no credentials against an etcd that wants them is a clear error, not a crash', async () => {
    const res = await runCli(['get', 'services', '--etcd', etcd.url]);
    assert.equal(res.code, 2, res.err);
    assert.match(res.err, /--etcd-user: etcd at http:\/\/127\.0\.0\.1:\d+ requires authentication: give --etcd-user and --etcd-password/);
  });
});

describe('etcd over TLS with client certificates', () => {
  let etcd: TestEtcd;
  let certs: Awaited<ReturnType<typeof makeCerts>>;
  before(async () => {
    certs = await makeCerts(tempDir('meshlet-certs-'));
    etcd = await startEtcd({ tls: { ca: certs.ca, ...certs.server, clientCertAuth: true } });
  });
  after(async () => {
    await etcd?.stop();
  });

  test('--etcd-ca, --etcd-cert and --etcd-key reach it', async () => {
    const prefix = uniquePrefix();
    const tls = ['--etcd', etcd.url, '--prefix', prefix, '--etcd-ca', certs.ca, '--etcd-cert', certs.client.cert, '--etcd-key', certs.client.key];
    const applied = await runCli(['apply', '-f', SERVICES, ...tls]);
    assert.equal(applied.code, 0, applied.err);
    const got = await runCli(['get', 'services', 'reviews', '-o', 'json', ...tls]);
    assert.equal(got.code, 0, got.err);
    assert.equal(JSON.parse(got.out)[0].metadata.name, 'reviews');
  });

  test('without a client certificate: a clear exit 4, quickly', async () => {
    const started = Date.now();
    const res = await runCli(['get', 'services', '--etcd', etcd.url, '--etcd-ca', certs.ca]);
    assert.equal(res.code, 4, res.err);
    assert.match(res.err, /^error: cannot reach etcd at https:\/\/127\.0\.0\.1:\d+ \(/);
    assert.ok(Date.now() - started < 5_000);
  });
});
