// Every file in fixtures/bad/ is refused by `meshlet render` and `meshlet validate` with exit code 2,
// a message that names the file, the document, the field path and what was expected, and nothing written.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../agent/cli.js';
import { MAX_FILE_BYTES, parseYamlDocuments } from '../../agent/core/documents/parse-yaml.js';
import type { Issue } from '../../agent/core/model/issues.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BAD = join(ROOT, 'fixtures', 'bad');
const bad = (name: string) => join(BAD, name);
const BOOKINFO_SERVICES = join(ROOT, 'fixtures', 'bookinfo', 'services.yaml');

const temps: string[] = [];
after(async () => {
  for (const t of temps) await rm(t, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'meshlet-bad-'));
  temps.push(dir);
  return dir;
}

interface Run {
  code: number;
  out: string[];
  /** stderr split into lines (a message may hold several). */
  err: string[];
  ms: number;
}

async function run(argv: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const start = performance.now();
  const code = await main(argv, (l) => out.push(l), (l) => err.push(...l.split('\n')));
  return { code, out, err, ms: performance.now() - start };
}

/** `meshlet render -f … --node node-a --out <tmp>/out`; asserts exit 2 and that nothing at all was written. */
async function renderRefused(files: string[]): Promise<Run> {
  const tmp = await tempDir();
  const outDir = join(tmp, 'out');
  const r = await run(['render', ...files.flatMap((f) => ['-f', f]), '--node', 'node-a', '--out', outDir]);
  assert.equal(r.code, 2, `render exit code; stderr:\n${r.err.join('\n')}`);
  assert.equal(existsSync(outDir), false, `${outDir} must not exist after a refused render`);
  assert.deepEqual(readdirSync(tmp), [], 'nothing (not even a staging folder) is written beside --out');
  assert.deepEqual(r.out, [], 'nothing on stdout');
  return r;
}

async function validateRefused(files: string[]): Promise<Run> {
  const r = await run(['validate', ...files.flatMap((f) => ['-f', f])]);
  assert.equal(r.code, 2, `validate exit code; stderr:\n${r.err.join('\n')}`);
  assert.deepEqual(r.out, [], 'nothing on stdout');
  return r;
}

interface Expect {
  /** Where: `<file>: <Kind "name"> (document N): <field path>` — the exact start of the issue line. */
  at: string;
  /** Substrings of the rest of the line: what was expected and what was found. */
  says: string[];
}

/** Asserts the "N problem(s) found" header and that each expected issue is one line of its own. */
function assertIssues(err: string[], expected: Expect[]): void {
  const n = expected.length;
  assert.equal(err[0], `error: ${n} problem${n === 1 ? '' : 's'} found:`, err.join('\n'));
  const lines = err.slice(1);
  assert.equal(lines.length, n, `one line per issue:\n${err.join('\n')}`);
  expected.forEach((e, i) => {
    const line = lines[i]!;
    assert.ok(line.startsWith(`  - ${e.at}: `), `issue ${i + 1} should start with "${e.at}: "; got:\n${line}`);
    for (const s of e.says) assert.ok(line.slice(4 + e.at.length).includes(s), `issue ${i + 1} should say ${JSON.stringify(s)}; got:\n${line}`);
  });
}

interface Case {
  name: string;
  files: string[];
  issues: Expect[];
  /** Extra checks on the render's result. */
  check?: (r: Run) => void;
}

const svc = (file: string, name = 'reviews', doc = 1) => `${bad(file)}: Service "${name}" (document ${doc})`;

const CASES: Case[] = [
  {
    name: 'broken YAML (an unclosed flow sequence)',
    files: [bad('broken-yaml.yaml')],
    issues: [{ at: `${svc('broken-yaml.yaml')}: spec.versions.v1.nodes`, says: ['invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]', 'at line 12, column 1'] }],
  },
  {
    name: 'a YAML alias bomb ("billion laughs") is refused quickly, not expanded',
    files: [bad('alias-bomb.yaml')],
    issues: [{ at: svc('alias-bomb.yaml'), says: ['refused: Excessive alias count indicates a resource exhaustion attack', 'at most 100 aliases'] }],
    check: (r) => assert.ok(r.ms < 2000, `refused in ${r.ms.toFixed(0)} ms`),
  },
  {
    name: 'a duplicate key',
    files: [bad('duplicate-keys.yaml')],
    issues: [{ at: `${svc('duplicate-keys.yaml')}: spec.port`, says: ['invalid YAML: the key is given twice; keys must be unique', 'the second at line 12, column 3'] }],
  },
  {
    name: 'an unknown field (spec.prot)',
    files: [bad('unknown-field.yaml')],
    issues: [{ at: `${svc('unknown-field.yaml')}: spec.prot`, says: ['unknown field', 'did you mean "protocol"', 'expected one of: protocol, port, versions, upstreams, sidecar'] }],
  },
  {
    name: 'a port of 70000',
    files: [bad('port-out-of-range.yaml')],
    issues: [{ at: `${svc('port-out-of-range.yaml')}: spec.port`, says: ['expected a port (an integer) from 1 to 65535, got 70000'] }],
  },
  {
    name: 'a string where a port goes',
    files: [bad('port-string.yaml')],
    issues: [{ at: `${svc('port-string.yaml')}: spec.port`, says: ['expected a port (an integer) from 1 to 65535, got the string "http"'] }],
  },
  {
    name: 'a name with ../',
    files: [bad('name-dot-dot.yaml')],
    issues: [{ at: `${svc('name-dot-dot.yaml', '../etc')}: metadata.name`, says: ['expected a DNS label', 'got the string "../etc"'] }],
  },
  {
    name: 'an upper-case name',
    files: [bad('name-upper-case.yaml')],
    issues: [{ at: `${svc('name-upper-case.yaml', 'Reviews')}: metadata.name`, says: ['expected a DNS label (lower-case letters', 'got the string "Reviews"'] }],
  },
  {
    name: 'a 200-character name (shortened in the message)',
    files: [bad('name-too-long.yaml')],
    issues: [{ at: `${svc('name-too-long.yaml', `${'a'.repeat(60)}...`)}: metadata.name`, says: ['expected at most 63 characters, got 200'] }],
    check: (r) => assert.ok(!r.err.join('\n').includes('a'.repeat(64)), 'the 200-character name is not printed whole'),
  },
  {
    name: 'an env key that is not a variable name (and would inject a line)',
    files: [bad('env-key-injection.yaml')],
    issues: [{ at: `${svc('env-key-injection.yaml')}: spec.versions.v1.env["A B\\nprivileged: true"]`, says: ['expected a variable name (letters, digits and "_", not starting with a digit)', 'got the string "A B\\nprivileged: true"'] }],
    check: (r) => assert.ok(!r.err.some((l) => l.startsWith('privileged')), 'the newline is escaped, not printed'),
  },
  {
    name: 'two versions on one node with the same port',
    files: [bad('same-port-two-versions.yaml')],
    issues: [{ at: `${svc('same-port-two-versions.yaml')}: spec.versions.v2.port`, says: ['port 9082 on node node-a is already taken by Service reviews version v1 (app port)', 'this version uses spec.port'] }],
  },
  {
    name: 'an upstream to an unknown service',
    files: [bad('unknown-upstream.yaml')],
    issues: [{ at: `${svc('unknown-upstream.yaml', 'productpage')}: spec.upstreams[0].service`, says: ['no Service named reviewz', 'did you mean "reviews"'] }],
  },
  {
    name: 'weights adding up to 90',
    files: [bad('weights-not-100.yaml')],
    issues: [{ at: `${bad('weights-not-100.yaml')}: VirtualService "reviews" (document 2): spec.http[0].route`, says: ['expected weights adding up to 100, got 80 + 10 = 90'] }],
  },
  {
    name: 'a route to a subset that does not exist',
    files: [bad('unknown-subset.yaml')],
    issues: [{ at: `${bad('unknown-subset.yaml')}: VirtualService "reviews" (document 2): spec.http[0].route[1].destination.subset`, says: ['Service reviews has no subset v3', 'known subsets: v1, v2'] }],
  },
  {
    name: 'a route to a subset that does not exist, in the second of two files',
    files: [BOOKINFO_SERVICES, bad('route-unknown-subset.yaml')],
    issues: [{ at: `${bad('route-unknown-subset.yaml')}: VirtualService "reviews" (document 1): spec.http[0].route[0].destination.subset`, says: ['Service reviews has no subset v9', 'known subsets: v1, v2, v3'] }],
  },
  {
    name: 'a route regex with JS-only syntax RE2 refuses (a lookahead; Envoy would NACK it)',
    files: [BOOKINFO_SERVICES, bad('regex-lookahead.yaml')],
    issues: [{ at: `${bad('regex-lookahead.yaml')}: VirtualService "reviews" (document 1): spec.http[0].match[0].uri.regex`, says: ['expected a regular expression (RE2 syntax)', 'RE2: invalid perl operator: (?='] }],
  },
  {
    name: 'an unknown apiVersion',
    files: [bad('unknown-api-version.yaml')],
    issues: [{ at: `${svc('unknown-api-version.yaml')}: apiVersion`, says: ['expected meshlet.dev/v1 for kind Service, got the string "meshlet.dev/v2"'] }],
  },
  {
    name: 'an unknown kind',
    files: [bad('unknown-kind.yaml')],
    issues: [{ at: `${bad('unknown-kind.yaml')}: Deployment "reviews" (document 1): kind`, says: ['expected one of Service | VirtualService | DestinationRule, got the string "Deployment"'] }],
  },
  {
    name: 'an empty file',
    files: [bad('empty.yaml')],
    issues: [{ at: bad('empty.yaml'), says: ['no documents found; expected one or more Service, VirtualService or DestinationRule documents'] }],
  },
  {
    name: 'a DestinationRule with trafficPolicy.tls.mode ISTIO_MUTUAL',
    files: [bad('tls-istio-mutual.yaml')],
    issues: [{ at: `${bad('tls-istio-mutual.yaml')}: DestinationRule "reviews" (document 2): spec.trafficPolicy.tls.mode`, says: ['ISTIO_MUTUAL is not supported'] }],
  },
  {
    name: 'a proxy upstream localPort that clashes with an app port on the same node',
    files: [bad('local-port-clash.yaml')],
    issues: [{ at: `${svc('local-port-clash.yaml', 'productpage')}: spec.upstreams[0].localPort`, says: ['port 9082 on node node-a is already taken by Service reviews version v1 (app port)'] }],
  },
  {
    name: 'an app port equal to the agent\'s xDS port 15010',
    files: [bad('xds-port-clash.yaml')],
    issues: [{ at: `${svc('xds-port-clash.yaml')}: spec.versions.v1.port`, says: ['port 15010 on node node-a is already taken by the agent\'s xDS server (--xds-port)', 'this version uses spec.port'] }],
  },
  {
    name: 'a file with several errors: all four are reported together',
    files: [bad('several-errors.yaml')],
    issues: [
      { at: `${svc('several-errors.yaml')}: spec.prot`, says: ['unknown field', 'did you mean "protocol"'] },
      { at: `${svc('several-errors.yaml')}: spec.port`, says: ['expected a port (an integer) from 1 to 65535, got 70000'] },
      { at: `${svc('several-errors.yaml', 'Ratings', 2)}: metadata.name`, says: ['expected a DNS label', 'got the string "Ratings"'] },
      { at: `${svc('several-errors.yaml', 'Ratings', 2)}: spec.port`, says: ['expected a port (an integer) from 1 to 65535, got the string "http"'] },
    ],
  },
  // A document with a problem of its own is still checked against the set, as far as it could be read.
  {
    name: 'weights adding up to 90 and a subset that does not exist, in one route: both are reported (issue 10)',
    files: [bad('weights-and-missing-subset.yaml')],
    issues: [
      { at: `${bad('weights-and-missing-subset.yaml')}: VirtualService "reviews" (document 2): spec.http[0].route`, says: ['expected weights adding up to 100, got 80 + 10 = 90'] },
      { at: `${bad('weights-and-missing-subset.yaml')}: VirtualService "reviews" (document 2): spec.http[0].route[1].destination.subset`, says: ['Service reviews has no subset v3', 'known subsets: v1, v2'] },
    ],
  },
  {
    name: 'an unknown field and an upstream to an unknown service, in one Service: both are reported',
    files: [bad('unknown-field-and-upstream.yaml')],
    issues: [
      { at: `${svc('unknown-field-and-upstream.yaml', 'productpage')}: spec.prot`, says: ['unknown field', 'did you mean "protocol"'] },
      { at: `${svc('unknown-field-and-upstream.yaml', 'productpage')}: spec.upstreams[0].service`, says: ['no Service named reviewz', 'did you mean "reviews"'] },
    ],
  },
  {
    name: 'two documents with one problem each, one its own and one with the set: both are reported, in document order',
    files: [bad('two-bad-documents.yaml')],
    issues: [
      { at: `${svc('two-bad-documents.yaml', 'ratings')}: spec.versions.v1.image`, says: ['expected an image reference', 'got the string "registry.local/bookinfo/ratings 1.0"'] },
      { at: `${bad('two-bad-documents.yaml')}: VirtualService "reviews" (document 3): spec.http[0].route[0].destination.subset`, says: ['Service reviews has no subset v9', 'known subsets: v1'] },
    ],
  },
  {
    name: 'a Service with a bad port and a route to it: the route says once that reviews is not valid, and its own problem is still found',
    files: [bad('bad-port-and-route.yaml')],
    issues: [
      { at: `${svc('bad-port-and-route.yaml')}: spec.port`, says: ['expected a port (an integer) from 1 to 65535, got 70000'] },
      { at: `${bad('bad-port-and-route.yaml')}: VirtualService "reviews" (document 2): spec.hosts[0]`, says: [`Service reviews is not valid: see the problems listed for ${svc('bad-port-and-route.yaml')}`] },
      { at: `${bad('bad-port-and-route.yaml')}: VirtualService "reviews" (document 2): spec.http[0].route[2].destination.subset`, says: ['Service reviews has no subset v3', 'known subsets: v1, v2'] },
    ],
  },
  {
    name: 'a DestinationRule with a problem of its own and one with the set, and a route to its subsets',
    files: [bad('bad-rule-and-route.yaml')],
    issues: [
      { at: `${bad('bad-rule-and-route.yaml')}: DestinationRule "reviews" (document 2): spec.trafficPolicy.loadBalancer.simple`, says: ['expected one of ROUND_ROBIN', 'got the string "ROUND_ROBBIN"'] },
      { at: `${bad('bad-rule-and-route.yaml')}: DestinationRule "reviews" (document 2): spec.subsets[1].labels.version`, says: ['Service reviews has no version v9 (it has v1)'] },
      {
        at: `${bad('bad-rule-and-route.yaml')}: VirtualService "reviews" (document 3): spec.http[0].route[0].destination.subset`,
        says: [`the subsets of Service reviews come from a DestinationRule that is not valid: see the problems listed for ${bad('bad-rule-and-route.yaml')}: DestinationRule "reviews" (document 2)`],
      },
    ],
  },
  {
    name: 'several documents failing in one file, namespace clashes among them: every problem, each document\'s together',
    files: [bad('namespaces-and-l4.yaml')],
    issues: [
      { at: `${bad('namespaces-and-l4.yaml')}: Service "reviews" (document 2): metadata.name`, says: ['also defined in namespace prod', 'so a name is unique across namespaces'] },
      { at: `${bad('namespaces-and-l4.yaml')}: Service "store" (document 3): metadata.namespace`, says: ['expected a namespace', 'got the string "Data"'] },
      { at: `${bad('namespaces-and-l4.yaml')}: VirtualService "reviews" (document 4): spec.hosts[1]`, says: ['wildcard hosts are not supported'] },
      { at: `${bad('namespaces-and-l4.yaml')}: VirtualService "reviews" (document 4): spec.http[0].appendHeaders`, says: ['use headers.request.add'] },
      { at: `${bad('namespaces-and-l4.yaml')}: VirtualService "reviews" (document 4): metadata.name`, says: ['VirtualService reviews is also defined in namespace prod'] },
      { at: `${bad('namespaces-and-l4.yaml')}: VirtualService "reviews" (document 4): spec.hosts[0]`, says: ['looks for Service reviews in namespace web, but Service reviews is in namespace prod', 'write reviews.prod'] },
      { at: `${bad('namespaces-and-l4.yaml')}: VirtualService "reviews" (document 4): spec.hosts[0]`, says: ['already routed by VirtualService "reviews"'] },
      { at: `${bad('namespaces-and-l4.yaml')}: VirtualService "reviews" (document 5): spec.tls`, says: ['tls (passthrough) routes need a Service with protocol tcp'] },
      { at: `${bad('namespaces-and-l4.yaml')}: DestinationRule "reviews" (document 6): spec.host`, says: ['names the cluster domain example.org, but the mesh\'s is cluster.local'] },
    ],
  },
];

describe('bad inputs are refused: exit 2, file + document + field path + what was expected, nothing written', () => {
  test('every file in fixtures/bad/ has a case', () => {
    const covered = new Set(CASES.flatMap((c) => c.files).filter((f) => f.startsWith(BAD)).map((f) => f.slice(BAD.length + 1)));
    assert.deepEqual(readdirSync(BAD).filter((f) => !covered.has(f)), []);
  });

  for (const c of CASES) {
    test(c.name, async () => {
      const r = await renderRefused(c.files);
      assertIssues(r.err, c.issues);
      c.check?.(r);
      const v = await validateRefused(c.files);
      assert.deepEqual(v.err, r.err, 'validate prints the same message as render');
    });
  }

  test('a 20 MB file is refused by its size, before it is read or parsed', async () => {
    const tmp = await tempDir();
    const big = join(tmp, 'big.yaml');
    // A sparse file of NUL bytes: parsing it would give "invalid YAML" issues, not the size one.
    const fh = await open(big, 'w');
    await fh.truncate(20 * 1024 * 1024);
    await fh.close();
    const expected = [{ at: big, says: [`file is too large: ${20 * 1024 * 1024} bytes; at most ${MAX_FILE_BYTES} bytes (4 MiB) are accepted`] }];
    const r = await renderRefused([big]);
    assertIssues(r.err, expected);
    assert.ok(r.ms < 2000, `refused in ${r.ms.toFixed(0)} ms`);
    const v = await validateRefused([big]);
    assert.deepEqual(v.err, r.err);

    // The size is taken from the file system before reading: a (sparse) 3 GiB file, which Node
    // cannot even read into a string (ERR_FS_FILE_TOO_LARGE), gets the same message.
    const huge = join(tmp, 'huge.yaml');
    const hh = await open(huge, 'w');
    await hh.truncate(3 * 1024 ** 3);
    await hh.close();
    assertIssues((await validateRefused([huge])).err, [{ at: huge, says: [`file is too large: ${3 * 1024 ** 3} bytes; at most ${MAX_FILE_BYTES} bytes`] }]);

    // Handed text over the limit (as from etcd), the parser refuses it before parsing: this text is
    // an unclosed flow sequence that would otherwise be reported as invalid YAML.
    const issues: Issue[] = [];
    const docs = parseYamlDocuments('etcd', `x: [${'a,'.repeat(MAX_FILE_BYTES / 2)}`, issues);
    assert.deepEqual(docs, []);
    assert.equal(issues.length, 1);
    assert.match(issues[0]!.message, /^file is too large: \d+ bytes; at most 4194304 bytes \(4 MiB\) are accepted$/);
  });

  test('a file that does not exist: exit 2 and a clear message', async () => {
    const missing = join(await tempDir(), 'no-such-file.yaml');
    const expected = [{ at: missing, says: ['cannot read: no such file (ENOENT)'] }];
    const r = await renderRefused([missing]);
    assertIssues(r.err, expected);
    const v = await validateRefused([missing]);
    assert.deepEqual(v.err, r.err);
  });

  test('control: a valid mesh is rendered, so the "nothing written" checks above can fail', async () => {
    const tmp = await tempDir();
    const outDir = join(tmp, 'out');
    const r = await run(['render', '-f', BOOKINFO_SERVICES, '--node', 'node-a', '--out', outDir]);
    assert.equal(r.code, 0, r.err.join('\n'));
    assert.ok(existsSync(join(outDir, 'docker-compose.yml')));
    assert.equal((await run(['validate', '-f', BOOKINFO_SERVICES])).code, 0);
  });
});
