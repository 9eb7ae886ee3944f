// The node claim against a real etcd: created, taken over from this node's dead predecessor by compare-and-swap
// (never over a claim that changed in between), refused when another agent holds it; renewed without writing
// while it is held, put back when absent, lost (and left alone) when another agent holds it. The node status
// of an agent that stood down is written only where no other lease holds it.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Etcd3 } from 'etcd3';
import { silentLogger, type Logger } from '../../agent/core/logger.js';
import { systemClock } from '../../agent/core/clock.js';
import { ConflictError } from '../../agent/core/errors.js';
import { createEtcd } from '../../agent/adapters/etcd/etcd-client.js';
import { NodeClaim, type ClaimValue } from '../../agent/adapters/etcd/node-claim.js';
import { StatusWriter, type NodeStatus } from '../../agent/adapters/etcd/status-writer.js';
import { startEtcd, uniquePrefix, type TestEtcd } from '../helpers/etcd.js';

let server: TestEtcd;
let etcd: Etcd3;

before(async () => {
  server = await startEtcd();
  etcd = createEtcd({ endpoints: [server.url], prefix: '', retries: 0, dialTimeoutMs: 1_000 });
});

after(async () => {
  etcd?.close();
  await server?.stop();
});

const grant = async () => String((await etcd.leaseClient.leaseGrant({ TTL: 30, ID: 0 })).ID);
const me = { node: 'node-a', host: 'host-a', pid: 4100, stateDir: '/var/lib/meshlet', started: 'boot-1/500' };

async function kv(key: string) {
  const k = (await etcd.get(key).exec()).kvs[0];
  return k ? { value: k.value.toString(), lease: String(k.lease), mod: String(k.mod_revision) } : undefined;
}

function setup(alive: (pid: number) => boolean = () => false) {
  const key = `${uniquePrefix()}/nodes/node-a/agent`;
  const infos: string[] = [];
  const log: Logger = { ...silentLogger, info: (msg, f) => void infos.push(`${msg} ${JSON.stringify(f)}`) };
  return { key, infos, claim: new NodeClaim(etcd, key, me, log, alive) };
}

const claimOf = (v: Partial<ClaimValue> & { lease: string }) => JSON.stringify({ ...me, pid: 3900, started: 'boot-1/400', ...v });

test('a free node is claimed under the lease, naming host, pid, state dir and start time; release deletes it', async () => {
  const { key, claim } = setup();
  const lease = await grant();
  await claim.take(lease);
  assert.equal(claim.state, 'held');
  const held = await kv(key);
  assert.deepEqual({ value: JSON.parse(held!.value), lease: held!.lease }, { value: { ...me, lease }, lease });
  await claim.release(lease);
  assert.equal(await kv(key), undefined);
});

test('the claim of this node\'s dead predecessor under another lease is swapped for this one, and said so', async () => {
  const { key, claim, infos } = setup(() => false);
  const [mine, theirs] = [await grant(), await grant()];
  await etcd.put(key).value(claimOf({ lease: theirs })).lease(theirs).exec();
  assert.equal(await claim.predecessorLease(), theirs, 'its lease can be adopted');
  await claim.take(mine);
  const held = await kv(key);
  assert.equal(held?.lease, mine);
  assert.equal(JSON.parse(held!.value).pid, me.pid);
  assert.deepEqual(infos, [`took over the node claim of this node's previous run ${JSON.stringify({ previous: `pid 3900 on host host-a, lease ${theirs}, state dir /var/lib/meshlet`, lease: mine })}`]);
});

test('a claim of another live agent is refused, naming it, and left exactly as it was', async () => {
  const { key, claim } = setup(() => true);
  const [mine, theirs] = [await grant(), await grant()];
  await etcd.put(key).value(claimOf({ lease: theirs })).lease(theirs).exec();
  const before = await kv(key);
  assert.equal(await claim.predecessorLease(), undefined, 'a live agent\'s lease is never adopted');
  await assert.rejects(claim.take(mine), (err: Error) => {
    assert.ok(err instanceof ConflictError);
    assert.equal(err.message, `node node-a is already run by another agent (pid 3900 on host host-a, lease ${theirs}, state dir /var/lib/meshlet); stop it first, or wait for its lease to expire if it died`);
    return true;
  });
  assert.deepEqual(await kv(key), before);
});

test('compare-and-swap: a claim that another agent took between the look and the swap is not overwritten', async () => {
  const [mine, theirs, newcomer] = [await grant(), await grant(), await grant()];
  const key = `${uniquePrefix()}/nodes/node-a/agent`;
  const racer = JSON.stringify({ node: 'node-a', host: 'host-b', pid: 7, lease: newcomer });
  let judged = 0;
  // While the predecessor's claim is being judged (its pid checked), agent B on host-b claims the node.
  const claim = new NodeClaim(etcd, key, me, silentLogger, () => {
    judged++;
    return false;
  });
  await etcd.put(key).value(claimOf({ lease: theirs })).lease(theirs).exec();
  const realIf = etcd.if.bind(etcd);
  let raced = false;
  (etcd as { if: typeof etcd.if }).if = (...args: Parameters<typeof etcd.if>) => {
    if (args[1] === 'Mod' && !raced) {
      raced = true;
      const txn = { then: (...ops: Parameters<ReturnType<typeof etcd.if>['then']>) => ({ options: () => txn.commitWith(ops), commit: () => txn.commitWith(ops).commit() }),
        commitWith: (ops: Parameters<ReturnType<typeof etcd.if>['then']>) => ({ commit: async () => {
          await etcd.put(key).value(racer).lease(newcomer).exec();
          return realIf(...args).then(...ops).commit();
        } }) };
      return txn as unknown as ReturnType<typeof etcd.if>;
    }
    return realIf(...args);
  };
  try {
    await assert.rejects(claim.take(mine), new RegExp(`already run by another agent \\(pid 7 on host host-b, lease ${newcomer}\\)`));
  } finally {
    (etcd as { if: typeof etcd.if }).if = realIf;
  }
  assert.ok(raced);
  assert.equal(judged, 1);
  const held = await kv(key);
  assert.deepEqual({ value: held?.value, lease: held?.lease }, { value: racer, lease: newcomer }, 'B\'s claim stands');
});

test('renew: held under this lease, nothing is written; absent, put back; held by another agent, lost and left alone', async () => {
  const { key, claim } = setup(() => true);
  const [mine, theirs] = [await grant(), await grant()];
  await claim.take(mine);
  const before = await kv(key);
  assert.equal(await claim.renew(mine), 'held');
  assert.equal((await kv(key))?.mod, before?.mod, 'no write');

  await etcd.delete().key(key).exec();
  assert.equal(await claim.renew(mine), 'held');
  assert.equal((await kv(key))?.lease, mine, 'put back');

  // This very process under a lease it held before (re-granted meanwhile): taken back.
  const newer = await grant();
  assert.equal(await claim.renew(newer), 'held');
  assert.equal((await kv(key))?.lease, newer);

  const other = JSON.stringify({ node: 'node-a', host: 'host-b', pid: 7, lease: theirs });
  await etcd.put(key).value(other).lease(theirs).exec();
  const lost: string[] = [];
  claim.on('lost', (who) => lost.push(who));
  assert.equal(await claim.renew(newer), 'lost');
  assert.equal(await claim.renew(newer), 'lost');
  assert.deepEqual(lost, [`pid 7 on host host-b, lease ${theirs}`], 'emitted once');
  assert.equal(claim.heldBy, `pid 7 on host host-b, lease ${theirs}`);
  const after = await kv(key);
  assert.deepEqual({ value: after?.value, lease: after?.lease }, { value: other, lease: theirs });
});

test('renew under a lease etcd no longer has fails (the caller retries); the key is not written', async () => {
  const { key, claim } = setup();
  const mine = await grant();
  await claim.take(mine);
  await etcd.leaseClient.leaseRevoke({ ID: mine });
  await assert.rejects(claim.renew(mine), /lease not found/);
  assert.equal(await kv(key), undefined);
});

test('a status writer that stood down writes its note only where no other lease holds the key, then nothing', async () => {
  const [mine, theirs] = [await grant(), await grant()];
  const status = (pid: number): NodeStatus => ({ node: 'node-a', agentVersion: 't', host: 'h', pid, lease: '', leaseTtl: 10, rejected: [], composeRuns: 1, workloads: [] });
  const free = `${uniquePrefix()}/nodes/node-a/status`;
  const w1 = new StatusWriter(etcd, free, mine, systemClock, silentLogger);
  assert.equal(await w1.standDown(mine, { claimLost: { heldBy: 'B' } }), true);
  assert.deepEqual(JSON.parse((await kv(free))!.value).claimLost, { heldBy: 'B' });

  const taken = `${uniquePrefix()}/nodes/node-a/status`;
  await etcd.put(taken).value(JSON.stringify(status(7))).lease(theirs).exec();
  const w2 = new StatusWriter(etcd, taken, mine, systemClock, silentLogger);
  const before = await kv(taken);
  assert.equal(await w2.standDown(mine, { claimLost: { heldBy: 'B' } }), false);
  await w2.write(status(4100));
  await w2.rebind(mine);
  assert.deepEqual(await kv(taken), before, 'the other agent\'s status is untouched');
});
