// Triggers coalesce: reasons gathered while a pass runs become one next pass; close() ends the loop.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Triggers } from '../../agent/triggers.js';
import { settle } from '../helpers/fake-clock.js';

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
