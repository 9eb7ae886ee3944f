// meshlet route with namespaces, against a real etcd: the VirtualService it creates is in the Service's
// namespace, and in one of another namespace it names the Service with its namespace (a short host would
// be relative to the VirtualService's namespace and not resolve).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { uniquePrefix } from '../helpers/etcd.js';
import { etcdForFile } from '../helpers/etcd-cli.js';
import { tempDir } from '../helpers/paths.js';

const { env, cli } = etcdForFile();
const file = (text: string) => {
  const path = join(tempDir('meshlet-canary-ns-'), 'mesh.yaml');
  writeFileSync(path, text);
  return path;
};
const SERVICE = `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: reviews, namespace: prod }
spec:
  port: 9082
  versions:
    v1: { image: r:1, nodes: [node-a] }
    v2: { image: r:2, port: 9083, nodes: [node-a] }
`;
const stored = async (prefix: string) => JSON.parse((await env.client.get(`${prefix}/desired/routes/reviews`).string())!);

test('route creates the VirtualService in the Service\'s namespace', async () => {
  const prefix = uniquePrefix();
  assert.equal((await cli(prefix, 'apply', '-f', file(SERVICE))).code, 0);
  const res = await cli(prefix, 'route', 'reviews', '--weights', 'v1=80,v2=20');
  assert.equal(res.code, 0, res.err);
  const vs = await stored(prefix);
  assert.equal(vs.metadata.namespace, 'prod');
  assert.deepEqual(vs.spec.http[0].route.map((d: { destination: { host: string } }) => d.destination.host), ['reviews', 'reviews']);
});

test('route in a VirtualService of another namespace writes reviews.prod, and the result is valid', async () => {
  const prefix = uniquePrefix();
  const vs = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: web }
spec:
  hosts: [reviews.prod.svc.cluster.local]
  http:
    - route: [{ destination: { host: reviews.prod.svc.cluster.local, subset: v1, port: { number: 9082 } } }]
`;
  assert.equal((await cli(prefix, 'apply', '-f', file(`${SERVICE}---\n${vs}`))).code, 0);
  const res = await cli(prefix, 'route', 'reviews', '--weights', 'v1=50,v2=50');
  assert.equal(res.code, 0, res.err);
  const after = await stored(prefix);
  assert.equal(after.metadata.namespace, 'web');
  assert.deepEqual(after.spec.http[0].route, [
    { destination: { host: 'reviews.prod', subset: 'v1', port: { number: 9082 } }, weight: 50 },
    { destination: { host: 'reviews.prod', subset: 'v2', port: { number: 9082 } }, weight: 50 },
  ]);
});
