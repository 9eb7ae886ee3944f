// meshlet apply and namespaces against a real etcd: keys have no namespace, so a document named like a
// stored one in another namespace is refused (it would replace it, not stand beside it); a file with
// several failing documents, namespace clashes among them, is refused listing every problem.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listing, uniquePrefix } from '../helpers/etcd.js';
import { etcdForFile } from '../helpers/etcd-cli.js';
import { fixture, tempDir } from '../helpers/paths.js';

const { env, cli } = etcdForFile();
const dir = tempDir('meshlet-apply-ns-');
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const reviews = (ns: string) => file(`reviews-${ns}.yaml`, `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: reviews, namespace: ${ns} }
spec:
  port: 9082
  versions: { v1: { image: r:1, nodes: [node-a] } }
`);

test('a Service named like a stored one in another namespace is refused and nothing is written; in its own namespace it is an update', async () => {
  const prefix = uniquePrefix();
  assert.equal((await cli(prefix, 'apply', '-f', reviews('prod'))).code, 0);
  const before = await listing(env.client, prefix);
  const res = await cli(prefix, 'apply', '-f', reviews('staging'));
  assert.equal(res.code, 2, res.err);
  assert.match(res.err, new RegExp(`${reviews('staging').replace(/[.]/g, '\\.')}: Service "reviews" \\(document 1\\): metadata\\.namespace: Service reviews is also defined in namespace prod \\(etcd ${prefix}/desired/services/reviews\\); meshlet keys documents by kind and name only`));
  assert.match(res.err, /or delete the stored one first/);
  assert.deepEqual(await listing(env.client, prefix), before, 'nothing written');
  const same = await cli(prefix, 'apply', '-f', reviews('prod'));
  assert.equal(same.code, 0, same.err);
});

test('apply lists every problem of a file with several failing documents, namespace clashes among them', async () => {
  const prefix = uniquePrefix();
  const bad = fixture('bad', 'namespaces-and-l4.yaml');
  const res = await cli(prefix, 'apply', '-f', bad);
  assert.equal(res.code, 2, res.err);
  const lines = res.err.split('\n');
  assert.equal(lines[0], 'error: 9 problems found; nothing was written:', res.err);
  for (const [doc, path] of [
    ['Service "reviews" (document 2)', 'metadata.name'], ['Service "store" (document 3)', 'metadata.namespace'],
    ['VirtualService "reviews" (document 4)', 'spec.hosts[1]'], ['VirtualService "reviews" (document 4)', 'spec.http[0].appendHeaders'],
    ['VirtualService "reviews" (document 4)', 'spec.hosts[0]'], ['VirtualService "reviews" (document 5)', 'spec.tls'],
    ['DestinationRule "reviews" (document 6)', 'spec.host'],
  ]) {
    assert.ok(lines.some((l) => l.startsWith(`  - ${bad}: ${doc}: ${path}: `)), `${doc} ${path}:\n${res.err}`);
  }
  assert.ok(lines.some((l) => l.includes('VirtualService reviews is also defined in namespace')), res.err);
  assert.deepEqual((await listing(env.client, prefix)).kvs, []);
});
