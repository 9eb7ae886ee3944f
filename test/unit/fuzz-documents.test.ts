// Property-based tests over generated desired-state sets (test/helpers/doc-arbitraries.ts): valid ones must be
// accepted, render, pass the strict Envoy check and render byte-for-byte the same in any document order;
// mutated ones must be refused with well-formed issues, never a throw. A fixed seed keeps the suite
// reproducible; on a failure fast-check prints the seed and path: replay with FUZZ_SEED=<seed> (and FUZZ_PATH).
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import fc from 'fast-check';
import type { Templates } from '../../agent/core/render/render-node.js';
import { loadTemplates } from '../../agent/adapters/files/templates.js';
import { renderFiles } from '../../agent/core/render/render-files.js';
import { contentHash } from '../../agent/core/model/canonical.js';
import { meshCase, mutatedCase, toYamlText } from '../helpers/doc-arbitraries.js';
import { checkSet, shuffle, shuffleKeys } from '../helpers/fuzz-checks.js';
import { runCli } from '../helpers/cli.js';

export const params = (numRuns: number): fc.Parameters<unknown> => ({
  seed: process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 20240611,
  ...(process.env.FUZZ_PATH ? { path: process.env.FUZZ_PATH } : {}),
  numRuns,
  includeErrorInReport: true,
});

let templates: Templates;
before(async () => {
  templates = await loadTemplates();
});

test('generated valid sets are accepted, render, and pass the strict Envoy check', () => {
  fc.assert(fc.property(meshCase, (c) => {
    const files = [{ source: 'fuzz.yaml', text: toYamlText(c.docs) }];
    const out = checkSet(files, c.node, c.instances, templates);
    assert.deepEqual(out.issues.map((i) => `${i.path}: ${i.message}`), [], 'a generated valid set is accepted');
  }), params(150));
});

test('rendering is deterministic, also with documents reordered, split over files and mapping keys reordered', () => {
  // What the code promises: toDesired sorts each kind by name, free-key mappings (versions, env, headers) are
  // read sorted, and YAML mappings are unordered. Lists (routes, matches, destinations) keep their order.
  fc.assert(fc.property(meshCase, fc.integer({ min: 1, max: 2 ** 31 - 1 }), fc.integer({ min: 1, max: 3 }), (c, seed, nFiles) => {
    const files = [{ source: 'fuzz.yaml', text: toYamlText(c.docs) }];
    const a = checkSet(files, c.node, c.instances, templates).files!;
    const again = checkSet(files, c.node, c.instances, templates).files!;
    assert.deepEqual([...again], [...a], 'the same input gives the same bytes');
    const docs = shuffle(c.docs, seed).map((d, i) => shuffleKeys(d, seed + i));
    const split = Array.from({ length: nFiles }, (_, f) => ({ source: `part-${f}.yaml`, text: toYamlText(docs.filter((_, i) => i % nFiles === f)) }))
      .filter((f) => f.text !== '');
    const b = checkSet(split, c.node, shuffle(c.instances, seed), templates).files!;
    assert.deepEqual([...b.keys()], [...a.keys()], 'the same files');
    for (const [name, text] of a) assert.equal(b.get(name), text, `${name} is byte-for-byte the same`);
  }), params(60));
});

test('mutated sets never throw: every issue has a message, a path or the whole document, and one line', () => {
  let refused = 0;
  fc.assert(fc.property(mutatedCase, (c) => {
    // checkSet also renders and strictly checks any mutated set that is still accepted.
    if (checkSet(c.files, c.node, [], templates).issues.length > 0) refused++;
  }), params(250));
  assert.ok(refused > 125, `most mutations are refused (${refused} of 250)`);
});

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? listFiles(join(dir, e.name)) : [join(dir, e.name)]));
}

test('the CLI: validate exits 0 or 2; a refused render writes nothing; an accepted one writes exactly what core renders', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'meshlet-fuzz-'));
  const cases = fc.oneof(mutatedCase, meshCase.map((c) => ({ files: [{ source: 'fuzz.yaml', text: toYamlText(c.docs) }], node: c.node })));
  let n = 0;
  try {
    await fc.assert(fc.asyncProperty(cases, async (c) => {
      const dir = join(tmp, String(n++));
      mkdirSync(dir);
      const paths = c.files.map((f, i) => {
        const p = join(dir, `in-${i}.yaml`);
        writeFileSync(p, f.text);
        return p;
      });
      const sources = paths.map((p) => ({ source: p, text: readFileSync(p, 'utf8') })); // as the CLI reads them
      const outcome = checkSet(sources, c.node, [], templates);
      const v = await runCli(['validate', ...paths.flatMap((p) => ['-f', p])]);
      const out = join(dir, 'out');
      const r = await runCli(['render', ...paths.flatMap((p) => ['-f', p]), '--node', c.node, '--out', out]);
      if (outcome.issues.length > 0) {
        assert.equal(r.code, 2, `render of a refused set exits 2:\n${r.err}`);
        assert.equal(existsSync(out), false, 'a refused render leaves no out dir');
        assert.deepEqual(readdirSync(dir).sort(), paths.map((p) => relative(dir, p)).sort(), 'nor anything beside it');
        const lines = r.err.split('\n');
        assert.match(lines[0]!, /^error: \d+ problems? found:$/);
        for (const l of lines.slice(1)) assert.ok(l.startsWith('  - '), `one line per issue, got ${JSON.stringify(l.slice(0, 200))}`);
        // validate checks every node the set names and "any other node", which covers render's --node.
        assert.equal(v.code, 2, `validate of a refused set exits 2:\n${v.err}`);
      } else {
        assert.equal(v.code, 0, `validate of an accepted set exits 0:\n${v.err}`);
        assert.equal(r.code, 0, `render of an accepted set exits 0:\n${r.err}`);
        const header = `${paths.join(', ')} (sha256 ${contentHash(sources.map((s) => s.text).join('\0'))}) for node ${c.node}`;
        const want = renderFiles(outcome.render!, header);
        const got = listFiles(out).map((p) => relative(out, p)).sort();
        assert.deepEqual(got, [...want.keys()]);
        for (const [name, text] of want) assert.equal(readFileSync(join(out, name), 'utf8'), text, name);
      }
      rmSync(dir, { recursive: true, force: true });
    }), params(40));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});
