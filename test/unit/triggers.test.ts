// Triggers coalesce: reasons gathered while a pass runs become one next pass; hold() is the backoff; close() ends the loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Triggers } from '../../agent/triggers.js';
import { jittered } from '../../agent/core/clock.js';
import { FakeClock, settle, T0 } from '../helpers/fake-clock.js';

test('reasons notified while no pass is waiting are delivered together, each once', async () => {
  const t = new Triggers();
  t.notify('etcd');
  t.notify('docker start web-v1');
  t.notify('etcd');
  const it = t[Symbol.asyncIterator]();
  assert.deepEqual((await it.next()).value, ['etcd', 'docker start web-v1']);
  t.close();
  assert.equal((await it.next()).done, true);
});

test('a waiting loop wakes on the first reason; reasons during a pass make exactly one more pass', async () => {
  const t = new Triggers();
  const passes: string[][] = [];
  let release!: () => void;
  const loop = (async () => {
    for await (const reasons of t) {
      passes.push(reasons);
      if (passes.length === 1) await new Promise<void>((r) => (release = r));
    }
  })();
  await settle();
  assert.deepEqual(passes, [], 'no pass without a reason');
  t.notify('etcd');
  await settle();
  assert.deepEqual(passes, [['etcd']]);
  // The first pass is still running: these three become one pass after it.
  t.notify('registry');
  t.notify('drift check');
  t.notify('registry');
  release();
  await settle();
  assert.deepEqual(passes, [['etcd'], ['registry', 'drift check']]);
  t.close();
  await loop;
  t.notify('after close');
  assert.equal(passes.length, 2, 'nothing is delivered after close');
});

test('close() ends a loop that is waiting for a reason', async () => {
  const t = new Triggers();
  let ended = false;
  const loop = (async () => {
    for await (const _ of t) assert.fail('no reason was notified');
    ended = true;
  })();
  await settle();
  t.close();
  await loop;
  assert.equal(ended, true);
});

test('hold(): reasons notified meanwhile wait for it; a waking one ends it, but not before the floor; close() ends it', async () => {
  const clock = new FakeClock();
  let t = new Triggers();
  const wakes = (r: string) => r === 'etcd';
  let ended = -1;
  void t.hold(clock, 10_000, 1_000, wakes).then(() => (ended = clock.now() - T0));
  t.notify('docker die web-v1');
  t.notify('etcd'); // before the floor
  await clock.advance(999);
  assert.equal(ended, -1, 'not before the floor');
  await clock.advance(1);
  assert.equal(ended, 1_000, 'a waking reason pending at the floor ends it there');

  ended = -1;
  t = new Triggers(); // nothing pending
  void t.hold(clock, 10_000, 1_000, wakes).then(() => (ended = clock.now() - T0));
  await clock.advance(3_000);
  t.notify('registry');
  await clock.advance(1_000);
  assert.equal(ended, -1, 'other reasons do not end it');
  t.notify('etcd');
  await settle();
  assert.equal(ended, 5_000, 'a waking reason after the floor ends it at once');

  ended = -1;
  void t.hold(clock, 30_000, 1_000, wakes).then(() => (ended = clock.now() - T0));
  await clock.advance(100);
  t.close();
  await settle();
  assert.equal(ended, 5_100, 'close() ends it');
  assert.equal(clock.pending, 0);
});

test('jittered(): within ±20 % of the value, never above the cap', () => {
  assert.equal(jittered(1_000, 30_000, () => 0), 800);
  assert.equal(jittered(1_000, 30_000, () => 0.5), 1_000);
  assert.equal(jittered(1_000, 30_000, () => 0.999), 1_200);
  assert.equal(jittered(30_000, 30_000, () => 0.999), 30_000);
});
