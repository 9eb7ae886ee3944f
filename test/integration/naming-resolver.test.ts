// The etcd resolver for @grpc/grpc-js against a real etcd and real gRPC servers on 127.0.0.1: endpoints
// registered by the Registry are dialled round robin, a deregistration takes effect, and the resolver
// keeps following across a compaction and a cut connection.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import * as grpc from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import { createEtcd } from '../../agent/adapters/etcd/etcd-client.js';
import { NodeLease } from '../../agent/adapters/etcd/etcd-lease.js';
import { Registry } from '../../agent/adapters/etcd/etcd-registry.js';
import { endpointsOf, parseNamingValue, registerEtcdResolver, targetKeyPrefix, type EtcdResolverHandle } from '../../agent/naming/index.js';
import { freePort, startEtcd, uniquePrefix, type TestEtcd } from '../helpers/etcd.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { waitFor } from '../helpers/wait.js';

const WHO_PATH = '/meshlet.test.Who/Who';
const WHO: grpc.ServiceDefinition = {
  Who: {
    path: WHO_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (s: string) => Buffer.from(s),
    responseDeserialize: (b: Buffer) => b.toString(),
  },
};
const ROUND_ROBIN = { 'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }) };

interface IdServer {
  id: string;
  port: number;
  calls: number;
  stop(): Promise<void>;
}

/** A gRPC server on 127.0.0.1 that answers Who with its id. */
async function idServer(id: string): Promise<IdServer> {
  const server = new grpc.Server();
  const s: IdServer = { id, port: 0, calls: 0, stop: () => new Promise((r) => server.tryShutdown(() => r())) };
  server.addService(WHO, { Who: (_call: unknown, cb: grpc.sendUnaryData<string>) => { s.calls++; cb(null, id); } });
  s.port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  return s;
}

function who(client: grpc.Client, timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(WHO_PATH, (b: Buffer) => b, (b: Buffer) => b.toString(), Buffer.alloc(0), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res!)));
  });
}

async function whoMany(client: grpc.Client, n: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const id = await who(client);
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

let server: TestEtcd;
let etcd: Etcd3;
let lease: NodeLease;
let a: IdServer;
let b: IdServer;
let resolver: EtcdResolverHandle;
/** Set by a test to run once after the resolver's next listing of that prefix. */
let afterSnapshot: { prefix: string; run: (revision: number) => Promise<void> } | undefined;
const cleanups: (() => unknown)[] = [];

before(async () => {
  server = await startEtcd();
  etcd = createEtcd({ endpoints: [server.url], prefix: '', retries: 0 });
  lease = new NodeLease(etcd, 10, systemClock, silentLogger);
  await lease.start();
  [a, b] = await Promise.all([idServer('A'), idServer('B')]);
  resolver = registerEtcdResolver({
    endpoints: [server.url],
    log: silentLogger,
    grpc, // the app's own copy of grpc-js (here the same one)
    hooks: {
      afterSnapshot: async (prefix, revision) => {
        const hook = afterSnapshot;
        if (hook && hook.prefix === prefix) {
          afterSnapshot = undefined;
          await hook.run(revision);
        }
      },
    },
  });
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
  resolver?.close();
  await Promise.all([a?.stop(), b?.stop()]);
  await lease?.revoke().catch(() => {});
  etcd?.close();
  await server?.stop();
});

function registries(p: string) {
  const mk = (node: string) => new Registry({ etcd, prefix: p, node, lease: lease.id, clock: systemClock, log: silentLogger });
  return { ra: mk('node-a'), rb: mk('node-b') };
}

function dial(target: string): grpc.Client {
  const client = new grpc.Client(target, grpc.credentials.createInsecure(), ROUND_ROBIN);
  cleanups.push(() => client.close());
  return client;
}

describe('etcd naming values and targets', () => {
  test('both etcd:/// and etcd://// spellings map to the key prefix with its leading slash', () => {
    // grpc-js's own URI split (uri-parser.ts): scheme, then `//authority/`, then the path.
    const path = (t: string) => /^(?:[A-Za-z0-9+.-]+:)?(?:\/\/[^/]*\/)?(.+)$/.exec(t)![1]!;
    assert.equal(targetKeyPrefix(path('etcd:///meshlet/naming/reviews')), '/meshlet/naming/reviews/');
    assert.equal(targetKeyPrefix(path('etcd:////meshlet/naming/reviews')), '/meshlet/naming/reviews/');
    assert.equal(targetKeyPrefix('/meshlet/naming/reviews/'), '/meshlet/naming/reviews/');
    assert.throws(() => targetKeyPrefix('/'), /empty target path/);
  });

  test('current and older etcd naming values: Op 0 adds, Op 1 removes, anything else is skipped', () => {
    assert.deepEqual(parseNamingValue('{"Op":0,"Addr":"10.0.0.5:9080","Metadata":{"version":"v1","node":"a"}}'), { op: 'add', addr: '10.0.0.5:9080' });
    assert.deepEqual(parseNamingValue('{"Op":0,"Addr":"10.0.0.5:9080","Metadata":null}'), { op: 'add', addr: '10.0.0.5:9080' });
    assert.deepEqual(parseNamingValue('{"Addr":"10.0.0.5:9080"}'), { op: 'add', addr: '10.0.0.5:9080' });
    assert.deepEqual(parseNamingValue('{"Op":1,"Addr":"10.0.0.5:9080"}'), { op: 'delete', addr: '10.0.0.5:9080' });
    for (const bad of ['', 'nope', '{"Op":2,"Addr":"x:1"}', '{"op":0,"addr":"x:1"}', '[]', 'null']) assert.equal(parseNamingValue(bad), undefined, bad);
    const warned: string[] = [];
    const eps = endpointsOf(new Map([
      ['/p/naming/s/10.0.0.6:1', '{"Op":0,"Addr":"10.0.0.6:1"}'],
      ['/p/naming/s/10.0.0.5:1', '{"Op":0,"Addr":"10.0.0.5:1"}'],
      ['/p/naming/s/dup', '{"Op":0,"Addr":"10.0.0.5:1"}'],
      ['/p/naming/s/[::1]:2', '{"Op":0,"Addr":"[::1]:2"}'],
      ['/p/naming/s/gone', '{"Op":1,"Addr":"10.0.0.7:1"}'],
      ['/p/naming/s/noport', '{"Op":0,"Addr":"10.0.0.8"}'],
      ['/p/naming/s/junk', '{'],
    ]), (_m, f) => warned.push(String(f.key)));
    assert.deepEqual(eps.map((e) => e.addresses), [[{ host: '10.0.0.5', port: 1 }], [{ host: '10.0.0.6', port: 1 }], [{ host: '::1', port: 2 }]]);
    assert.deepEqual(warned, ['/p/naming/s/noport', '/p/naming/s/junk']);
  });
});

describe('resolver with real gRPC servers', () => {
  test('round robin reaches both registered servers; a deregistered one stops getting calls', async (t) => {
    const p = uniquePrefix('nr');
    const { ra, rb } = registries(p);
    await ra.register({ service: 'greeter', version: 'v1', address: '127.0.0.1', port: a.port });
    await rb.register({ service: 'greeter', version: 'v1', address: '127.0.0.1', port: b.port });
    const client = dial(`etcd:///${p}/naming/greeter`);
    assert.match(`etcd:///${p}/naming/greeter`, /^etcd:\/\/\/\/t?/, 'four slashes: the prefix keeps its "/"');
    const counts = await whoMany(client, 20);
    assert.deepEqual([...counts.keys()].sort(), ['A', 'B']);
    assert.ok(counts.get('A')! >= 8 && counts.get('B')! >= 8, `round robin: ${JSON.stringify([...counts])}`);

    // Calls run back to back from the deregistration on; the last one answered by A bounds the delay.
    const started = performance.now();
    const deregistered = ra.deregister('greeter', 'v1');
    let lastA = started;
    for (let onlyB = 0; onlyB < 50; ) {
      const id = await who(client);
      if (id === 'A') {
        lastA = performance.now();
        onlyB = 0;
      } else onlyB++;
      assert.ok(performance.now() - started < 5_000, 'A still called 5 s after its deregistration');
    }
    await deregistered;
    assert.deepEqual([...(await whoMany(client, 30)).keys()], ['B']);
    t.diagnostic(`deregister → last call answered by the deregistered server: ${(lastA - started).toFixed(1)} ms`);

    await ra.register({ service: 'greeter', version: 'v1', address: '127.0.0.1', port: a.port });
    await waitFor('A back in rotation', async () => (await whoMany(client, 10)).has('A') || undefined, 5_000, 1);
  });

  test('the three-slash spelling (no leading "/" in the path) resolves the same keys', async () => {
    const p = uniquePrefix('nr');
    const { ra } = registries(p);
    await ra.register({ service: 'greeter', version: 'v1', address: '127.0.0.1', port: a.port });
    const client = dial(`etcd:///${p.slice(1)}/naming/greeter`);
    assert.equal(await who(client), 'A');
  });

  test('endpoints written in the older clientv3/naming way (no Metadata; Op 1 put removes)', async () => {
    const p = uniquePrefix('nr');
    const target = `${p}/naming/legacy`;
    await etcd.put(`${target}/127.0.0.1:${a.port}`).value(JSON.stringify({ Op: 0, Addr: `127.0.0.1:${a.port}` })).exec();
    await etcd.put(`${target}/127.0.0.1:${b.port}`).value(JSON.stringify({ Op: 0, Addr: `127.0.0.1:${b.port}` })).exec();
    const client = dial(`etcd://${target}`);
    assert.deepEqual([...(await whoMany(client, 10)).keys()].sort(), ['A', 'B']);
    await etcd.put(`${target}/127.0.0.1:${b.port}`).value(JSON.stringify({ Op: 1, Addr: `127.0.0.1:${b.port}` })).exec();
    await waitFor('B removed by Op 1', async () => !(await whoMany(client, 10)).has('B') || undefined, 5_000, 1);
    await etcd.delete().key(`${target}/127.0.0.1:${a.port}`).exec();
    await waitFor('no endpoints left', async () => {
      try {
        await who(client, 500);
        return undefined;
      } catch (err) {
        return (err as grpc.ServiceError).code === grpc.status.UNAVAILABLE && (err as Error).message;
      }
    }, 5_000, 10).then((msg) => assert.match(msg, /no endpoints registered under .*\/naming\/legacy\//));
  });

  test('a compaction that cancels the watch: the resolver lists again and keeps following', async () => {
    const p = uniquePrefix('nr');
    const { ra, rb } = registries(p);
    await ra.register({ service: 'greeter', version: 'v1', address: '127.0.0.1', port: a.port });
    await rb.register({ service: 'greeter', version: 'v1', address: '127.0.0.1', port: b.port });
    const resyncs = resolver.stats.resyncs;
    // Between the first listing and the watch: B goes away and etcd compacts past the listing's revision,
    // so the watch from listing+1 is cancelled by etcd (the Go resolver would stop here for good).
    let compactedAt = 0;
    afterSnapshot = {
      prefix: `${p}/naming/greeter/`,
      run: async (revision) => {
        await rb.deregister('greeter', 'v1');
        await etcd.put(`${p}/filler`).value('x').exec();
        const rev = Number((await etcd.get(`${p}/filler`).exec()).header.revision);
        await etcd.kv.compact({ revision: rev, physical: true });
        compactedAt = rev;
        assert.ok(rev > revision + 1);
      },
    };
    const client = dial(`etcd:///${p}/naming/greeter`);
    await waitFor('B gone after the compaction', async () => {
      const c = await whoMany(client, 10);
      return (c.has('A') && !c.has('B')) || undefined;
    }, 10_000, 10);
    assert.ok(compactedAt > 0, 'the hook ran');
    assert.ok(resolver.stats.resyncs > resyncs, 'the cancelled watch was noticed and a new listing taken');
    // Still watching afterwards.
    await rb.register({ service: 'greeter', version: 'v1', address: '127.0.0.1', port: b.port });
    await waitFor('B back', async () => (await whoMany(client, 10)).has('B') || undefined, 5_000, 10);
  });

  test('a cut etcd connection: changes made meanwhile are picked up by a fresh listing', async () => {
    const proxy = await TcpProxy.forUrl(server.url);
    cleanups.push(() => proxy.close());
    const viaProxy = registerEtcdResolver({ endpoints: [proxy.url], scheme: 'etcdcut', log: silentLogger, dialTimeoutMs: 500 });
    cleanups.push(() => viaProxy.close());
    const p = uniquePrefix('nr');
    const { ra, rb } = registries(p);
    await ra.register({ service: 'greeter', version: 'v1', address: '127.0.0.1', port: a.port });
    await rb.register({ service: 'greeter', version: 'v1', address: '127.0.0.1', port: b.port });
    const client = dial(`etcdcut:///${p}/naming/greeter`);
    assert.deepEqual([...(await whoMany(client, 10)).keys()].sort(), ['A', 'B']);
    await proxy.suspend('refuse');
    await rb.deregister('greeter', 'v1');
    // Meanwhile the last good list stays: calls keep working.
    assert.deepEqual([...(await whoMany(client, 10)).keys()].sort(), ['A', 'B']);
    await proxy.resume();
    await waitFor('B gone after reconnecting', async () => !(await whoMany(client, 10)).has('B') || undefined, 15_000, 50);
    assert.ok(viaProxy.stats.resyncs + viaProxy.stats.errors > 0);
  });

  test('etcd unreachable before any listing: calls fail with UNAVAILABLE naming the resolver', async () => {
    const port = await freePort();
    const dead = registerEtcdResolver({ endpoints: [`http://127.0.0.1:${port}`], scheme: 'etcddead', log: silentLogger, dialTimeoutMs: 300 });
    cleanups.push(() => dead.close());
    const client = dial('etcddead:///meshlet/naming/greeter');
    await assert.rejects(who(client, 3_000), (err: grpc.ServiceError) => {
      assert.equal(err.code, grpc.status.UNAVAILABLE);
      assert.match(err.message, /etcd resolver: cannot list \/meshlet\/naming\/greeter\//);
      return true;
    });
  });
});
