// Registry anti-entropy against a real etcd: keys this node wrote and someone else deleted, overwrote or
// re-bound are found (by the registry watch's view, or by reading them back) and put back under the lease.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger, type Logger } from '../../agent/core/logger.js';
import { keys } from '../../agent/core/model/keys.js';
import { createEtcd } from '../../agent/adapters/etcd/etcd-client.js';
import { NodeLease } from '../../agent/adapters/etcd/etcd-lease.js';
import { Registry, type Registration } from '../../agent/adapters/etcd/etcd-registry.js';
import { startEtcd, uniquePrefix, type TestEtcd } from '../helpers/etcd.js';

let server: TestEtcd;
let etcd: Etcd3;
const leases: NodeLease[] = [];

before(async () => {
  server = await startEtcd();
  etcd = createEtcd({ endpoints: [server.url], prefix: '', retries: 0, dialTimeoutMs: 1_000 });
});

after(async () => {
  for (const l of leases) await l.stop();
  etcd?.close();
  await server?.stop();
});

const reviews: Registration = { service: 'reviews', version: 'v1', address: '127.0.0.1', port: 9081, container: 'c1', healthySince: '2026-12-01T10:00:00.000Z' };

async function setup() {
  const prefix = uniquePrefix();
  const k = keys(prefix);
  const lease = new NodeLease(etcd, 10, systemClock, silentLogger);
  await lease.start();
  leases.push(lease);
  const warnings: string[] = [];
  const log: Logger = { ...silentLogger, warn: (msg, fields) => warnings.push(`${msg} ${JSON.stringify(fields)}`) };
  const registry = new Registry({ etcd, prefix, node: 'node-a', lease: lease.id, clock: systemClock, log });
  assert.equal((await registry.register(reviews)).ok, true);
  const regKey = k.instance('reviews', 'v1', 'node-a');
  const namingKey = k.namingEndpoint('reviews', '127.0.0.1:9081');
  const read = async (key: string) => (await etcd.get(key).exec()).kvs[0];
  const seen = async () => new Map((await etcd.getAll().prefix(k.registry).exec()).kvs.map((kv) => [kv.key.toString(), { value: kv.value.toString() }]));
  return { registry, lease, regKey, namingKey, read, seen, warnings };
}

test('both keys deleted by hand: the watch view shows it, repair puts both back under the lease and says so', async () => {
  const { registry, lease, regKey, namingKey, read, seen, warnings } = await setup();
  const before = { reg: (await read(regKey))!.value.toString(), naming: (await read(namingKey))!.value.toString() };
  assert.equal(registry.heldIn(await seen()), true);
  await etcd.delete().key(regKey).exec();
  await etcd.delete().key(namingKey).exec();
  assert.equal(registry.heldIn(await seen()), false, 'the registry watch view no longer holds the key');
  assert.deepEqual(await registry.repair('test'), ['reviews/v1']);
  for (const [key, value] of [[regKey, before.reg], [namingKey, before.naming]] as const) {
    const kv = await read(key);
    assert.equal(kv?.value.toString(), value, key);
    assert.equal(String(kv!.lease), lease.id, `${key} is bound to the node lease again`);
  }
  assert.equal(registry.heldIn(await seen()), true);
  assert.equal(warnings.length, 1, warnings.join('\n'));
  assert.match(warnings[0]!, /putting them back.*reviews\/v1/);
});

test('only the naming key deleted: the registry view cannot see it, reading back finds it', async () => {
  const { registry, namingKey, read, seen } = await setup();
  await etcd.delete().key(namingKey).exec();
  assert.equal(registry.heldIn(await seen()), true, 'the registry key is intact');
  assert.deepEqual(await registry.repair('drift check'), ['reviews/v1']);
  assert.ok(await read(namingKey));
});

test('a value overwritten, or re-put without the lease, is written again; intact keys cost one read and no write', async () => {
  const { registry, lease, regKey, read } = await setup();
  const rev = async () => Number((await etcd.get('/none').exec()).header.revision);
  const r0 = await rev();
  assert.deepEqual(await registry.repair('idle'), [], 'nothing to repair');
  assert.equal(await rev(), r0, 'an intact registry writes nothing');

  await etcd.put(regKey).value('{"forged":true}').exec();
  assert.deepEqual(await registry.repair('test'), ['reviews/v1']);
  assert.match((await read(regKey))!.value.toString(), /"service":"reviews"/);

  const good = (await read(regKey))!.value.toString();
  await etcd.put(regKey).value(good).exec(); // same value, no lease: would outlive the node
  assert.deepEqual(await registry.repair('test'), ['reviews/v1']);
  assert.equal(String((await read(regKey))!.lease), lease.id);
});

test('a deregistered instance is not brought back', async () => {
  const { registry, regKey, read } = await setup();
  await registry.deregister('reviews', 'v1');
  assert.deepEqual(await registry.repair('test'), []);
  assert.equal(await read(regKey), undefined);
});
