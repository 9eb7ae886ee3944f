// The member gate's rules, with fake calls (the real failover runs in test/integration/etcd-failover.test.ts):
// a member whose call failed for want of a connection or a deadline is skipped while another is up, its streams
// are cancelled, nothing is skipped once every member is down; and `--etcd a,b,c` reaches the client as three.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EtcdError, GRPCDeadlineExceededError, GRPCUnavailableError } from 'etcd3';
import { MemberDownError, MemberHealth, isUnsent } from '../../agent/adapters/etcd/member-health.js';
import { createEtcd } from '../../agent/adapters/etcd/etcd-client.js';
import { connectionOf } from '../../agent/commands/etcd-options.js';

// Closed ports: the probes (every second) would find them down; each test ends before the first probe.
const [a, b, c] = ['http://127.0.0.1:1', 'http://127.0.0.1:2', 'http://127.0.0.1:3'];
const ok = () => Promise.resolve('answer');
const fails = (err: Error) => () => Promise.reject(err);

test('a member that failed for want of a connection is skipped while another is up; an answered error keeps it in', async (t) => {
  const events: string[] = [];
  const health = new MemberHealth([a, b, c], {}, { down: (h) => events.push(`down ${h}`), up: (h) => events.push(`up ${h}`) });
  t.after(() => health.close());
  await assert.rejects(health.gate(a).execute(fails(new EtcdError('etcdserver: mvcc: required revision has been compacted'))), EtcdError);
  assert.equal(await health.gate(a).execute(ok), 'answer', 'etcd answered: the member is there');
  await assert.rejects(health.gate(a).execute(fails(new GRPCUnavailableError('14 UNAVAILABLE: No connection established'))), GRPCUnavailableError);
  let called = false;
  await assert.rejects(health.gate(a).execute(() => ((called = true), ok())), (err) => err instanceof MemberDownError && isUnsent(err));
  assert.equal(called, false, 'the gate refused without calling: etcd3 tries the next member');
  assert.equal(await health.gate(b).execute(ok), 'answer');
  assert.deepEqual(Object.keys(health.down()), [a]);
  assert.deepEqual(events, [`down ${a}`]);
});

test('with every member down, calls go through: better a try than no etcd at all', async (t) => {
  const health = new MemberHealth([a, b], {});
  t.after(() => health.close());
  await assert.rejects(health.gate(a).execute(fails(new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED'))));
  await assert.rejects(health.gate(b).execute(fails(new GRPCUnavailableError('14 UNAVAILABLE: read ECONNRESET'))));
  assert.equal(await health.gate(a).execute(ok), 'answer');
});

test('a stream opened on a member is cancelled when the member goes down, so its owner reopens it elsewhere', async (t) => {
  const health = new MemberHealth([a, b], {});
  t.after(() => health.close());
  let cancelled = 0;
  const listeners = new Map<string, () => void>();
  const stream = { cancel: () => void cancelled++, once: (ev: string, fn: () => void) => listeners.set(ev, fn) };
  await health.gate(a).execute(() => stream);
  await assert.rejects(health.gate(a).execute(fails(new GRPCUnavailableError('14 UNAVAILABLE: Connection dropped'))));
  assert.equal(cancelled, 1);
  // An ended stream is forgotten: not cancelled again.
  const ended = { cancel: () => void cancelled++, once: (ev: string, fn: () => void) => ev === 'end' && setImmediate(fn) };
  await health.gate(b).execute(() => ended);
  await new Promise((r) => setImmediate(r));
  await assert.rejects(health.gate(b).execute(fails(new GRPCUnavailableError('14 UNAVAILABLE'))));
  assert.equal(cancelled, 1);
});

test('isUnsent: only a call that had no connection (or a refused gate) may go to another member', () => {
  assert.equal(isUnsent(new GRPCUnavailableError('14 UNAVAILABLE: No connection established. Last error: connect ECONNREFUSED 127.0.0.1:1')), true);
  assert.equal(isUnsent(new GRPCUnavailableError('14 UNAVAILABLE: read ECONNRESET')), false, 'may have reached the member');
  assert.equal(isUnsent(new GRPCDeadlineExceededError('4 DEADLINE_EXCEEDED')), false);
});

test('--etcd a,b,c reaches the client as three members, each with a gate; one endpoint gets none', (t) => {
  const conn = connectionOf({ etcd: `${a}, ${b},${c}`, prefix: '/meshlet' });
  assert.deepEqual(conn.endpoints, [a, b, c]);
  const three = createEtcd({ ...conn, retries: 0 });
  t.after(() => three.close());
  assert.ok(three.health);
  assert.deepEqual(three.health.down(), {});
  const one = createEtcd({ ...connectionOf({ etcd: a, prefix: '/meshlet' }), retries: 0 });
  t.after(() => one.close());
  assert.equal(one.health, undefined);
});
