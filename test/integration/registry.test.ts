// The registry against a real etcd: both keys in one transaction under the node lease, deletes, no writes
// when idle, lease loss and rebind, drain, etcd away and back, adoption after a restart, and the reader.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import type { Etcd3, IKeyValue } from 'etcd3';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger, type Logger } from '../../agent/core/logger.js';
import { keys } from '../../agent/core/model/keys.js';
import type { Instance } from '../../agent/core/model/model.js';
import { createEtcd } from '../../agent/adapters/etcd/etcd-client.js';
import { NodeLease } from '../../agent/adapters/etcd/etcd-lease.js';
import { EtcdDesiredSource } from '../../agent/adapters/etcd/etcd-source.js';
import { Registry, type Registration } from '../../agent/adapters/etcd/etcd-registry.js';
import { RegistryReader, instancesFromRegistry } from '../../agent/adapters/etcd/registry-reader.js';
import { HealthTracker } from '../../agent/health/health-tracker.js';
import type { ProbeResult, ProbeRunner } from '../../agent/health/probes.js';
import { startEtcd, uniquePrefix, type TestEtcd } from '../helpers/etcd.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait.js';

let server: TestEtcd;
let etcd: Etcd3;
const clients: Etcd3[] = [];

before(async () => {
  server = await startEtcd();
  etcd = client(server.url);
});

after(async () => {
  for (const c of clients) c.close();
  await server?.stop();
});

function client(url: string): Etcd3 {
  const c = createEtcd({ endpoints: [url], prefix: '', retries: 0, dialTimeoutMs: 1_000 });
  clients.push(c);
  return c;
}

async function kvs(prefix: string): Promise<IKeyValue[]> {
  return (await etcd.getAll().prefix(prefix).sort('Key', 'Ascend').exec()).kvs;
}

async function revision(): Promise<number> {
  return Number((await etcd.get('/nothing').exec()).header.revision);
}

async function startLease(ttl = 10, c = etcd): Promise<NodeLease> {
  const lease = new NodeLease(c, ttl, systemClock, silentLogger);
  await lease.start();
  return lease;
}

const reviews = (over: Partial<Registration> = {}): Registration => ({ service: 'reviews', version: 'v1', address: '127.0.0.1', port: 9081, container: 'meshlet-node-a_reviews-v1_1', healthySince: '2024-05-01T10:00:00.000Z', ...over });

function recordingLog(): Logger & { warnings: { msg: string; fields?: Record<string, unknown> }[] } {
  const warnings: { msg: string; fields?: Record<string, unknown> }[] = [];
  return { ...silentLogger, warn: (msg, fields) => warnings.push({ msg, fields }), warnings };
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}

describe('registry writes', () => {
  test('a registration writes both keys in one transaction, bound to the node lease, in etcd naming format', async (t) => {
    const p = uniquePrefix('reg');
    const k = keys(p);
    const lease = await startLease();
    t.after(() => lease.revoke());
    const registry = new Registry({ etcd, prefix: p, node: 'node-a', lease: lease.id, clock: systemClock, log: silentLogger });
    const res = await registry.register(reviews());
    assert.deepEqual(res, { ok: true, changed: 1 });

    const reg = await kvs(k.registry);
    const naming = await kvs(k.naming);
    assert.equal(reg.length, 1);
    assert.equal(naming.length, 1);
    assert.equal(reg[0]!.key.toString(), `${p}/registry/reviews/v1/node-a`);
    assert.equal(naming[0]!.key.toString(), `${p}/naming/reviews/127.0.0.1:9081`);
    assert.equal(reg[0]!.lease, lease.id);
    assert.equal(naming[0]!.lease, lease.id);
    assert.equal(reg[0]!.mod_revision, naming[0]!.mod_revision, 'one transaction');
    assert.deepEqual(JSON.parse(reg[0]!.value.toString()), { service: 'reviews', version: 'v1', node: 'node-a', address: '127.0.0.1', port: 9081, container: 'meshlet-node-a_reviews-v1_1', healthySince: '2024-05-01T10:00:00.000Z' });
    assert.equal(naming[0]!.value.toString(), '{"Op":0,"Addr":"127.0.0.1:9081","Metadata":{"version":"v1","node":"node-a"}}');
    assert.deepEqual(registry.current(), [{ ...reviews(), node: 'node-a' }]);
  });

  test('two versions on one node: one registry key per version, one naming key per address', async (t) => {
    const p = uniquePrefix('reg');
    const lease = await startLease();
    t.after(() => lease.revoke());
    const registry = new Registry({ etcd, prefix: p, node: 'node-a', lease: lease.id, clock: systemClock, log: silentLogger });
    await registry.register(reviews());
    await registry.register(reviews({ version: 'v2', port: 9082 }));
    assert.deepEqual((await kvs(p)).map((kv) => kv.key.toString()), [
      `${p}/naming/reviews/127.0.0.1:9081`,
      `${p}/naming/reviews/127.0.0.1:9082`,
      `${p}/registry/reviews/v1/node-a`,
      `${p}/registry/reviews/v2/node-a`,
    ]);
    // A port handed from one version to the other in one pass: no key twice in the transaction.
    const res = await registry.setAll([reviews({ port: 9082 }), reviews({ version: 'v2', port: 9083 })]);
    assert.equal(res.ok, true, res.error);
    const naming = await kvs(`${p}/naming/`);
    assert.deepEqual(naming.map((kv) => [kv.key.toString(), JSON.parse(kv.value.toString()).Metadata.version]), [
      [`${p}/naming/reviews/127.0.0.1:9082`, 'v1'],
      [`${p}/naming/reviews/127.0.0.1:9083`, 'v2'],
    ]);
  });

  test('deregistration deletes both keys in one revision', async (t) => {
    const p = uniquePrefix('reg');
    const lease = await startLease();
    t.after(() => lease.revoke());
    const registry = new Registry({ etcd, prefix: p, node: 'node-a', lease: lease.id, clock: systemClock, log: silentLogger });
    await registry.register(reviews());
    await registry.register(reviews({ service: 'ratings', port: 9090 }));
    const rev = await revision();
    assert.deepEqual(await registry.deregister('reviews', 'v1'), { ok: true, changed: 1 });
    assert.equal(await revision(), rev + 1, 'one transaction');
    assert.deepEqual((await kvs(p)).map((kv) => kv.key.toString()), [`${p}/naming/ratings/127.0.0.1:9090`, `${p}/registry/ratings/v1/node-a`]);
    assert.deepEqual(await registry.deregister('reviews', 'v1'), { ok: true, changed: 0 });
  });

  test('an idle registry writes nothing: same values, same lease, rebind to the same lease', async (t) => {
    const p = uniquePrefix('reg');
    const lease = await startLease();
    t.after(() => lease.revoke());
    const registry = new Registry({ etcd, prefix: p, node: 'node-a', lease: lease.id, clock: systemClock, log: silentLogger });
    await registry.setAll([reviews(), reviews({ service: 'ratings', port: 9090 })]);
    const rev = await revision();
    const watcher = await etcd.watch().prefix(p).create();
    const events: string[] = [];
    watcher.on('data', (res) => events.push(...res.events.map((e) => `${e.type} ${e.kv.key.toString()}`)));
    for (let i = 0; i < 20; i++) {
      await registry.register(reviews());
      await registry.setAll([reviews({ service: 'ratings', port: 9090 }), reviews()]);
      await registry.rebind(lease.id);
      await registry.sync();
    }
    await new Promise((r) => setTimeout(r, 2_000));
    await watcher.cancel();
    assert.deepEqual(events, []);
    assert.equal(await revision(), rev);
    assert.equal(registry.stats.txns, 1);
  });

  test('a changed value (new healthySince, new port) is rewritten, the old naming key deleted in the same transaction', async (t) => {
    const p = uniquePrefix('reg');
    const lease = await startLease();
    t.after(() => lease.revoke());
    const registry = new Registry({ etcd, prefix: p, node: 'node-a', lease: lease.id, clock: systemClock, log: silentLogger });
    await registry.register(reviews());
    const rev = await revision();
    await registry.register(reviews({ port: 9085, healthySince: '2024-05-01T11:00:00.000Z' }));
    assert.equal(await revision(), rev + 1);
    const all = await kvs(p);
    assert.deepEqual(all.map((kv) => kv.key.toString()), [`${p}/naming/reviews/127.0.0.1:9085`, `${p}/registry/reviews/v1/node-a`]);
    assert.equal(JSON.parse(all[1]!.value.toString()).healthySince, '2024-05-01T11:00:00.000Z');
  });
});

describe('registry and the lease', () => {
  test('lease revoked from outside: NodeLease re-grants, rebind puts everything back under the new lease', async (t) => {
    const p = uniquePrefix('reg');
    const lease = await startLease(10);
    t.after(() => lease.stop());
    const registry = new Registry({ etcd, prefix: p, node: 'node-a', lease: lease.id, clock: systemClock, log: silentLogger });
    let regrantedAt = 0;
    lease.on('regranted', (id) => {
      regrantedAt = performance.now();
      void registry.rebind(id);
    });
    await registry.setAll([reviews(), reviews({ version: 'v2', port: 9082 }), reviews({ service: 'ratings', port: 9090 })]);
    const times: number[] = [];
    const rebinds: number[] = [];
    for (let round = 0; round < 6; round++) {
      const old = lease.id;
      const started = performance.now();
      await etcd.leaseClient.leaseRevoke({ ID: old });
      assert.equal((await kvs(p)).length, 0, 'every key went with the lease');
      const back = await waitFor('registrations back under a new lease', async () => {
        const all = await kvs(p);
        return all.length === 6 && all.every((kv) => kv.lease === lease.id && kv.lease !== old) && performance.now();
      }, 15_000, 10);
      times.push(back - started);
      rebinds.push(back - regrantedAt);
      // A second rebind to the same lease (the agent's pass may call it too) writes nothing.
      const rev = await revision();
      assert.deepEqual(await registry.rebind(lease.id), { ok: true, changed: 0 });
      assert.equal(await revision(), rev);
      // Revoke at different points of the keepalive period.
      await new Promise((r) => setTimeout(r, 700 * round));
    }
    t.diagnostic(`lease revoke → all keys back (TTL 10 s, keepalive every 3.3 s): ${times.map((x) => x.toFixed(0)).join(', ')} ms; max ${Math.max(...times).toFixed(0)} ms`);
    t.diagnostic(`'regranted' → all keys back: ${rebinds.map((x) => x.toFixed(1)).join(', ')} ms`);
  });

  test('writes while etcd is away are kept and retried with backoff until it answers', async (t) => {
    const p = uniquePrefix('reg');
    const proxy = await TcpProxy.forUrl(server.url);
    t.after(() => proxy.close());
    const viaProxy = client(proxy.url);
    const lease = await startLease(30);
    t.after(() => lease.revoke());
    const log = recordingLog();
    const registry = new Registry({ etcd: viaProxy, prefix: p, node: 'node-a', lease: lease.id, clock: systemClock, log, maxBackoffMs: 1_000 });
    t.after(() => registry.stop());
    await registry.register(reviews());
    await proxy.suspend('refuse');
    const res = await registry.register(reviews({ service: 'ratings', port: 9090 }));
    assert.equal(res.ok, false);
    assert.equal(registry.state, 'retrying');
    await registry.deregister('reviews', 'v1');
    assert.equal(log.warnings.length, 1, 'one warning, not one per attempt');
    await new Promise((r) => setTimeout(r, 2_500));
    const failures = registry.stats.failures;
    assert.ok(failures >= 3, `retried (${failures} failed attempts)`);
    await proxy.resume();
    await waitFor('the registry caught up', async () => registry.state === 'in-sync' || undefined, 10_000, 20);
    assert.deepEqual((await kvs(p)).map((kv) => kv.key.toString()), [`${p}/naming/ratings/127.0.0.1:9090`, `${p}/registry/ratings/v1/node-a`]);
  });
});

describe('drain, adoption and drift', () => {
  test('drain deletes everything and refuses registrations until undrain', async (t) => {
    const p = uniquePrefix('reg');
    const lease = await startLease();
    t.after(() => lease.revoke());
    const registry = new Registry({ etcd, prefix: p, node: 'node-a', lease: lease.id, clock: systemClock, log: silentLogger });
    await registry.setAll([reviews(), reviews({ service: 'ratings', port: 9090 })]);
    await registry.drain();
    assert.equal((await kvs(p)).length, 0);
    assert.deepEqual(registry.current(), []);
    const rev = await revision();
    assert.deepEqual(await registry.register(reviews({ service: 'details', port: 9095 })), { ok: true, changed: 0, drained: true });
    await registry.drain();
    assert.equal(await revision(), rev, 'nothing written while drained');
    await registry.undrain();
    assert.deepEqual((await kvs(`${p}/registry/`)).map((kv) => kv.key.toString()), [
      `${p}/registry/details/v1/node-a`,
      `${p}/registry/ratings/v1/node-a`,
      `${p}/registry/reviews/v1/node-a`,
    ]);
  });

  test('adopt after a restart: what etcd holds counts as written (no rewrite); setAll then removes the rest', async (t) => {
    const p = uniquePrefix('reg');
    const lease = await startLease();
    t.after(() => lease.revoke());
    const first = new Registry({ etcd, prefix: p, node: 'node-a', lease: lease.id, clock: systemClock, log: silentLogger });
    await first.setAll([reviews(), reviews({ service: 'ratings', port: 9090 })]);
    // Another node's keys and a stale naming key of this node (an old address) must be told apart.
    const other = new Registry({ etcd, prefix: p, node: 'node-b', lease: lease.id, clock: systemClock, log: silentLogger });
    await other.register(reviews({ address: '127.0.0.2' }));
    await etcd.put(`${p}/naming/reviews/127.0.0.1:9999`).value('{"Op":0,"Addr":"127.0.0.1:9999","Metadata":{"version":"v0","node":"node-a"}}').lease(lease.id).exec();

    const rev = await revision();
    const second = new Registry({ etcd, prefix: p, node: 'node-a', lease: lease.id, clock: systemClock, log: silentLogger });
    const found = await second.adopt();
    assert.deepEqual(found.map((i) => `${i.service}/${i.version}`), ['ratings/v1', 'reviews/v1']);
    assert.equal(await revision(), rev + 1, 'only the stale naming key was deleted');
    assert.deepEqual(second.current().map((i) => i.service), ['ratings', 'reviews']);
    await second.setAll([reviews()]);
    assert.deepEqual((await kvs(p)).map((kv) => kv.key.toString()), [
      `${p}/naming/reviews/127.0.0.1:9081`,
      `${p}/naming/reviews/127.0.0.2:9081`,
      `${p}/registry/reviews/v1/node-a`,
      `${p}/registry/reviews/v1/node-b`,
    ]);
  });

  test('repair() puts back a key deleted by hand, and then finds nothing to do', async (t) => {
    const p = uniquePrefix('reg');
    const lease = await startLease();
    t.after(() => lease.revoke());
    const registry = new Registry({ etcd, prefix: p, node: 'node-a', lease: lease.id, clock: systemClock, log: silentLogger });
    await registry.register(reviews());
    await etcd.delete().key(`${p}/naming/reviews/127.0.0.1:9081`).exec();
    assert.deepEqual(await registry.repair('test'), ['reviews/v1']);
    assert.equal((await kvs(p)).length, 2);
    assert.deepEqual(await registry.repair('test'), []);
  });
});

describe('registry reader', () => {
  test('garbage values are skipped with a warning; EtcdDesiredSource follows <p>/registry/ as it is', async (t) => {
    const p = uniquePrefix('reg');
    const k = keys(p);
    const lease = await startLease();
    t.after(() => lease.revoke());
    const registry = new Registry({ etcd, prefix: p, node: 'node-a', lease: lease.id, clock: systemClock, log: silentLogger });
    await registry.register(reviews());
    await etcd.put(`${k.registry}ratings/v1/node-b`).value('{not json').exec();
    await etcd.put(`${k.registry}ratings/v1/node-c`).value(JSON.stringify({ service: 'ratings', version: 'v9', node: 'node-c', address: '10.0.0.3', port: 9090 })).exec();
    await etcd.put(`${k.registry}ratings/v1/node-d`).value(JSON.stringify({ service: 'ratings', version: 'v1', node: 'node-d', address: 'db.example', port: 9090 })).exec();
    await etcd.put(`${k.registry}ratings/v1/node-e`).value(JSON.stringify({ service: 'ratings', version: 'v1', node: 'node-e', address: '10.0.0.5', port: '9090' })).exec();
    await etcd.put(`${k.registry}ratings/v1/node-f`).value(JSON.stringify({ service: 'ratings', version: 'v1', node: 'node-f', address: '10.0.0.6', port: 9090, zone: 'b', rack: 'r1' })).exec();
    await etcd.put(`${k.registry}ratings/extra/v1/node-g`).value('{}').exec();

    const log = recordingLog();
    let changes = 0;
    const source = new EtcdDesiredSource(etcd, k.registry, () => changes++, systemClock, silentLogger);
    source.start();
    t.after(() => source.stop());
    await waitFor('the registry snapshot', () => source.current(), 5_000, 20);
    const reader = new RegistryReader(p, log.warn);
    const read = () => reader.read(source.current()!.entries);
    const want: Instance[] = [
      // zone is a field of the format (an agent's --zone); an unknown one (rack) is dropped.
      { service: 'ratings', version: 'v1', node: 'node-f', address: '10.0.0.6', port: 9090, zone: 'b' },
      { ...reviews(), node: 'node-a' },
    ];
    assert.deepEqual(read(), want);
    assert.deepEqual(log.warnings.map((w) => `${String(w.fields?.key).slice(p.length)}: ${w.fields?.reason}`), [
      `/registry/ratings/extra/v1/node-g: not a key of the form ${k.registry}<service>/<version>/<node>`,
      '/registry/ratings/v1/node-b: the value is not JSON',
      '/registry/ratings/v1/node-c: the value names another instance than its key',
      '/registry/ratings/v1/node-d: the address is not an IP address',
      '/registry/ratings/v1/node-e: invalid value',
    ]);
    assert.deepEqual(read(), want, 'the same entries again');
    assert.equal(log.warnings.length, 5, 'each bad entry is warned about once');

    // The watch keeps following: a deregistration and a new node show up.
    await registry.deregister('reviews', 'v1');
    await etcd.put(`${k.registry}ratings/v1/node-b`).value(JSON.stringify({ service: 'ratings', version: 'v1', node: 'node-b', address: '10.0.0.2', port: 9090 })).exec();
    await waitFor('the watch to follow', () => read().length === 2 && read()[0]!.node === 'node-b', 5_000, 20);
    assert.deepEqual(instancesFromRegistry(p, source.current()!.entries, () => {}).map((i) => i.node), ['node-b', 'node-f']);
  });
});

describe('health verdict → etcd', () => {
  test('registration latency: tracker verdict → key visible in etcd, over 50 flips each way', async (t) => {
    const p = uniquePrefix('lat');
    const k = keys(p);
    const lease = await startLease();
    t.after(() => lease.revoke());
    const registry = new Registry({ etcd, prefix: p, node: 'node-a', lease: lease.id, clock: systemClock, log: silentLogger });
    let healthy = false;
    const probes: ProbeRunner = { probe: async (): Promise<ProbeResult> => ({ ok: healthy, detail: '' }), release: () => {} };
    const tracker = new HealthTracker(probes, systemClock, silentLogger);
    t.after(() => tracker.stop());
    const verdictAt: number[] = [];
    const writtenAt: number[] = [];
    tracker.onChange((key, state, since) => {
      verdictAt.push(performance.now());
      const [service, version] = key.split('/') as [string, string];
      const done = state === 'healthy'
        ? registry.register({ service, version, address: '127.0.0.1', port: 9081, healthySince: new Date(since).toISOString() })
        : registry.deregister(service, version);
      void done.then(() => writtenAt.push(performance.now()));
    });
    const watcher = await client(server.url).watch().prefix(k.registry).create();
    const seenAt: number[] = [];
    watcher.on('data', (res) => { for (const _ of res.events) seenAt.push(performance.now()); });
    t.after(() => watcher.cancel());

    tracker.setInstances([{ key: 'reviews/v1', service: 'reviews', version: 'v1', address: '127.0.0.1', port: 9081, health: { kind: 'http', path: '/', timing: { intervalMs: 20, timeoutMs: 100, retries: 1, startPeriodMs: 0 } } }]);
    tracker.containerUpdate('reviews/v1', { running: true, startedAt: Date.now() - 60_000 });
    await waitFor('first verdict (unhealthy)', () => verdictAt.length === 1, 5_000, 5);
    verdictAt.length = 0;
    writtenAt.length = 0;
    for (let i = 0; i < 50; i++) {
      healthy = true;
      await waitFor('put seen', () => seenAt.length === 2 * i + 1, 5_000, 1);
      healthy = false;
      await waitFor('delete seen', () => seenAt.length === 2 * i + 2, 5_000, 1);
    }
    await waitFor('all writes resolved', () => writtenAt.length === 100, 5_000, 5);
    const visible = seenAt.map((s, i) => s - verdictAt[i]!);
    const resolved = writtenAt.map((w, i) => w - verdictAt[i]!);
    const up = visible.filter((_, i) => i % 2 === 0);
    const down = visible.filter((_, i) => i % 2 === 1);
    const fmt = (xs: number[]) => `p50 ${percentile(xs, 50).toFixed(2)} ms, p99 ${percentile(xs, 99).toFixed(2)} ms, max ${Math.max(...xs).toFixed(2)} ms`;
    t.diagnostic(`verdict → watch event, healthy→registered: ${fmt(up)}`);
    t.diagnostic(`verdict → watch event, unhealthy→deregistered: ${fmt(down)}`);
    t.diagnostic(`verdict → register()/deregister() resolved: ${fmt(resolved)}`);
    assert.equal(registry.stats.txns, 100, 'one transaction per verdict');
    assert.ok(percentile(visible, 99) < 1_000);
  });
});
