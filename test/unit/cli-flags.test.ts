// Bad flags are refused before anything connects or is written: exit 2 and a message naming the flag.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { fixture, tempDir } from '../helpers/paths.js';

// A closed port: had a command tried to connect, it would fail with exit 4, not 2.
const ETCD = ['--etcd', 'http://127.0.0.1:1'];

for (const [name, args, pattern] of [
  ['agent: a node name that is not one', ['agent', '--node', 'Node_A', ...ETCD], /--node: expected a node name/],
  ['agent: an advertise address that is not an IP', ['agent', '--node', 'a', '--advertise-address', 'host.example', ...ETCD], /--advertise-address: expected an IP address, got "host.example"/],
  ['agent: an unknown compose mode', ['agent', '--node', 'a', '--compose', 'v3', ...ETCD], /--compose: expected auto, v1 or v2/],
  ['agent: an etcd URL with a password in it', ['agent', '--node', 'a', '--etcd', 'http://root:secret@127.0.0.1:2379'], /--etcd: .*not in the URL/],
  ['drain: a node name that is not one', ['drain', '--node', '../x', ...ETCD], /--node: expected a node name/],
  ['render: a node name that is not one', ['render', '-f', fixture('bookinfo', 'services.yaml'), '--node', 'UPPER', '--out', '/nonexistent/never'], /--node: expected a node name/],
] as const) {
  test(name, async () => {
    const r = await runCli([...args]);
    assert.equal(r.code, 2, r.err);
    assert.match(r.err, pattern);
    assert.doesNotMatch(r.err, /secret/);
  });
}

test('out-of-range numbers and ranges are refused by the parser', async () => {
  for (const args of [['agent', '--node', 'a', '--xds-port', '70000'], ['agent', '--node', 'a', '--lease-ttl', '1'], ['render', '-f', 'x', '--node', 'a', '--out', 'y', '--admin-ports', '200-100']]) {
    const r = await runCli(args);
    assert.equal(r.code, 2, args.join(' '));
  }
});

test('render with a bad node writes nothing', async () => {
  const out = join(tempDir(), 'out');
  const r = await runCli(['render', '-f', fixture('bookinfo', 'services.yaml'), '--node', 'BAD', '--out', out]);
  assert.equal(r.code, 2);
  assert.equal(existsSync(out), false);
});
