// Taking the lease back after a restart, against a real etcd: a lease that still lives is adopted however little
// of its TTL is left (etcd reports the remaining TTL in whole seconds, so "0" can mean 999 ms left), and one
// that is gone is not.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import { createEtcd } from '../../agent/adapters/etcd/etcd-client.js';
import { NodeLease } from '../../agent/adapters/etcd/etcd-lease.js';
import { startEtcd, type TestEtcd } from '../helpers/etcd.js';
import { waitFor } from '../helpers/wait.js';

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

function newLease(ttl: number): NodeLease {
  const lease = new NodeLease(etcd, ttl, systemClock, silentLogger);
  leases.push(lease);
  return lease;
}

/** A lease nobody keeps alive, returned the moment etcd reports its remaining TTL as 0 (less than a second left). */
async function leaseInItsLastSecond(): Promise<{ id: string; seenAt: number }> {
  const { ID } = await etcd.leaseClient.leaseGrant({ TTL: 2, ID: 0 });
  await waitFor('the remaining TTL to read 0', async () => Number((await etcd.leaseClient.leaseTimeToLive({ ID, keys: false })).TTL) === 0, 5_000, 10);
  return { id: String(ID), seenAt: performance.now() };
}

test('a lease with less than a second left is adopted and renewed to its full TTL', async () => {
  const { id, seenAt } = await leaseInItsLastSecond();
  await etcd.put('/adoption/last-second').value('x').lease(id).exec();
  const lease = newLease(2);
  const res = await lease.start(id);
  const adoptedAfterMs = performance.now() - seenAt;
  console.log(`# adopted ${adoptedAfterMs.toFixed(0)} ms after etcd reported TTL 0 (less than 1 s left)`);
  assert.deepEqual(res, { id, adopted: true });
  const ttl = Number((await etcd.leaseClient.leaseTimeToLive({ ID: id, keys: false })).TTL);
  assert.ok(ttl >= 1, `renewed: TTL ${ttl}`);
  // Past the old expiry, the key under it is still there: the lease was kept, not replaced.
  await new Promise((r) => setTimeout(r, 1_500));
  assert.equal(await etcd.get('/adoption/last-second').string(), 'x');
  assert.equal(lease.id, id);
});

test('a lease that expired is not adopted: a new one is granted', async () => {
  const { ID } = await etcd.leaseClient.leaseGrant({ TTL: 2, ID: 0 });
  const id = String(ID);
  await waitFor('the lease to expire', async () => Number((await etcd.leaseClient.leaseTimeToLive({ ID: id, keys: false })).TTL) === -1, 6_000, 50);
  const res = await newLease(2).start(id);
  assert.equal(res.adopted, false);
  assert.notEqual(res.id, id);
});

test('a lease id that never existed, or is not a number, is not adopted', async () => {
  const never = await newLease(2).start('7587876543210987654');
  assert.equal(never.adopted, false);
  const garbage = await newLease(2).start('not-a-lease');
  assert.equal(garbage.adopted, false);
});
