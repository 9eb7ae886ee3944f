// Every rendered compose file is accepted by the real docker-compose (`config -q`), for every fixture node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ROOT, tempDir } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';

for (const node of ['node-a', 'node-b', 'node-c', 'node-z']) {
  test(`docker-compose config accepts the project rendered for ${node}`, async () => {
    const out = join(tempDir(), 'out');
    const r = await runCli(['render', '-f', join(ROOT, 'fixtures/bookinfo/services.yaml'), '-f', join(ROOT, 'fixtures/bookinfo/routes.yaml'), '--node', node, '--out', out]);
    assert.equal(r.code, 0, r.err);
    const file = join(out, 'docker-compose.yml');
    execFileSync('docker-compose', ['-f', file, '-p', `meshlet-${node}`, 'config', '-q'], { stdio: 'pipe' });
    const normalized = parse(execFileSync('docker-compose', ['-f', file, '-p', `meshlet-${node}`, 'config'], { encoding: 'utf8' }));
    const services = Object.entries(normalized.services as Record<string, { network_mode: string; labels: Record<string, string> }>);
    assert.ok(services.length >= 2, 'ratings runs on every node, with its sidecar');
    for (const [name, svc] of services) {
      assert.equal(svc.network_mode, 'host', name);
      assert.equal(svc.labels['meshlet.node'], node, name);
    }
  });
}

test('docker-compose config refuses a broken file (the check above can fail)', () => {
  const dir = tempDir();
  const file = join(dir, 'docker-compose.yml');
  execFileSync('sh', ['-c', `printf 'version: "2.4"\\nservices:\\n  a:\\n    image: x\\n    network_mode: host\\n    bogus_key: 1\\n' > ${file}`]);
  assert.throws(() => execFileSync('docker-compose', ['-f', file, 'config', '-q'], { stdio: 'pipe' }));
});
