// Long fuzzing run of the document invariants (the unit suite runs a bounded number of the same cases):
//   node dist/scripts/fuzz.js --seconds 300 [--seed N]
// Alternates valid sets (accepted, render, strict Envoy check, deterministic in any document order) and
// mutated ones (never a throw, well-formed one-line issues; still-accepted ones render and pass too).
// Prints one JSON line per kind: {"name":"fuzz …","unit":"cases/s","value":…,"n":…}. On a failure it
// prints fast-check's report (seed, path, shrunk counterexample) and exits 1.
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import { loadTemplates } from '../agent/adapters/files/templates.js';
import { meshCase, mutatedCase, toYamlText } from '../test/helpers/doc-arbitraries.js';
import { checkSet, shuffle, shuffleKeys } from '../test/helpers/fuzz-checks.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '60' }, seed: { type: 'string' } } });
const seconds = Number(values.seconds);
const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 2 ** 31;
const templates = await loadTemplates();

const valid = fc.property(meshCase, fc.integer({ min: 1, max: 2 ** 31 - 1 }), (c, s) => {
  const a = checkSet([{ source: 'fuzz.yaml', text: toYamlText(c.docs) }], c.node, c.instances, templates);
  if (a.issues.length > 0) throw new Error(`a generated valid set is refused: ${a.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
  const b = checkSet([{ source: 'other.yaml', text: toYamlText(shuffle(c.docs, s).map((d, i) => shuffleKeys(d, s + i))) }], c.node, shuffle(c.instances, s), templates);
  for (const [name, text] of a.files!) if (b.files!.get(name) !== text) throw new Error(`${name} differs with the documents in another order`);
});
const mutated = fc.property(mutatedCase, (c) => {
  checkSet(c.files, c.node, [], templates);
});

// Slices of 2 s per kind, each with its own seed (printed on failure), until the time is up.
const stats = { valid: { n: 0, ms: 0 }, mutated: { n: 0, ms: 0 } };
const end = Date.now() + seconds * 1000;
for (let round = 0; Date.now() < end; round++) {
  for (const [kind, prop] of [['valid', valid], ['mutated', mutated]] as const) {
    const start = performance.now();
    const runSeed = (seed + round * 2 + (kind === 'valid' ? 0 : 1)) % 2 ** 31;
    const out = fc.check(prop as fc.IRawProperty<unknown>, { seed: runSeed, numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: 2000, markInterruptAsFailure: false, includeErrorInReport: true }) as fc.RunDetails<unknown>;
    stats[kind].ms += performance.now() - start;
    stats[kind].n += out.numRuns;
    if (out.failed) {
      console.error(fc.defaultReportMessage(out));
      process.exit(1);
    }
  }
}
for (const [kind, s] of Object.entries(stats)) {
  console.log(JSON.stringify({ name: `fuzz ${kind} document sets (parse, validate, render, strict Envoy check)`, unit: 'cases/s', value: Math.round((s.n / s.ms) * 1000 * 10) / 10, n: s.n, seed }));
}
