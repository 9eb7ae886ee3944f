// meshlet get and meshlet delete against a real etcd.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { listing, uniquePrefix } from '../helpers/etcd.js';
import { etcdForFile } from '../helpers/etcd-cli.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixture, tempDir } from '../helpers/paths.js';
import { ConflictError } from '../../agent/core/errors.js';
import { deleteCommand } from '../../agent/commands/delete.js';

const SERVICES = fixture('bookinfo', 'services.yaml');
const ROUTES = fixture('bookinfo', 'routes.yaml');
type Doc = { kind: string; metadata: { name: string } } & Record<string, unknown>;
const docsOf = (path: string) => parseAllDocuments(readFileSync(path, 'utf8')).map((d) => d.toJS() as Doc);
const dir = tempDir('meshlet-get-');
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const byName = (a: Doc, b: Doc) => a.metadata.name.localeCompare(b.metadata.name);

const { env, cli } = etcdForFile();

async function bookinfo(): Promise<string> {
  const prefix = uniquePrefix();
  const res = await cli(prefix, 'apply', '-f', SERVICES, '-f', ROUTES);
  assert.equal(res.code, 0, res.err);
  return prefix;
}

describe('meshlet get', () => {
  test('services, routes and subsets as tables', async () => {
    const prefix = await bookinfo();
    const services = await cli(prefix, 'get', 'services');
    assert.equal(services.code, 0, services.err);
    const lines = services.out.split('\n');
    assert.match(lines[0]!, /^NAME\s+PROTOCOL\s+PORT\s+VERSIONS\s+UPSTREAMS$/);
    assert.deepEqual(lines.slice(1).map((l) => l.split(/\s{3,}/)), [
      ['details', 'http', '9081', 'v1(node-b,node-c)', 'mysqldb(direct:127.0.0.1:3306)'],
      ['mysqldb', 'tcp', '3306', 'v1(node-c)', '-'],
      ['productpage', 'http', '9080', 'v1(node-a)', 'details(proxy:19001) ratings(naming) reviews(proxy:19002)'],
      ['ratings', 'grpc', '9085', 'v1(*)', 'mysqldb(proxy:19003)'],
      ['reviews', 'http', '9082', 'v1(node-a) v2:9083(node-b) v3:9084(node-c)', 'ratings(xds)'],
    ]);
    const routes = await cli(prefix, 'get', 'routes');
    assert.deepEqual(routes.out.split('\n').slice(1).map((l) => l.split(/\s{3,}/)), [
      ['details', 'details', '#1[match]: details; #2[match]: details; #3: details'],
      ['ratings', 'ratings', '#1: ratings'],
      ['reviews', 'reviews', 'jason-canary[match]: v2; default: v1=90 v3=10'],
    ]);
    const subsets = await cli(prefix, 'get', 'subsets', 'reviews');
    assert.equal(subsets.out, 'NAME      HOST      SUBSETS\nreviews   reviews   v1 v2 v3');
  });

  test('-o json is a list of the stored documents; -o yaml the same documents as multi-document YAML', async () => {
    const prefix = await bookinfo();
    const json = await cli(prefix, 'get', 'services', '-o', 'json');
    assert.equal(json.code, 0, json.err);
    assert.deepEqual(JSON.parse(json.out), docsOf(SERVICES).sort(byName));
    const yaml = await cli(prefix, 'get', 'services', '-o', 'yaml');
    assert.equal(yaml.code, 0, yaml.err);
    assert.deepEqual(parseAllDocuments(yaml.out).map((d) => d.toJS()), docsOf(SERVICES).sort(byName));
    const one = await cli(prefix, 'get', 'routes', 'reviews', '-o', 'yaml');
    assert.deepEqual(parseAllDocuments(one.out).map((d) => d.toJS()), [docsOf(ROUTES).find((d) => d.kind === 'VirtualService' && d.metadata.name === 'reviews')]);
    const none = await cli(uniquePrefix(), 'get', 'routes', '-o', 'json');
    assert.deepEqual(JSON.parse(none.out), []);
  });

  test('nodes and instances from what agents write; fields may be missing', async () => {
    const prefix = uniquePrefix();
    await env.client.put(`${prefix}/nodes/node-a/status`).value(JSON.stringify({ node: 'node-a', agentVersion: '0.1.0', desiredRevision: 12, appliedRevision: 11, lastApply: { ok: true, at: '2026-01-02T03:04:05Z', revision: 11 }, rejected: [{ key: 'k', path: '', message: 'm' }] }));
    await env.client.put(`${prefix}/nodes/node-b/status`).value(JSON.stringify({ node: 'node-b' }));
    await env.client.put(`${prefix}/nodes/node-b/agent`).value('not a status');
    const inst = { service: 'reviews', version: 'v2', node: 'node-b', address: '10.0.0.2', port: 9083, container: 'abc123', healthySince: '2026-01-02T03:04:05Z' };
    await env.client.put(`${prefix}/registry/reviews/v2/node-b`).value(JSON.stringify(inst));
    await env.client.put(`${prefix}/registry/ratings/v1/node-a`).value(JSON.stringify({ service: 'ratings', version: 'v1', node: 'node-a', address: '10.0.0.1', port: 9085 }));
    const nodes = await cli(prefix, 'get', 'nodes');
    assert.equal(nodes.code, 0, nodes.err);
    assert.deepEqual(nodes.out.split('\n').map((l) => l.split(/\s{3,}/)), [
      ['NODE', 'AGENT VERSION', 'DESIRED REV', 'APPLIED REV', 'LAST APPLY', 'REJECTED'],
      ['node-a', '0.1.0', '12', '11', '2026-01-02T03:04:05Z ok', '1'],
      ['node-b', '-', '-', '-', '-', '-'],
    ]);
    const instances = await cli(prefix, 'get', 'instances');
    assert.deepEqual(instances.out.split('\n').map((l) => l.split(/\s{3,}/)), [
      ['SERVICE', 'VERSION', 'NODE', 'ADDRESS', 'CONTAINER', 'HEALTHY SINCE'],
      ['ratings', 'v1', 'node-a', '10.0.0.1:9085', '-', '-'],
      ['reviews', 'v2', 'node-b', '10.0.0.2:9083', 'abc123', '2026-01-02T03:04:05Z'],
    ]);
    assert.deepEqual(JSON.parse((await cli(prefix, 'get', 'instances', 'reviews', '-o', 'json')).out), [inst]);
  });

  test('a stored value that is not JSON is skipped with a warning, not a crash', async () => {
    const prefix = await bookinfo();
    await env.client.put(`${prefix}/desired/services/broken`).value('{not json');
    await env.client.put(`${prefix}/registry/reviews/v1/node-a`).value('garbage');
    await env.client.put(`${prefix}/nodes/node-z/status`).value('');
    for (const [what, output] of [['services', 'table'], ['services', 'json'], ['services', 'yaml'], ['instances', 'table'], ['nodes', 'json']] as const) {
      const res = await cli(prefix, 'get', what, '-o', output);
      assert.equal(res.code, 0, res.err);
      assert.match(res.err, /^warning: skipping \/.*: not valid JSON/);
    }
    const services = await cli(prefix, 'get', 'services', '-o', 'json');
    assert.equal(JSON.parse(services.out).length, 5);
    // Valid JSON that agents would reject: shown as stored in YAML/JSON, left out of the table with the reason.
    await env.client.put(`${prefix}/desired/services/odd`).value(JSON.stringify({ apiVersion: 'meshlet.dev/v1', kind: 'Service', metadata: { name: 'odd' }, spec: { port: 'x' } }));
    const table = await cli(prefix, 'get', 'services');
    assert.doesNotMatch(table.out, /^odd/m);
    assert.match(table.err, /warning: skipping a stored document agents reject: .*\/services\/odd: .*spec\.port/);
  });

  test('a name that is not there is exit 2 with a clear message', async () => {
    const prefix = await bookinfo();
    const res = await cli(prefix, 'get', 'services', 'reviewz');
    assert.equal(res.code, 2);
    assert.equal(res.err, `error: not found:\n  - reviewz: no Service named "reviewz" in etcd under ${prefix} (there: details, mysqldb, productpage, ratings, reviews)`);
    assert.equal((await cli(prefix, 'get', 'nodes', 'node-q')).code, 2);
    assert.equal((await cli(prefix, 'get', 'instances', 'reviews')).code, 2);
  });
});

describe('meshlet delete', () => {
  test('a Service others refer to is refused, listing them; --force deletes it', async () => {
    const prefix = await bookinfo();
    const before = await listing(env.client, prefix);
    const res = await cli(prefix, 'delete', 'service', 'details');
    assert.equal(res.code, 2);
    assert.match(res.err, /^error: refusing to delete Service details: 2 documents refer to it \(change them first, or delete with --force\):/);
    assert.match(res.err, new RegExp(`${prefix}/desired/services/productpage: Service "productpage" \\(document 1\\): spec\\.upstreams\\[0\\]\\.service: no Service named details`));
    assert.match(res.err, new RegExp(`${prefix}/desired/routes/details: VirtualService "details" \\(document 1\\): spec\\.hosts\\[0\\]: no Service named details`));
    assert.deepEqual(await listing(env.client, prefix), before);
    const forced = await cli(prefix, 'delete', 'service', 'details', '--force');
    assert.equal(forced.code, 0, forced.err);
    assert.match(forced.out, new RegExp(`^deleted ${prefix}/desired/services/details at etcd revision \\d+$`));
    assert.match(forced.err, /warning: --force: this reference is now broken/);
    assert.equal(await env.client.get(`${prefix}/desired/services/details`).string(), null);
  });

  test('a DestinationRule whose subsets routes use is refused; one that only names versions is not', async () => {
    const lonely = uniquePrefix();
    assert.equal((await cli(lonely, 'apply', '-f', file('lonely.yaml', LONELY), '-f', file('rule.yaml', CANARY_RULE), '-f', file('to-lonely.yaml', TO_LONELY))).code, 0);
    const refused = await cli(lonely, 'delete', 'subset', 'lonely-rule');
    assert.equal(refused.code, 2);
    assert.match(refused.err, /refusing to delete DestinationRule lonely-rule: 1 document refers to it/);
    assert.match(refused.err, /routes\/lonely: VirtualService "lonely" \(document 1\): spec\.http\[0\]\.route\[0\]\.destination\.subset: Service lonely has no subset canary/);
    const prefix = uniquePrefix();
    assert.equal((await cli(prefix, 'apply', '-f', SERVICES, '-f', ROUTES)).code, 0);
    // The fixture's subsets are named after their versions: without the rule they still exist.
    const ok = await cli(prefix, 'delete', 'subset', 'reviews');
    assert.equal(ok.code, 0, ok.err);
  });

  test('an unreferenced document is deleted; a route takes its rollback history with it', async () => {
    const prefix = await bookinfo();
    assert.equal((await cli(prefix, 'route', 'reviews', '--weights', 'v1=50,v2=50')).code, 0);
    assert.notEqual(await env.client.get(`${prefix}/history/routes/reviews`).string(), null);
    const res = await cli(prefix, 'delete', 'route', 'reviews');
    assert.equal(res.code, 0, res.err);
    assert.equal(await env.client.get(`${prefix}/desired/routes/reviews`).string(), null);
    assert.equal(await env.client.get(`${prefix}/history/routes/reviews`).string(), null);
  });

  test('deleting what is not there is exit 2 with a clear message', async () => {
    const prefix = await bookinfo();
    const res = await cli(prefix, 'delete', 'route', 'reviewz');
    assert.equal(res.code, 2);
    assert.equal(res.err, `error: nothing to delete:\n  - ${prefix}/desired/routes/reviewz: no VirtualService reviewz in etcd (did you mean "reviews"?)`);
  });

  test('compare-and-swap: a change to the document between read and delete is a conflict (exit 3 in the CLI)', async () => {
    const prefix = await bookinfo();
    const key = `${prefix}/desired/routes/ratings`;
    const value = (await env.client.get(key).string())!;
    await assert.rejects(
      deleteCommand({ kind: 'route', name: 'ratings', etcd: env.etcd.url, prefix }, () => {}, () => {}, { beforeCommit: async () => void (await env.client.put(key).value(value)) }),
      (err) => err instanceof ConflictError && /VirtualService ratings \(.*\) was changed by someone else after it was read; nothing was deleted/.test(err.message),
    );
    assert.equal(await env.client.get(key).string(), value);
    // A change elsewhere only makes it read and check again.
    const attempts: number[] = [];
    await deleteCommand({ kind: 'route', name: 'ratings', etcd: env.etcd.url, prefix }, () => {}, () => {}, {
      beforeCommit: async (n) => {
        attempts.push(n);
        if (n === 1) await env.client.put(`${prefix}/desired/routes/details`).value((await env.client.get(`${prefix}/desired/routes/details`).string())!);
      },
    });
    assert.deepEqual(attempts, [1, 2]);
    assert.equal(await env.client.get(key).string(), null);
  });

  test('a reference added between read and delete is seen: delete reads again and refuses', async () => {
    const prefix = uniquePrefix();
    assert.equal((await cli(prefix, 'apply', '-f', file('lonely.yaml', LONELY))).code, 0);
    const attempts: number[] = [];
    await assert.rejects(
      deleteCommand({ kind: 'service', name: 'lonely', etcd: env.etcd.url, prefix }, () => {}, () => {}, {
        beforeCommit: async (n) => {
          attempts.push(n);
          if (n === 1) assert.equal((await cli(prefix, 'apply', '-f', file('to-lonely-v2.yaml', TO_LONELY.replace('subset: canary', 'subset: v2')))).code, 0);
        },
      }),
      /refusing to delete Service lonely: 1 document refers to it/,
    );
    assert.deepEqual(attempts, [1]);
    assert.notEqual(await env.client.get(`${prefix}/desired/services/lonely`).string(), null);
  });
});

const LONELY = `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: lonely }
spec:
  port: 9300
  versions:
    v1: { image: registry.local/lonely:1, nodes: [node-a] }
    v2: { image: registry.local/lonely:2, nodes: [node-b] }
`;
const TO_LONELY = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: lonely }
spec:
  hosts: [lonely]
  http:
    - route:
        - destination: { host: lonely, subset: canary }
`;
const CANARY_RULE = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: lonely-rule }
spec:
  host: lonely
  subsets:
    - name: canary
      labels: { version: v2 }
`;
