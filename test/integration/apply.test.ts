// meshlet apply against a real etcd: what is written, that bad input writes nothing, and that the union
// with what etcd holds is checked and guarded against concurrent changes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { listing, uniquePrefix } from '../helpers/etcd.js';
import { etcdForFile } from '../helpers/etcd-cli.js';
import { fixture, tempDir } from '../helpers/paths.js';
import { canonicalJson } from '../../agent/core/model/canonical.js';
import { ValidationError } from '../../agent/core/errors.js';
import { applyCommand } from '../../agent/commands/apply.js';

const SERVICES = fixture('bookinfo', 'services.yaml');
const ROUTES = fixture('bookinfo', 'routes.yaml');
const KIND_DIR: Record<string, string> = { Service: 'services', VirtualService: 'routes', DestinationRule: 'subsets' };

type Doc = { kind: string; metadata: { name: string } } & Record<string, unknown>;
const docsOf = (path: string) => parseAllDocuments(readFileSync(path, 'utf8')).map((d) => d.toJS() as Doc);

const dir = tempDir('meshlet-apply-');
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

const { env, cli } = etcdForFile();

/** A route to reviews' subset `subset`, as a file of its own. */
const reviewsRoute = (subset: string) => file(`route-${subset}.yaml`, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
    - route:
        - destination: { host: reviews, subset: ${subset} }
`);

describe('meshlet apply', () => {
  test('writes every document as canonical JSON under its key, in one revision, and says so', async () => {
    const prefix = uniquePrefix();
    const res = await cli(prefix, 'apply', '-f', SERVICES, '-f', ROUTES);
    assert.equal(res.code, 0, res.err);
    const docs = [...docsOf(SERVICES), ...docsOf(ROUTES)];
    const stored = await listing(env.client, prefix);
    const expectedKeys = docs.map((d) => `${prefix}/desired/${KIND_DIR[d.kind]}/${d.metadata.name}`);
    assert.deepEqual(stored.kvs.map((kv) => kv.key).sort(), [...expectedKeys].sort());
    for (const [i, d] of docs.entries()) {
      const kv = stored.kvs.find((k) => k.key === expectedKeys[i])!;
      assert.equal(kv.value, canonicalJson(d), `${kv.key} holds the canonical JSON of the document`);
      assert.deepEqual(JSON.parse(kv.value), d);
    }
    // One transaction: one revision for all, and the output names it.
    assert.equal(new Set(stored.kvs.map((kv) => kv.modRevision)).size, 1);
    const lines = res.out.split('\n');
    for (const key of expectedKeys) assert.ok(lines.includes(`added      ${key}`), `${key} reported as added:\n${res.out}`);
    assert.equal(lines.at(-1), `applied: 9 added, 0 changed, 0 unchanged; written at etcd revision ${stored.kvs[0]!.modRevision}`);
  });

  test('re-applying the same files reports all unchanged and writes nothing (the revision stays)', async () => {
    const prefix = uniquePrefix();
    assert.equal((await cli(prefix, 'apply', '-f', SERVICES, '-f', ROUTES)).code, 0);
    const before = await listing(env.client, prefix);
    const res = await cli(prefix, 'apply', '-f', SERVICES, '-f', ROUTES);
    assert.equal(res.code, 0, res.err);
    assert.deepEqual(await listing(env.client, prefix), before);
    const lines = res.out.split('\n');
    assert.equal(lines.filter((l) => l.startsWith('unchanged  ')).length, 9);
    assert.equal(lines.at(-1), `applied: 0 added, 0 changed, 9 unchanged; nothing to write (etcd revision stays ${before.revision})`);
  });

  test('--dry-run shows changed documents and their changed fields, and writes nothing', async () => {
    const prefix = uniquePrefix();
    assert.equal((await cli(prefix, 'apply', '-f', SERVICES, '-f', ROUTES)).code, 0);
    const changed = file('changed.yaml', readFileSync(SERVICES, 'utf8').replace('STAR_COLOR: black', 'STAR_COLOR: blue').replace('port: 9081\n', 'port: 9086\n'));
    const before = await listing(env.client, prefix);
    const res = await cli(prefix, 'apply', '-f', changed, '--dry-run');
    assert.equal(res.code, 0, res.err);
    assert.deepEqual(await listing(env.client, prefix), before);
    const lines = res.out.split('\n');
    assert.ok(lines.includes(`changed    ${prefix}/desired/services/reviews: spec.versions`), res.out);
    assert.ok(lines.includes(`changed    ${prefix}/desired/services/details: spec.port`), res.out);
    assert.ok(lines.includes(`unchanged  ${prefix}/desired/services/ratings`), res.out);
    assert.equal(lines.at(-1), `dry run: 0 added, 2 changed, 3 unchanged; nothing written (etcd revision ${before.revision})`);
    // And without --dry-run the same change is written.
    const real = await cli(prefix, 'apply', '-f', changed);
    assert.equal(real.code, 0, real.err);
    const afterKvs = (await listing(env.client, prefix)).kvs;
    assert.match(afterKvs.find((kv) => kv.key.endsWith('/services/reviews'))!.value, /"STAR_COLOR":"blue"/);
  });

  test('a bad file is exit 2 with every problem named, and etcd is identical before and after', async () => {
    const prefix = uniquePrefix();
    assert.equal((await cli(prefix, 'apply', '-f', SERVICES)).code, 0);
    const before = await listing(env.client, prefix);
    const bad = fixture('bad', 'several-errors.yaml');
    const res = await cli(prefix, 'apply', '-f', bad, '-f', ROUTES);
    assert.equal(res.code, 2);
    assert.match(res.err, /several-errors\.yaml/);
    assert.ok(res.err.split('\n').filter((l) => l.startsWith('  - ')).length >= 2, res.err);
    assert.deepEqual(await listing(env.client, prefix), before);
  });

  test('a file with problems of its own is still checked against etcd: every problem at once, exit 2, etcd untouched (also --dry-run)', async () => {
    const prefix = uniquePrefix();
    assert.equal((await cli(prefix, 'apply', '-f', SERVICES)).code, 0);
    const before = await listing(env.client, prefix);
    // Weights adding up to 90 and subset v9 of the stored reviews; an unknown field and an upstream no Service
    // defines, neither in the file nor in etcd; a Service with a bad port, and a route to it.
    const bad = file('all-errors.yaml', `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
    - route:
        - { destination: { host: reviews, subset: v1 }, weight: 80 }
        - { destination: { host: reviews, subset: v9 }, weight: 10 }
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: extra }
spec:
  prot: http
  port: 9990
  versions: { v1: { image: registry.local/extra:1, nodes: [node-a] } }
  upstreams: [{ service: nowhere, localPort: 19990 }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: ratings }
spec:
  port: 70000
  versions: { v1: { image: registry.local/bookinfo/ratings:1.0, nodes: [node-a] } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ratings }
spec:
  hosts: [ratings]
  http: [{ route: [{ destination: { host: ratings, subset: v1 } }] }]
`);
    const lines = [
      `  - ${bad}: VirtualService "reviews" (document 1): spec.http[0].route: expected weights adding up to 100, got 80 + 10 = 90`,
      `  - ${bad}: VirtualService "reviews" (document 1): spec.http[0].route[1].destination.subset: Service reviews has no subset v9 (did you mean "v1"?); known subsets: v1, v2, v3`,
      `  - ${bad}: Service "extra" (document 2): spec.prot: unknown field (did you mean "protocol"?); expected one of: protocol, port, versions, upstreams, sidecar`,
      `  - ${bad}: Service "extra" (document 2): spec.upstreams[0].service: no Service named nowhere`,
      `  - ${bad}: Service "ratings" (document 3): spec.port: expected a port (an integer) from 1 to 65535, got 70000`,
      // The route to ratings sees the refused ratings of the file, not the valid one in etcd: it says so once. The
      // stored documents that refer to ratings do not repeat it; what the new ratings would break is still named.
      `  - ${bad}: VirtualService "ratings" (document 4): spec.hosts[0]: Service ratings is not valid: see the problems listed for ${bad}: Service "ratings" (document 3)`,
      `  - ${prefix}/desired/services/reviews: Service "reviews" (document 1): spec.upstreams[0].mode: xds (proxyless gRPC) needs an upstream with protocol grpc; ratings is http`,
    ];
    for (const flags of [[], ['--dry-run']]) {
      const res = await cli(prefix, 'apply', '-f', bad, ...flags);
      assert.equal(res.code, 2, res.err);
      assert.deepEqual(res.err.split('\n'), [`error: ${lines.length} problems found; nothing was written:`, ...lines], flags.join(' '));
      assert.equal(res.out, '', 'nothing reported as added or changed');
      assert.deepEqual(await listing(env.client, prefix), before, 'etcd is identical');
    }
  });

  test('a new route must name versions that the stored Service has', async () => {
    const prefix = uniquePrefix();
    assert.equal((await cli(prefix, 'apply', '-f', SERVICES)).code, 0);
    const before = await listing(env.client, prefix);
    const res = await cli(prefix, 'apply', '-f', reviewsRoute('v9'));
    assert.equal(res.code, 2);
    assert.match(res.err, /route-v9\.yaml: VirtualService "reviews" \(document 1\): spec\.http\[0\]\.route\[0\]\.destination\.subset: Service reviews has no subset v9/);
    assert.deepEqual(await listing(env.client, prefix), before);
    // The same route to an existing version passes: the stored Service is part of the check.
    const ok = await cli(prefix, 'apply', '-f', reviewsRoute('v2'));
    assert.equal(ok.code, 0, ok.err);
  });

  test('a new Service may not take a host port a stored Service holds; the message lands on the new one', async () => {
    const prefix = uniquePrefix();
    assert.equal((await cli(prefix, 'apply', '-f', SERVICES)).code, 0);
    const before = await listing(env.client, prefix);
    const clash = file('clash.yaml', `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: extra }
spec:
  port: 9082
  versions:
    v1: { image: registry.local/extra:1, nodes: [node-a] }
`);
    const res = await cli(prefix, 'apply', '-f', clash);
    assert.equal(res.code, 2);
    assert.match(res.err, /clash\.yaml: Service "extra" \(document 1\): spec\.versions\.v1\.port: port 9082 on node node-a is already taken by Service reviews version v1/);
    assert.deepEqual(await listing(env.client, prefix), before);
  });

  test('all or nothing: when the last document is bad, none of the others is written', async () => {
    const prefix = uniquePrefix();
    const services = readFileSync(SERVICES, 'utf8');
    // Bad on its own (an unknown field) …
    const alone = file('last-bad.yaml', `${services}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: { name: reviews }\nspec:\n  hosts: [reviews]\n  colour: red\n  http:\n    - route:\n        - destination: { host: reviews }\n`);
    const before = await listing(env.client, prefix);
    const r1 = await cli(prefix, 'apply', '-f', alone);
    assert.equal(r1.code, 2);
    assert.match(r1.err, /spec\.colour: unknown field/);
    // … and bad only together with the rest (a subset no Service has).
    const together = file('last-bad-set.yaml', `${services}\n---\n${readFileSync(reviewsRoute('v7'), 'utf8')}`);
    const r2 = await cli(prefix, 'apply', '-f', together);
    assert.equal(r2.code, 2);
    assert.match(r2.err, /has no subset v7/);
    assert.deepEqual(await listing(env.client, prefix), before);
    assert.equal(before.kvs.length, 0);
  });

  test('a change made between the read and the write is seen: apply reads again and checks the new union', async () => {
    const prefix = uniquePrefix();
    assert.equal((await cli(prefix, 'apply', '-f', SERVICES)).code, 0);
    const reviewsKey = `${prefix}/desired/services/reviews`;
    const withoutV2 = docsOf(SERVICES).find((d) => d.metadata.name === 'reviews')!;
    delete (withoutV2.spec as { versions: Record<string, unknown> }).versions.v2;
    const attempts: number[] = [];
    await assert.rejects(
      applyCommand({ file: [reviewsRoute('v2')], xdsPort: 15010, etcd: env.etcd.url, prefix }, () => {}, () => {}, {
        beforeCommit: async (attempt) => {
          attempts.push(attempt);
          if (attempt === 1) await env.client.put(reviewsKey).value(canonicalJson(withoutV2));
        },
      }),
      (err) => err instanceof ValidationError && /Service reviews has no subset v2/.test(err.message),
    );
    assert.deepEqual(attempts, [1]);
    assert.equal(await env.client.get(`${prefix}/desired/routes/reviews`).string(), null);
  });

  test('a concurrent meshlet delete between the read and the write is seen too (the deletion guard)', async () => {
    const prefix = uniquePrefix();
    assert.equal((await cli(prefix, 'apply', '-f', SERVICES)).code, 0);
    const target = file('to-mysqldb.yaml', `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: mysqldb }
spec:
  hosts: [mysqldb]
  tcp:
    - route:
        - destination: { host: mysqldb, subset: v1 }
`);
    const other = file('free-standing.yaml', `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: lonely }
spec:
  port: 9300
  versions:
    v1: { image: registry.local/lonely:1, nodes: [node-a] }
`);
    assert.equal((await cli(prefix, 'apply', '-f', other)).code, 0);
    const route = file('to-lonely.yaml', `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: lonely }
spec:
  hosts: [lonely]
  http:
    - route:
        - destination: { host: lonely }
`);
    const attempts: number[] = [];
    await assert.rejects(
      applyCommand({ file: [route, target], xdsPort: 15010, etcd: env.etcd.url, prefix }, () => {}, () => {}, {
        beforeCommit: async (attempt) => {
          attempts.push(attempt);
          // Nothing stored refers to `lonely` yet, so the delete is allowed.
          if (attempt === 1) assert.equal((await cli(prefix, 'delete', 'service', 'lonely')).code, 0);
        },
      }),
      (err) => err instanceof ValidationError && /no Service named lonely/.test(err.message),
    );
    assert.deepEqual(attempts, [1]);
    assert.equal(await env.client.get(`${prefix}/desired/routes/lonely`).string(), null);
    assert.equal(await env.client.get(`${prefix}/desired/routes/mysqldb`).string(), null);
  });

  test('an unrelated concurrent change makes apply try again, and the second attempt writes', async () => {
    const prefix = uniquePrefix();
    assert.equal((await cli(prefix, 'apply', '-f', SERVICES)).code, 0);
    const attempts: number[] = [];
    const out: string[] = [];
    await applyCommand({ file: [ROUTES], xdsPort: 15010, etcd: env.etcd.url, prefix }, (l) => out.push(l), () => {}, {
      beforeCommit: async (attempt) => {
        attempts.push(attempt);
        // The same value put again: a new mod revision, nothing that matters to the check.
        const key = `${prefix}/desired/services/details`;
        if (attempt === 1) await env.client.put(key).value((await env.client.get(key).string())!);
      },
    });
    assert.deepEqual(attempts, [1, 2]);
    assert.equal(out.filter((l) => l.startsWith('added')).length, 4);
    assert.notEqual(await env.client.get(`${prefix}/desired/routes/reviews`).string(), null);
  });

  test('a write over etcd\'s request size is refused with a clear message, and nothing is written', async () => {
    const prefix = uniquePrefix();
    const big = file('big.yaml', `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: big }
spec:
  port: 9400
  versions:
    v1:
      image: registry.local/big:1
      nodes: [node-a]
      env: { BLOB: "${'x'.repeat(1_500_000)}" }
`);
    const res = await cli(prefix, 'apply', '-f', big);
    assert.equal(res.code, 2);
    assert.match(res.err, /does not fit in one etcd transaction; nothing was written/);
    assert.match(res.err, /1\.43 MiB in 1 keys; one transaction may carry at most 1\.40 MiB/);
    assert.equal((await listing(env.client, prefix)).kvs.length, 0);
  });

  test('more documents than etcd allows operations in one transaction still land in one revision', async () => {
    const prefix = uniquePrefix();
    const many = Array.from({ length: 150 }, (_, i) => `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: s${i} }
spec:
  port: ${20000 + i}
  versions:
    v1: { image: registry.local/s:1, nodes: [node-a] }
`).join('---\n');
    const res = await cli(prefix, 'apply', '-f', file('many.yaml', many));
    assert.equal(res.code, 0, res.err);
    const stored = await listing(env.client, prefix);
    assert.equal(stored.kvs.length, 150);
    assert.equal(new Set(stored.kvs.map((kv) => kv.modRevision)).size, 1);
  });

  test('two documents of the same kind and name in the input are refused', async () => {
    const prefix = uniquePrefix();
    const res = await cli(prefix, 'apply', '-f', reviewsRoute('v1'), '-f', reviewsRoute('v2'), '-f', SERVICES);
    assert.equal(res.code, 2);
    assert.match(res.err, /route-v2\.yaml: VirtualService "reviews" \(document 1\): metadata\.name: VirtualService reviews is also defined in .*route-v1\.yaml/);
    assert.equal((await listing(env.client, prefix)).kvs.length, 0);
  });
});
