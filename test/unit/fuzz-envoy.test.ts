// A bounded sample of generated valid sets through the real Envoy: each sidecar's bootstrap passes
// `envoy --mode validate`, and so does a static bootstrap built from its xDS resources (RDS inlined,
// EDS clusters made STATIC), so that Envoy really builds every listener, route and cluster.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toYaml as stringify } from '../../agent/core/render/yaml-emit.js'; // as meshlet writes bootstraps (YAML 1.1 words quoted for Envoy)
import fc from 'fast-check';
import type { Templates } from '../../agent/core/render/render-node.js';
import { loadTemplates } from '../../agent/adapters/files/templates.js';
import { workloadNodeId } from '../../agent/core/model/ids.js';
import { meshCase, toYamlText } from '../helpers/doc-arbitraries.js';
import { checkSet, staticBootstrap } from '../helpers/fuzz-checks.js';
import { validateBootstrap } from '../helpers/envoy.js';

let templates: Templates;
before(async () => {
  templates = await loadTemplates();
});

test('a sample of accepted sets: bootstraps and static bootstraps of the sidecar xDS resources pass envoy --mode validate', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'meshlet-fuzz-envoy-'));
  let validated = 0;
  try {
    await fc.assert(fc.asyncProperty(meshCase.filter((c) => c.docs.some((d) => JSON.stringify(d).includes('"upstreams"'))), async (c) => {
      const out = checkSet([{ source: 'fuzz.yaml', text: toYamlText(c.docs) }], c.node, c.instances, templates);
      assert.ok(out.render, 'a generated valid set is accepted');
      for (const [name, boot] of Object.entries(out.render.bootstraps)) {
        const res = out.render.snapshots[workloadNodeId('sidecar', c.node, name)]!;
        for (const [kind, doc] of [['bootstrap', boot], ['static', staticBootstrap(boot, res)]] as const) {
          const file = join(tmp, `${validated}-${kind}.yaml`);
          writeFileSync(file, stringify(doc));
          const r = await validateBootstrap(file);
          // Envoy names a line of the file: show it, the whole file may be long.
          const line = Number(/at line (\d+)/.exec(r.output)?.[1] ?? 0);
          const near = stringify(doc).split('\n').slice(Math.max(0, line - 3), line + 2).join('\n');
          assert.ok(r.ok, `${kind} bootstrap of ${name} refused by Envoy:\n${r.output.replace(/\{"[^\n]{400,}/g, '{…}').slice(0, 3000)}\n${near}`);
          validated++;
        }
      }
    }), { seed: process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 20240611, numRuns: 10, includeErrorInReport: true, endOnFailure: true });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  assert.ok(validated >= 6, `validated ${validated} bootstraps`);
});
