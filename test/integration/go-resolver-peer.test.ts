// etcd's own Go resolver (go.etcd.io/etcd/client/v3/naming/resolver) as a peer: a Go client given the
// target meshlet injects for a `mode: naming` upstream dials it, calls round robin over what meshlet's
// Registry registered (real etcd, real gRPC servers on 127.0.0.1), stops calling a deregistered instance
// and a dead node's, and reads the same keys with the endpoints package's Manager.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { parse } from 'yaml';
import type { Etcd3 } from 'etcd3';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import { createEtcd } from '../../agent/adapters/etcd/etcd-client.js';
import { NodeLease } from '../../agent/adapters/etcd/etcd-lease.js';
import { Registry } from '../../agent/adapters/etcd/etcd-registry.js';
import { startEtcd, uniquePrefix, type TestEtcd } from '../helpers/etcd.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { GoResolverPeer, peerBinary, type CallsReply } from '../helpers/go-resolver-peer.js';

const WHO_PATH = '/meshlet.test.Who/Who';

interface IdServer {
  id: string;
  port: number;
  stop(): Promise<void>;
}

/** A grpc-js server on 127.0.0.1 whose Who method answers with its id as raw bytes. */
async function idServer(id: string): Promise<IdServer> {
  const server = new grpc.Server();
  const raw = (b: Buffer) => b;
  server.addService({ Who: { path: WHO_PATH, requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: (s: string) => Buffer.from(s), responseDeserialize: raw } },
    { Who: (_call: unknown, cb: grpc.sendUnaryData<string>) => cb(null, id) });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return { id, port, stop: () => new Promise((r) => server.tryShutdown(() => r())) };
}

/** The GREETER_ADDR meshlet injects into a client whose upstream `greeter` is in naming mode, read off `meshlet render`. */
async function injectedTarget(prefix: string): Promise<string> {
  const dir = tempDir('meshlet-go-peer-');
  const file = join(dir, 'mesh.yaml');
  writeFileSync(file, `
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: greeter }
spec: { protocol: grpc, port: 19500, versions: { v1: { image: "x:1", nodes: [node-a] } } }
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: client }
spec:
  protocol: grpc
  port: 19501
  versions: { v1: { image: "x:1", nodes: [node-a] } }
  upstreams: [{ service: greeter, mode: naming }]
`);
  const r = await runCli(['render', '-f', file, '--node', 'node-a', '--out', join(dir, 'out'), '--prefix', prefix, '--no-strict']);
  assert.equal(r.code, 0, r.err);
  const compose = parse(readFileSync(join(dir, 'out', 'docker-compose.yml'), 'utf8')) as { services: Record<string, { environment?: Record<string, string> }> };
  const env = compose.services['client-v1']?.environment;
  assert.ok(env?.GREETER_ADDR, `client-v1 has GREETER_ADDR: ${JSON.stringify(env)}`);
  return env.GREETER_ADDR;
}

const served = (r: CallsReply) => Object.keys(r.counts).sort();

let server: TestEtcd;
let etcd: Etcd3;
let servers: IdServer[] = [];
const cleanups: (() => unknown)[] = [];

before(async () => {
  peerBinary(); // fails at once, with what to run, when the peer is not built
  server = await startEtcd();
  etcd = createEtcd({ endpoints: [server.url], prefix: '', retries: 0 });
  servers = await Promise.all(['A', 'B', 'C'].map(idServer));
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
  await Promise.all(servers.map((s) => s.stop()));
  etcd?.close();
  await server?.stop();
});

/** A node: its own lease (as one agent has) and a Registry writing under it. */
async function node(name: string, prefix: string): Promise<{ registry: Registry; lease: NodeLease }> {
  const lease = new NodeLease(etcd, 10, systemClock, silentLogger);
  await lease.start();
  cleanups.push(() => lease.revoke().catch(() => {}));
  return { lease, registry: new Registry({ etcd, prefix, node: name, lease: lease.id, clock: systemClock, log: silentLogger }) };
}

async function peer(target: string): Promise<GoResolverPeer> {
  const p = await GoResolverPeer.start(['-etcd', server.url, '-target-env', 'GREETER_ADDR', '-method', WHO_PATH, '-call-timeout', '1s'], { GREETER_ADDR: target });
  cleanups.push(() => p.quit());
  return p;
}

describe('etcd Go resolver as a peer', () => {
  test('round robin over the registered instances; a deregistered one and a dead node\'s stop getting calls', async (t) => {
    const prefix = uniquePrefix('gp');
    const target = await injectedTarget(prefix);
    assert.equal(target, `etcd:///${prefix}/naming/greeter`);
    const [A, B, C] = servers as [IdServer, IdServer, IdServer];
    const a = await node('node-a', prefix);
    const b = await node('node-b', prefix);
    await a.registry.register({ service: 'greeter', version: 'v1', address: '127.0.0.1', port: A.port });
    await b.registry.register({ service: 'greeter', version: 'v1', address: '127.0.0.1', port: B.port });
    await b.registry.register({ service: 'greeter', version: 'v2', address: '127.0.0.1', port: C.port });

    const go = await peer(target);
    // The channel connects its subchannels one by one; once all three answered, calls rotate over them.
    await waitFor('all three instances answering', async () => served(await go.calls(6)).length === 3 || undefined, 10_000, 50);
    const spread = await go.calls(60);
    assert.deepEqual(served(spread), ['A', 'B', 'C']);
    assert.deepEqual(spread.errors, {});
    for (const id of ['A', 'B', 'C']) assert.ok(spread.counts[id]! >= 15, `round robin: ${JSON.stringify(spread.counts)}`);
    t.diagnostic(`60 calls: ${JSON.stringify(spread.counts)}`);

    // The endpoints Manager reads the same keys meshlet wrote, Metadata and all.
    const listed = await go.list();
    assert.deepEqual(listed.endpoints, {
      [`${prefix}/naming/greeter/127.0.0.1:${A.port}`]: { Addr: `127.0.0.1:${A.port}`, Metadata: { version: 'v1', node: 'node-a' } },
      [`${prefix}/naming/greeter/127.0.0.1:${B.port}`]: { Addr: `127.0.0.1:${B.port}`, Metadata: { version: 'v1', node: 'node-b' } },
      [`${prefix}/naming/greeter/127.0.0.1:${C.port}`]: { Addr: `127.0.0.1:${C.port}`, Metadata: { version: 'v2', node: 'node-b' } },
    });

    // meshlet deregisters A (unhealthy, or its version removed): the resolver drops it, no call fails.
    const watchedBefore = go.watched.length;
    await a.registry.deregister('greeter', 'v1');
    await waitFor('A no longer called', async () => !(await go.calls(6)).counts.A || undefined, 5_000, 20);
    const afterDeregister = await go.calls(40);
    assert.deepEqual(served(afterDeregister), ['B', 'C']);
    assert.deepEqual(afterDeregister.errors, {}, 'calls keep succeeding on the other instances');
    const deletes = go.watched.slice(watchedBefore).flat().filter((u) => u.op === 'delete');
    assert.deepEqual(deletes.map((u) => u.key), [`${prefix}/naming/greeter/127.0.0.1:${A.port}`], 'the Manager\'s watch saw the delete');

    // node-b's agent dies: its lease is revoked, so both its instances go at once. With no endpoint
    // left, calls fail fast with UNAVAILABLE instead of reaching a dead node.
    await b.lease.revoke();
    await waitFor('no endpoint left', async () => {
      const r = await go.calls(3);
      return (Object.keys(r.counts).length === 0 && r.errors.Unavailable === 3) || undefined;
    }, 5_000, 20);
    assert.deepEqual((await go.list()).endpoints, {});

    // A comes back (healthy again): the same channel picks it up.
    await a.registry.register({ service: 'greeter', version: 'v1', address: '127.0.0.1', port: A.port });
    await waitFor('A back', async () => (await go.calls(3)).counts.A === 3 || undefined, 5_000, 20);
  });

  test('the target without its leading "/" (etcd:///p/...) names other keys: no endpoints, calls fail', async () => {
    // The Go resolver keeps everything after "etcd:///" as the key prefix; meshlet's keys start with "/".
    const prefix = uniquePrefix('gp');
    const a = await node('node-a', prefix);
    await a.registry.register({ service: 'greeter', version: 'v1', address: '127.0.0.1', port: servers[0]!.port });
    const go = await peer(`etcd:///${prefix.slice(1)}/naming/greeter`);
    assert.deepEqual((await go.list()).endpoints, {});
    const r = await go.calls(2);
    assert.deepEqual(r.counts, {});
    assert.ok((r.errors.Unavailable ?? 0) + (r.errors.DeadlineExceeded ?? 0) === 2, JSON.stringify(r));
  });

  test('bad input: an empty target variable exits 2 naming it', async () => {
    const p = await GoResolverPeer.start(['-etcd', server.url, '-target-env', 'GREETER_ADDR'], { GREETER_ADDR: '' }).then(
      () => assert.fail('started with an empty target'),
      (err: Error) => err,
    );
    assert.match(p.message, /exited 2: .*GREETER_ADDR is empty; expected etcd:\/\/\/<prefix>\/naming\/<service>/s);
  });
});
