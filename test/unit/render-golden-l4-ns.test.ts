// Fixture in, Envoy resources out, for namespaced/FQDN hosts (fixtures/namespaces) and tcp/tls routes
// (fixtures/l4): each sidecar's xDS resources on node-a. Only the xDS files are golden here (bookinfo's
// golden covers compose files and bootstraps). UPDATE_GOLDEN=1 rewrites fixtures/<set>/expected/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, fixture, tempDir } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';
import { validateEnvoy } from '../../agent/envoy-proto/envoy-validator.js';

process.chdir(ROOT);
const TYPES: Record<string, string> = {
  listeners: 'envoy.config.listener.v3.Listener',
  routes: 'envoy.config.route.v3.RouteConfiguration',
  clusters: 'envoy.config.cluster.v3.Cluster',
  endpoints: 'envoy.config.endpoint.v3.ClusterLoadAssignment',
};

async function renderXds(set: string): Promise<string> {
  const out = join(tempDir(), 'out');
  const r = await runCli(['render', '-f', `fixtures/${set}/mesh.yaml`, '--instances', `fixtures/${set}/instances.yaml`, '--node', 'node-a', '--out', out]);
  assert.equal(r.code, 0, r.err);
  return join(out, 'xds');
}

for (const set of ['namespaces', 'l4']) {
  test(`${set}: every sidecar's xDS resources on node-a are the expected ones`, async () => {
    const got = await renderXds(set);
    const expected = fixture(set, 'expected');
    if (process.env.UPDATE_GOLDEN === '1') {
      rmSync(expected, { recursive: true, force: true });
      mkdirSync(expected, { recursive: true });
      cpSync(got, expected, { recursive: true });
    }
    const files = readdirSync(got).sort();
    assert.deepEqual(files, readdirSync(expected).sort(), 'the set of files');
    for (const f of files) assert.equal(readFileSync(join(got, f), 'utf8'), readFileSync(join(expected, f), 'utf8'), f);
  });

  test(`${set}: every resource passes the strict check against Envoy's protos`, async () => {
    const got = await renderXds(set);
    let checked = 0;
    for (const f of readdirSync(got)) {
      const dump = JSON.parse(readFileSync(join(got, f), 'utf8'));
      for (const [key, type] of Object.entries(TYPES)) {
        for (const doc of dump[key]) {
          assert.deepEqual(validateEnvoy(type, doc), [], `${f} ${key}`);
          checked++;
        }
      }
    }
    assert.ok(checked >= 10, `checked ${checked}`);
  });
}
