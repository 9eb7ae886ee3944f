// Small pure pieces: durations, admin port allocation, YAML emission, template merge, the agent's lenient acceptance.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { envoyDuration, parseDuration, composeDuration } from '../../agent/core/documents/duration.js';
import { allocateAdminPorts } from '../../agent/core/render/admin-ports.js';
import { toYaml } from '../../agent/core/render/yaml-emit.js';
import { deepMerge } from '../../agent/core/render/merge.js';
import { readDocuments } from '../../agent/core/documents/documents.js';
import { acceptValid } from '../../agent/core/documents/desired.js';
import { didYouMean } from '../../agent/core/documents/did-you-mean.js';
import { re2SyntaxError } from '../../agent/core/documents/re2-syntax.js';
import { fixture } from '../helpers/paths.js';

test('durations: Go/Istio spellings in, Envoy and compose spellings out', () => {
  assert.equal(parseDuration('1.5s'), 1500);
  assert.equal(parseDuration('100ms'), 100);
  assert.equal(parseDuration('1m30s'), 90_000);
  assert.equal(parseDuration('2h'), 7_200_000);
  assert.equal(parseDuration('250us'), 0.25);
  for (const bad of ['', '5', 's', '1.s', '1x', '-1s', '1s ', ' 1s']) assert.equal(parseDuration(bad), undefined, bad);
  assert.equal(envoyDuration(1500), '1.5s');
  assert.equal(envoyDuration(7000), '7s');
  assert.equal(envoyDuration(0.25), '0.00025s');
  assert.equal(envoyDuration(0), '0s');
  assert.equal(composeDuration(2000), '2s');
  assert.equal(composeDuration(1500), '1500ms');
});

test('admin ports: earlier assignments are kept, new sidecars get the lowest free port, taken ports are skipped', () => {
  const range = { from: 15100, to: 15103 };
  const first = allocateAdminPorts(['b', 'a'], {}, range, new Set([15100]));
  assert.deepEqual(first, { ports: { a: 15101, b: 15102 }, unplaced: [] });
  // 'aa' sorts between a and b, but a and b keep their ports.
  const second = allocateAdminPorts(['a', 'aa', 'b'], first.ports, range, new Set([15100]));
  assert.deepEqual(second.ports, { a: 15101, aa: 15103, b: 15102 });
  // A previous port that is now taken by an app moves.
  const third = allocateAdminPorts(['a', 'b'], first.ports, range, new Set([15100, 15101]));
  assert.deepEqual(third.ports, { a: 15103, b: 15102 });
  const full = allocateAdminPorts(['a', 'b', 'c', 'd'], {}, range, new Set([15100]));
  assert.deepEqual(full.unplaced, ['d']);
});

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? walk(join(dir, n)) : [join(dir, n)]));
}

test('the YAML emitter round-trips every rendered document and awkward strings through a YAML parser', () => {
  const awkward = { yes: 'no', on: 'off', n: 'null', t: 'true', num: '0755', hex: '0x1F', time: '1:30', empty: '', colon: 'a: b', hash: 'a #b', lead: '-x', star: '*x', amp: '&x', bang: '!x', pct: '%x', quote: "'x'", nl: 'a\nb', tab: 'a\tb', uni: 'é', list: [[], {}, [1, [2]], { a: [] }], inf: '.inf' };
  const docs: unknown[] = [awkward];
  for (const f of walk(fixture('bookinfo', 'expected'))) {
    if (f.endsWith('.yml') || f.endsWith('.yaml')) docs.push(parse(readFileSync(f, 'utf8')));
    else docs.push(JSON.parse(readFileSync(f, 'utf8')));
  }
  for (const d of docs) {
    const back = parse(toYaml(d), { version: '1.1' });
    assert.deepEqual(back, d);
  }
});

test('template merge: rendered keys win and come first, mappings merge, lists are replaced', () => {
  const base = { restart: 'always', logging: { driver: 'json-file', options: { a: '1' } }, volumes: ['/x:/x'] };
  const over = { image: 'i', logging: { options: { b: '2' } }, volumes: ['/y:/y'], restart: 'no' };
  const merged = deepMerge(base, over);
  assert.deepEqual(merged, { image: 'i', logging: { options: { b: '2', a: '1' }, driver: 'json-file' }, volumes: ['/y:/y'], restart: 'no' });
  assert.deepEqual(Object.keys(merged), ['image', 'logging', 'volumes', 'restart']);
});

test('did-you-mean finds near misses only', () => {
  assert.equal(didYouMean('prot', ['protocol', 'port', 'versions']), 'protocol');
  assert.equal(didYouMean('protocl', ['protocol', 'port', 'versions']), 'protocol');
  assert.equal(didYouMean('zzzzzz', ['protocol', 'port']), undefined);
});

test('RE2 syntax: JS-only constructs are found (each one Envoy 1.40 refused), RE2 syntax JS lacks ((?i), \\-) passes', () => {
  for (const p of ['(?=x)', 'a(?!x)', '(?<=x)y', '(?<!x)y', '(a)\\1', '(?<n>a)\\k<n>', '\\u0041', '\\cA', '[^]', '[]', '[\\1]', '[\\u0041]']) assert.ok(re2SyntaxError(p), p);
  for (const p of ['/api/v[0-9]+', '(?:a|b)+', '(?<n>a)', '\\p{L}+', 'a{2,}', '[(?=]', '[]a]', '\\(?=', '\\0', '\\/api', '(?i)jason', '\\-', '(?P<n>a)']) assert.equal(re2SyntaxError(p), undefined, p);
});

test('the agent rejects a bad document alone, and what depended on it, and keeps the rest', () => {
  const issues: never[] = [];
  const text = readFileSync(fixture('bookinfo', 'services.yaml'), 'utf8') + '\n---\n' + readFileSync(fixture('bookinfo', 'routes.yaml'), 'utf8') + `
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: clash }
spec:
  port: 9080
  versions: { v1: { image: x, nodes: [node-a] } }
`;
  const docs = readDocuments([{ source: 'mesh.yaml', text }], issues);
  assert.deepEqual(issues, []);
  const { desired, rejected } = acceptValid(docs, { xdsPort: 15010 });
  assert.equal(rejected.length, 1);
  assert.match(rejected[0]!.message, /port 9080 .*on node node-a is already taken by Service productpage version v1/);
  assert.equal(rejected[0]!.doc.name, 'clash');
  assert.deepEqual(desired.services.map((s) => s.name), ['details', 'mysqldb', 'productpage', 'ratings', 'reviews']);

  // Dropping a service drops the route that points at it, in a second round.
  const withoutDetails = docs.filter((d) => !(d.kind === 'Service' && d.name === 'details'));
  const second = acceptValid(withoutDetails, { xdsPort: 15010 });
  const names = second.rejected.map((i) => `${i.doc.kind}/${i.doc.name}`);
  assert.ok(names.includes('Service/productpage'), names.join(','));
  assert.ok(names.includes('VirtualService/details'), names.join(','));
  assert.ok(!second.desired.routes.some((r) => r.name === 'details'));
  assert.ok(second.desired.routes.some((r) => r.name === 'reviews'));
});

test('a destination at weight 0 keeps its cluster listed, so a canary flip changes only the route', async () => {
  const { buildRouteConfig, referencedClusters } = await import('../../agent/core/xds/build-routes.js');
  const vs = {
    kind: 'VirtualService' as const, name: 'reviews', namespace: 'default', hosts: ['reviews'], tcp: [], tls: [], hostRefs: [], ref: { source: 'x', index: 0 },
    http: [{ match: [], mirrors: [], route: [{ host: 'reviews', subset: 'v1', weight: 100 }, { host: 'reviews', subset: 'v2', weight: 0 }] }],
  };
  assert.deepEqual(referencedClusters('reviews', vs), ['reviews|v1', 'reviews|v2']);
  const rc = buildRouteConfig('reviews', vs) as { virtual_hosts: { routes: { route: { weighted_clusters: unknown } }[] }[] };
  assert.deepEqual(rc.virtual_hosts[0]!.routes[0]!.route.weighted_clusters, { clusters: [{ name: 'reviews|v1', weight: 100 }, { name: 'reviews|v2', weight: 0 }] });
});
