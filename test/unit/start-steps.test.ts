// The agent's start machinery with fakes: the one shutdown (reverse order, every step, failures together,
// abandon after a failed start), the start-up retry and its abort signal, the loop handle, the Docker step.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type Docker from 'dockerode';
import { silentLogger } from '../../agent/core/logger.js';
import { ExternalError, ValidationError } from '../../agent/core/errors.js';
import { Triggers } from '../../agent/triggers.js';
import type { Reconciler } from '../../agent/reconcile.js';
import type { ComposeRunner } from '../../agent/adapters/docker/compose-runner.js';
import { Shutdown, runAll } from '../../agent/start/shutdown.js';
import { StartAborted, untilReachable } from '../../agent/start/until-reachable.js';
import { LoopHandle } from '../../agent/start/loop-handle.js';
import { connectDocker, type DockerAccess } from '../../agent/start/connect-docker.js';
import { FakeClock } from '../helpers/fake-clock.js';

describe('Shutdown', () => {
  test('runs every step in reverse order of start and reports all failures together', async () => {
    const ran: string[] = [];
    const s = new Shutdown();
    s.add('etcd', () => ran.push('etcd'));
    s.add('lease', () => {
      ran.push('lease');
      throw new Error('etcd away');
    });
    s.push('xds', { stop: async () => void ran.push('xds') });
    s.add('inputs', () => {
      ran.push('inputs');
      throw new Error('watcher stuck');
    });
    assert.deepEqual(await s.run(), ['inputs: watcher stuck', 'lease: etcd away']);
    assert.deepEqual(ran, ['inputs', 'xds', 'lease', 'etcd']);
    assert.deepEqual(await s.run(), ['inputs: watcher stuck', 'lease: etcd away'], 'a second call runs nothing again');
    assert.equal(ran.length, 4);
  });

  test('a failed start abandons: steps with an abandon run it instead of stop', async () => {
    const ran: string[] = [];
    const s = new Shutdown();
    s.push('lease', { stop: () => ran.push('lease stop'), abandon: () => ran.push('lease revoke') });
    s.add('xds', () => ran.push('xds stop'));
    assert.deepEqual(await s.run('abandon'), []);
    assert.deepEqual(ran, ['xds stop', 'lease revoke']);
  });

  test('runAll: one stop made of parts, every part runs, failures joined', async () => {
    const ran: string[] = [];
    const stop = runAll([['a', () => { ran.push('a'); throw new Error('x'); }], ['b', () => ran.push('b')], ['c', () => { throw new Error('y'); }]]);
    await assert.rejects(stop(), /^Error: a: x; c: y$/);
    assert.deepEqual(ran, ['a', 'b']);
  });
});

describe('untilReachable', () => {
  test('retries a recoverable failure with backoff until it succeeds', async () => {
    const clock = new FakeClock();
    let calls = 0;
    const p = untilReachable('etcd away', async () => {
      if (++calls < 3) throw new ExternalError('refused');
      return 'lease-1';
    }, clock, silentLogger, new AbortController().signal);
    await clock.advance(60_000);
    assert.equal(await p, 'lease-1');
    assert.equal(calls, 3);
  });

  test('a non-recoverable MeshletError ends it at once', async () => {
    const clock = new FakeClock();
    await assert.rejects(untilReachable('x', () => Promise.reject(new ValidationError([], 'bad')), clock, silentLogger, new AbortController().signal), ValidationError);
    assert.equal(clock.pending, 0);
  });

  test('the abort signal ends the backoff sleep and leaves no timer behind', async () => {
    const clock = new FakeClock();
    const abort = new AbortController();
    const p = untilReachable('etcd away', () => Promise.reject(new Error('refused')), clock, silentLogger, abort.signal);
    await clock.advance(0);
    assert.equal(clock.pending, 1, 'sleeping before the next attempt');
    abort.abort();
    await assert.rejects(p, StartAborted);
    assert.equal(clock.pending, 0);
  });

  test('the abort signal ends a call that hangs (a stalled etcd)', async () => {
    const abort = new AbortController();
    const p = untilReachable('etcd stalled', () => new Promise<never>(() => {}), new FakeClock(), silentLogger, abort.signal);
    abort.abort();
    await assert.rejects(p, StartAborted);
  });
});

test('LoopHandle: reasons sent before the loop exists reach it when attached, later ones at once', () => {
  const handle = new LoopHandle(silentLogger);
  handle.notify('drained');
  const triggers = new Triggers();
  const seen: string[] = [];
  const orig = triggers.notify.bind(triggers);
  triggers.notify = (r: string) => {
    seen.push(r);
    orig(r);
  };
  assert.equal(handle.state, undefined);
  handle.attach({ triggers, state: { node: 'n', adminPorts: {} } } as unknown as Reconciler);
  handle.notify('etcd');
  assert.deepEqual(seen, ['drained', 'etcd']);
  assert.deepEqual(handle.state, { node: 'n', adminPorts: {} });
});

describe('connectDocker', () => {
  const compose = { flavour: 'v1' } as ComposeRunner;
  const access = (ping: () => Promise<unknown>, calls: string[] = []): DockerAccess => ({
    detectCompose: async (mode, opts) => {
      calls.push(`detect ${mode} ${opts.dockerHost ?? '-'}`);
      return compose;
    },
    createDocker: (host) => {
      calls.push(`docker ${host ?? '-'}`);
      return { ping } as unknown as Docker;
    },
  });

  test('compose found and the daemon answers: both handed on', async () => {
    const calls: string[] = [];
    const host = await connectDocker('auto', 'unix:///run/d.sock', new FakeClock(), access(async () => 'OK', calls));
    assert.equal(host.compose, compose);
    assert.deepEqual(calls, ['detect auto unix:///run/d.sock', 'docker unix:///run/d.sock']);
  });

  test('a daemon that does not answer is an ExternalError naming where it was looked for', async () => {
    const err = Object.assign(new Error('connect ENOENT /nope.sock'), { code: 'ENOENT' });
    await assert.rejects(connectDocker('v1', 'unix:///nope.sock', new FakeClock(), access(() => Promise.reject(err))), (e: unknown) => {
      assert.ok(e instanceof ExternalError);
      assert.match(e.message, /^cannot reach Docker at unix:\/\/\/nope\.sock: connect ENOENT/);
      return true;
    });
  });

  test('a ping that never answers fails after its deadline', async () => {
    const clock = new FakeClock();
    const p = assert.rejects(connectDocker('v1', 'unix:///stalled.sock', clock, access(() => new Promise(() => {}))), /cannot reach Docker at unix:\/\/\/stalled\.sock: Docker ping: no answer within 10000 ms/);
    await clock.advance(10_000);
    await p;
  });
});
