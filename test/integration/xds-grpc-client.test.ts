// A real proxyless gRPC client (@grpc/grpc-js-xds) against AdsServer and real gRPC servers on loopback.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpcXds from '@grpc/grpc-js-xds';
import { SnapshotCache } from '../../agent/xds/snapshot-cache.js';
import { AdsServer } from '../../agent/xds/ads-server.js';
import { TYPE } from '../../agent/core/xds/envoy-types.js';
import { jsonLogger } from '../../agent/core/logger.js';
import { callMany, callOnce, echoClient, greeterResources, startEcho, xdsBootstrap, type EchoServer, type RouteSpec } from '../helpers/grpc-mesh.js';
import { waitFor } from '../helpers/wait.js';

const NODE = 'proxyless~n1~client-v1';

describe('proxyless gRPC over xDS', () => {
  const cache = new SnapshotCache();
  let server: AdsServer;
  let port: number;
  let v1a: EchoServer;
  let v1b: EchoServer;
  let v2: EchoServer;
  let client: ReturnType<typeof echoClient>;

  /** Publishes a route (and the given servers as instances), then waits until calls show it took effect. */
  async function publish(route: RouteSpec, servers: EchoServer[], applied: () => Promise<boolean>): Promise<number> {
    const t0 = performance.now();
    const r = cache.setSnapshot(NODE, greeterResources(route, servers));
    assert.ok(r.ok, JSON.stringify(r));
    await waitFor('the client to follow the new snapshot', async () => (await applied()) || undefined, 10_000, 0);
    return performance.now() - t0;
  }

  const lands = async (version: string, headers?: Record<string, string>) => {
    const r = await callOnce(client, headers);
    return r.ok && r.reply.version === version;
  };

  before(async () => {
    [v1a, v1b, v2] = await Promise.all([startEcho('v1-a', 'v1'), startEcho('v1-b', 'v1'), startEcho('v2-a', 'v2')]);
    server = new AdsServer({ cache, log: process.env.XDS_TRACE ? jsonLogger('debug') : undefined });
    port = await server.start(0);
    // grpc-js-xds reads the bootstrap once, when the first xds: channel is created (then caches it).
    process.env.GRPC_XDS_BOOTSTRAP_CONFIG = xdsBootstrap(port, NODE);
    grpcXds.register();
    assert.ok(cache.setSnapshot(NODE, greeterResources({ weights: { v1: 90, v2: 10 } }, [v1a, v2])).ok);
    client = echoClient('xds:///greeter');
  });

  after(async () => {
    client?.close();
    await server?.stop();
    for (const s of [v1a, v1b, v2]) s?.stop();
  });

  test('a 90/10 route sends 7–13% of 2,000 calls to v2', async () => {
    const tally = await callMany(client, 2000);
    assert.deepEqual(tally.errors, {});
    const share = (tally.byVersion.v2 ?? 0) / tally.total;
    assert.ok(share >= 0.07 && share <= 0.13, `v2 share ${share} (${JSON.stringify(tally.byVersion)})`);
    const status = server.clients()[NODE]!;
    assert.equal(status.connected, true);
    assert.deepEqual(Object.keys(status.acked).sort(), [TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route].sort());
    assert.deepEqual(status.nacked, {});
  });

  test('a cluster the client refuses is NACKed, recorded, and calls keep going on the last good config', async () => {
    const good = greeterResources({ weights: { v1: 90, v2: 10 } }, [v1a, v2]);
    // Valid for Envoy (passes the strict check) but refused by grpc-js-xds.
    const refused = { ...good, clusters: good.clusters.map((c) => ({ ...c, lb_policy: 'LEAST_REQUEST' })) };
    assert.ok(cache.setSnapshot(NODE, refused).ok);
    const nack = await waitFor('the NACK', () => server.clients()[NODE]?.nacked[TYPE.cluster], 10_000, 10);
    assert.match(nack.message, /LEAST_REQUEST|lb_policy|Unsupported/i);
    const during = await callMany(client, 200);
    assert.deepEqual(during.errors, {});
    assert.ok((during.byVersion.v1 ?? 0) > 100);
    assert.ok(cache.setSnapshot(NODE, good).ok);
    await waitFor('the NACK to clear', () => server.clients()[NODE]?.nacked[TYPE.cluster] === undefined, 10_000, 10);
  });

  test('a header match sends every `end-user: jason` call to v2 and no other call', async () => {
    await publish({ weights: { v1: 100 }, jason: 'v2' }, [v1a, v2], () => lands('v2', { 'end-user': 'jason' }));
    const jason = await callMany(client, 300, { headers: { 'end-user': 'jason' } });
    const others = await callMany(client, 300, { headers: { 'end-user': 'mallory' } });
    assert.deepEqual(jason.byVersion, { v2: 300 });
    assert.deepEqual(others.byVersion, { v1: 300 });
  });

  test('a fault abort at 30% aborts 22–38% of 1,000 calls (a change that only adds a map key)', async () => {
    // The only difference to the previous snapshot is typed_per_filter_config on the default route,
    // the kind of update grpc-js-xds 1.14 ACKs and ignores unless the content hash shows it.
    await publish({ weights: { v1: 100 }, jason: 'v2', abortPercent: 30 }, [v1a, v2], async () => {
      const t = await callMany(client, 50, { concurrency: 10 });
      return (t.errors[10] ?? 0) > 0;
    });
    const tally = await callMany(client, 1000);
    const aborted = tally.errors[10] ?? 0; // ABORTED
    assert.ok(aborted >= 220 && aborted <= 380, `aborted ${aborted} of 1000 (${JSON.stringify(tally.errors)})`);
    assert.equal(aborted + (tally.byVersion.v1 ?? 0), 1000);
  });

  test('weight changes are followed without restarting the client', async () => {
    await publish({ weights: { v1: 100 } }, [v1a, v2], async () => (await callMany(client, 20)).byVersion.v1 === 20);
    const ms = await publish({ weights: { v2: 100 } }, [v1a, v2], () => lands('v2'));
    assert.deepEqual((await callMany(client, 200)).byVersion, { v2: 200 });
    await publish({ weights: { v1: 50, v2: 50 } }, [v1a, v2], () => lands('v1'));
    const half = await callMany(client, 1000);
    const share = (half.byVersion.v2 ?? 0) / half.total;
    assert.ok(share >= 0.4 && share <= 0.6, `v2 share ${share} after 50/50`);
    assert.ok(ms < 5_000, `took ${ms} ms to follow 100/0 → 0/100`);
  });

  test('an instance removed from the endpoints stops receiving calls', async () => {
    await publish({ weights: { v1: 100 } }, [v1a, v1b, v2], async () => (await callMany(client, 20)).byServer['v1-b'] !== undefined);
    const both = await callMany(client, 200);
    assert.ok((both.byServer['v1-a'] ?? 0) > 50 && (both.byServer['v1-b'] ?? 0) > 50, JSON.stringify(both.byServer));
    await publish({ weights: { v1: 100 } }, [v1a, v2], async () => (await callMany(client, 50)).byServer['v1-b'] === undefined);
    const before = v1b.calls;
    const after = await callMany(client, 300);
    assert.deepEqual(after.byServer, { 'v1-a': 300 });
    assert.equal(v1b.calls, before, 'the removed instance (still running) got no call');
  });

  test('after the ADS server restarts on the same port the client reconnects and follows changes; calls never stop', async () => {
    let stop = false;
    const outcomes = { ok: 0, failed: 0 };
    const loop = (async () => {
      while (!stop) {
        const r = await callOnce(client);
        if (r.ok) outcomes.ok++;
        else outcomes.failed++;
        await new Promise((res) => setTimeout(res, 5));
      }
    })();
    await new Promise((r) => setTimeout(r, 50));
    const atStop = outcomes.ok;
    await server.stop();
    await waitFor('the disconnect', () => server.clients()[NODE]?.connected === false, 5_000, 10);
    await new Promise((r) => setTimeout(r, 300));
    const during = outcomes.ok - atStop;
    await waitFor('the port to be free again', async () => (await server.start(port).then(() => true, () => false)) || undefined, 5_000, 50);
    await waitFor('the client to reconnect', () => server.clients()[NODE]?.connected, 10_000, 20);
    await publish({ weights: { v2: 100 } }, [v1a, v2], () => lands('v2'));
    stop = true;
    await loop;
    assert.ok(during > 10, `calls continued while the server was down (${during})`);
    assert.equal(outcomes.failed, 0, JSON.stringify(outcomes));
    assert.deepEqual((await callMany(client, 100)).byVersion, { v2: 100 });
  });
});
