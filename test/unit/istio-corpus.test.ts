// The Istio corpus: real VirtualService and DestinationRule documents from Istio's samples and documentation
// (fixtures/istio-corpus/, each file naming its source), validated with the Services they need the way
// `meshlet validate` does. Every document is accepted (and reaches the desired state) or refused by a path
// inside it, never ignored; each outcome is the one recorded in expected.yaml. `UPDATE_CORPUS=1` records
// the current outcomes instead (the invariants are still checked), for review when features land.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DocOutcome, ServiceIssue } from '../helpers/istio-corpus.js';
import { at } from '../../agent/core/documents/reader.js';
import {
  SERVICES, UNKNOWN_FIELD, corpusFiles, documentsOf, fixedFieldMappings, source, validateFile, validateServices, withUnknownField,
} from '../helpers/istio-corpus.js';
import { differences, readExpected, writeExpected } from '../helpers/istio-corpus-expected.js';
import { refusalsByReason } from '../helpers/istio-corpus-reasons.js';

const UPDATE = process.env.UPDATE_CORPUS === '1';
const services = source(SERVICES);
const files = corpusFiles();

/** Every corpus file validated once; shared by the tests below. */
const runs = files.map((file) => ({ file, ...validateFile(file, services) }));
const outcomes: DocOutcome[] = runs.flatMap((r) => r.outcomes);
const alone = validateServices(services);

test('the corpus is large enough to mean something: 60 documents or more, from samples and from the docs', () => {
  assert.ok(outcomes.length >= 60, `${outcomes.length} documents`);
  assert.ok(outcomes.some((o) => o.file.startsWith('istio-samples/')) && outcomes.some((o) => o.file.startsWith('istio-docs/')));
  for (const o of outcomes) assert.ok(o.kind === 'VirtualService' || o.kind === 'DestinationRule', `${o.file}#${o.index} is a ${o.kind}`);
});

test('every document is accepted into the desired state or refused by a path inside it; none is ignored', () => {
  const breaches = runs.flatMap((r) => r.breaches).map((b) => `${b.file}: ${b.problem}`);
  assert.deepEqual(breaches, []);
  for (const r of runs) {
    const counted = documentsOf(source(r.file).text).length;
    assert.equal(r.outcomes.length, counted, `${r.file}: an outcome for each of its ${counted} documents`);
  }
});

test('services.yaml has the same problems in every run as on its own (the corpus files do not change them)', () => {
  const strip = (list: readonly ServiceIssue[]) => list.map((i) => `${i.index} ${i.path}: ${i.message}`);
  for (const r of runs) assert.deepEqual(strip(r.services), strip(alone.issues), r.file);
  // A Service refused today is refused by its path (metadata.namespace until Services have namespaces).
  for (const o of alone.outcomes) if (o.outcome === 'refused') assert.ok(o.issues!.some((i) => i.path !== ''), `${SERVICES}#${o.index}`);
});

test('each outcome is the one recorded in expected.yaml', (t) => {
  const accepted = outcomes.filter((o) => o.outcome === 'accepted').length;
  const refused = outcomes.length - accepted;
  const servicesRefused = alone.outcomes.filter((o) => o.outcome === 'refused').length;
  t.diagnostic(`istio corpus: ${outcomes.length} documents in ${files.length} files: ${accepted} accepted, ${refused} refused; services.yaml: ${alone.outcomes.length - servicesRefused} accepted, ${servicesRefused} refused`);
  for (const [reason, docs] of refusalsByReason(outcomes)) t.diagnostic(`  ${String(docs.length).padStart(3)} refused for ${reason}`);
  if (UPDATE) {
    writeExpected(alone.issues, outcomes);
    t.diagnostic('UPDATE_CORPUS=1: expected.yaml rewritten from the current outcomes; review its diff');
    return;
  }
  const expected = readExpected();
  assert.ok(expected, 'fixtures/istio-corpus/expected.yaml is missing: run with UPDATE_CORPUS=1 to record it');
  const diff = differences(expected, outcomes, alone.issues);
  assert.deepEqual(diff, [], `${diff.length} outcome(s) differ from expected.yaml (if a feature changed them on purpose: UPDATE_CORPUS=1, then review the diff)`);
});

test('an accepted document is read strictly: a field added to any of its mappings is refused at that path', (t) => {
  let probes = 0;
  for (const r of runs) {
    const text = source(r.file).text;
    const bodies = new Map(documentsOf(text).map((d) => [d.index, d.body]));
    for (const o of r.outcomes) {
      if (o.outcome !== 'accepted') continue;
      for (const { segments, path } of fixedFieldMappings(bodies.get(o.index))) {
        probes++;
        const where = at(path, UNKNOWN_FIELD);
        const probe = validateFile(r.file, services, withUnknownField(text, o.index, segments));
        assert.deepEqual(probe.breaches, [], `${r.file}#${o.index} with ${where}`);
        const got = probe.outcomes.find((p) => p.index === o.index)!;
        assert.ok(got.outcome === 'refused' && got.issues!.some((i) => i.path === where), `${r.file}#${o.index}: ${where} must be refused by its path, got ${got.outcome} ${JSON.stringify(got.issues ?? [])}`);
      }
    }
  }
  t.diagnostic(`${probes} mappings of accepted documents probed with an added field`);
  assert.ok(probes > 0, 'some accepted document was probed');
});
