// The node claim's pure parts and the claim holder with fakes: whose a claim is, whether a recorded process
// lives, what a state.json holds (a corrupt one moved aside and named), and holdClaim's order of things on a
// re-granted lease and its periodic check, up to the stand-down when another agent holds the node.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../../agent/core/logger.js';
import { whoseClaim, type ClaimState, type ClaimValue } from '../../agent/adapters/etcd/node-claim.js';
import { processAlive, processStart } from '../../agent/adapters/host/processes.js';
import { parseState, StateStore } from '../../agent/adapters/files/state-store.js';
import { holdClaim, type HoldOptions } from '../../agent/start/hold-claim.js';
import { FakeClock, T0 } from '../helpers/fake-clock.js';
import { tempDir } from '../helpers/paths.js';

const me: ClaimValue = { node: 'node-a', host: 'host-a', pid: 4100, lease: '77', stateDir: '/var/lib/meshlet', started: 'boot-1/500' };
const dead = () => false;
const alive = () => true;
const held = (v: Partial<ClaimValue>, lease = '55') => ({ lease, value: JSON.stringify({ ...me, pid: 3900, started: 'boot-1/400', lease, ...v }) });

function recordingLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const rec = (level: string) => (msg: string, fields?: Record<string, unknown>) => void lines.push(`${level} ${msg}${fields ? ` ${JSON.stringify(fields)}` : ''}`);
  return { lines, info: rec('info'), warn: rec('warn'), error: rec('error'), debug: () => {} };
}

describe('whoseClaim', () => {
  test('under this agent\'s lease: mine, whatever the value says', () => {
    assert.deepEqual(whoseClaim({ lease: '77', value: 'garbage' }, me, alive), { kind: 'mine' });
  });

  test('this very process under an older lease (same host, pid, start time and state dir): mine', () => {
    assert.deepEqual(whoseClaim(held({ pid: 4100, started: 'boot-1/500' }), me, alive), { kind: 'mine' });
    // Another agent in the same process (tests do that) is not.
    assert.equal(whoseClaim(held({ pid: 4100, started: 'boot-1/500', stateDir: '/srv/other' }), me, alive).kind, 'other');
  });

  test('same node, host and state dir, process gone: the predecessor\'s, to take over', () => {
    const w = whoseClaim(held({}), me, dead);
    assert.equal(w.kind, 'predecessor');
  });

  test('same node, host and state dir but the process lives: another agent\'s, named', () => {
    assert.deepEqual(whoseClaim(held({}), me, alive), { kind: 'other', who: 'pid 3900 on host host-a, lease 55, state dir /var/lib/meshlet' });
  });

  test('another host, another state dir, an older agent\'s claim without a state dir, or not a claim at all: another agent\'s', () => {
    for (const v of [{ host: 'host-b' }, { stateDir: '/srv/meshlet' }, { stateDir: undefined }, { node: 'node-b' }]) {
      assert.equal(whoseClaim(held(v), me, dead).kind, 'other', JSON.stringify(v));
    }
    assert.deepEqual(whoseClaim({ lease: '55', value: '{"pid":"x"}' }, me, dead), { kind: 'other', who: '{"pid":"x"}' });
    // Same pid (pid 1 in a container) but another start: not this process; the judge asks whether it lives.
    assert.equal(whoseClaim(held({ pid: 4100, started: 'boot-1/1' }), me, dead).kind, 'predecessor');
  });

  test('before this agent has a lease (me.lease empty) a lease-0 claim is not taken for its own', () => {
    assert.equal(whoseClaim({ lease: '0', value: 'x' }, { ...me, lease: '' }, dead).kind, 'other');
  });
});

describe('processAlive', () => {
  test('this process lives; one that ended does not; a reused pid (other start time) does not', () => {
    assert.equal(processAlive(process.pid, processStart(process.pid)), true);
    assert.equal(processAlive(process.pid), true);
    const ended = spawnSync('true').pid!;
    assert.equal(processAlive(ended), false);
    if (processStart(process.pid)) assert.equal(processAlive(process.pid, 'another-boot/1'), false);
    assert.equal(processAlive(0), false);
    assert.equal(processAlive(-3), false);
  });
});

describe('state.json', () => {
  test('parseState: a good file, unknown fields kept; each wrong type named', () => {
    const good = { node: 'n', leaseId: '123', adminPorts: { 'web-v1': 15100 }, appliedRevision: 4, appliedHash: 'h', appliedContainers: { web: 'x' }, future: { a: 1 } };
    assert.deepEqual(parseState(JSON.stringify(good)), { state: good });
    const cases: [string, RegExp][] = [
      ['{"node": "n", "leaseId": "12', /^not JSON/],
      ['', /^not JSON/],
      ['[1,2]', /not a JSON object/],
      ['null', /not a JSON object/],
      ['{"leaseId":"1"}', /^node is undefined, expected a string/],
      ['{"node":"n","leaseId":12}', /^leaseId is 12, expected a lease id/],
      ['{"node":"n","leaseId":"abc"}', /^leaseId is "abc"/],
      ['{"node":"n","adminPorts":{"a":"15100"}}', /^adminPorts is .*expected an object of port numbers/],
      ['{"node":"n","adminPorts":[15100]}', /^adminPorts/],
      ['{"node":"n","appliedRevision":"4"}', /^appliedRevision is "4", expected an integer/],
      ['{"node":"n","appliedContainers":{"a":1}}', /^appliedContainers/],
      ['{"node":"n","renderedHash":7}', /^renderedHash is 7, expected a string/],
    ];
    for (const [text, problem] of cases) {
      const r = parseState(text);
      assert.ok('problem' in r, text);
      assert.match(r.problem, problem, text);
    }
  });

  test('StateStore.load: a corrupt file is logged (warn, naming it), moved aside to state.json.corrupt-<time>, and treated as missing', async () => {
    const dir = tempDir('meshlet-state-');
    const log = recordingLog();
    const store = new StateStore(dir, { log, now: () => T0 });
    writeFileSync(store.path, '{"node": 42}');
    assert.deepEqual(await store.load('node-a'), { node: 'node-a', adminPorts: {} });
    const aside = join(dir, `state.json.corrupt-${new Date(T0).toISOString().replace(/:/g, '-')}`);
    assert.equal(readFileSync(aside, 'utf8'), '{"node": 42}');
    assert.equal(existsSync(store.path), false);
    assert.deepEqual(log.lines, [`warn state.json is corrupt; moved aside, starting without it ${JSON.stringify({ file: store.path, problem: 'node is 42, expected a string', movedTo: aside })}`]);
    // The next load finds no file: nothing more to say.
    assert.deepEqual(await store.load('node-a'), { node: 'node-a', adminPorts: {} });
    assert.equal(log.lines.length, 1);
    assert.deepEqual(readdirSync(dir), [aside.slice(dir.length + 1)]);
  });

  test('StateStore.load: a good file of this node loads; of another node only its ports; no file is empty, silently', async () => {
    const dir = tempDir('meshlet-state-');
    const log = recordingLog();
    const store = new StateStore(dir, { log });
    assert.deepEqual(await store.load('node-a'), { node: 'node-a', adminPorts: {} });
    writeFileSync(store.path, JSON.stringify({ node: 'node-b', leaseId: '9', adminPorts: { w: 15101 } }));
    assert.deepEqual(await store.load('node-a'), { node: 'node-a', adminPorts: { w: 15101 } });
    assert.deepEqual((await store.load('node-b')).leaseId, '9');
    assert.deepEqual(log.lines, []);
  });
});

/** A claim whose renew() answers from a script; a lease that can be re-granted by hand. */
function holdSetup(answers: (ClaimState | Error)[] = []) {
  const clock = new FakeClock();
  const log = recordingLog();
  const ops: string[] = [];
  const lease = Object.assign(new EventEmitter(), { id: '100', state: 'alive' as const });
  const claim = {
    heldBy: '',
    renew: async (id: string): Promise<ClaimState> => {
      ops.push(`renew ${id}`);
      const a = answers.shift() ?? 'held';
      if (a instanceof Error) throw a;
      if (a === 'lost') claim.heldBy = 'pid 9 on host host-b, lease 900';
      return a;
    },
  };
  const o: HoldOptions = {
    node: 'node-a', lease, claim, clock, log, checkEveryMs: 10_000,
    remember: (id) => void ops.push(`remember ${id}`),
    reconciler: { standDown: (r) => void ops.push(`standDown ${r}`), triggers: { notify: (r) => void ops.push(`notify ${r}`) } },
    registry: { rebind: async (id) => void ops.push(`registry.rebind ${id}`), stop: () => void ops.push('registry.stop') },
    status: {
      rebind: async (id) => void ops.push(`status.rebind ${id}`),
      standDown: async (id, note) => {
        ops.push(`status.standDown ${id} ${JSON.stringify(note)}`);
        return false;
      },
    },
  };
  const regrant = (id: string) => {
    lease.id = id;
    lease.emit('regranted', id);
  };
  return { clock, log, ops, o, regrant, hold: holdClaim(o) };
}

describe('holdClaim', () => {
  test('checks the claim every period under the current lease; held, nothing else happens', async () => {
    const { clock, ops, hold } = holdSetup();
    await clock.advance(9_999);
    assert.deepEqual(ops, []);
    await clock.advance(1);
    await clock.advance(10_000);
    assert.deepEqual(ops, ['renew 100', 'renew 100']);
    hold.stop();
    await clock.advance(30_000);
    assert.equal(ops.length, 2, 'stopped: no more checks');
  });

  test('a re-granted lease: the claim is put under it first, then state.json, status and registrations follow', async () => {
    const { clock, ops, regrant, hold } = holdSetup();
    regrant('200');
    await clock.advance(0);
    assert.deepEqual(ops, ['renew 200', 'remember 200', 'status.rebind 200', 'registry.rebind 200', 'notify lease re-granted']);
    hold.stop();
  });

  test('a re-granted lease while etcd does not answer: retried with backoff, and nothing is rebound before the claim is', async () => {
    const { clock, ops, log, regrant, hold } = holdSetup([new Error('etcd away'), new Error('etcd away')]);
    regrant('200');
    await clock.advance(0);
    assert.deepEqual(ops, ['renew 200']);
    await clock.advance(5_000);
    assert.deepEqual(ops, ['renew 200', 'renew 200', 'renew 200', 'remember 200', 'status.rebind 200', 'registry.rebind 200', 'notify lease re-granted']);
    assert.equal(log.lines.filter((l) => l.startsWith('warn cannot put the node claim under the new lease; retrying')).length, 1, 'warned once');
    hold.stop();
  });

  test('a re-granted lease finds the node claimed by another agent: stand down once, rebind nothing, keep state.json', async () => {
    const { clock, ops, log, regrant, hold } = holdSetup(['lost']);
    regrant('200');
    await clock.advance(0);
    const note = JSON.stringify({ claimLost: { heldBy: 'pid 9 on host host-b, lease 900', at: new Date(T0).toISOString() } });
    assert.deepEqual(ops, ['renew 200', 'standDown node node-a is run by another agent (pid 9 on host host-b, lease 900)', 'registry.stop', `status.standDown 200 ${note}`]);
    assert.deepEqual(log.lines.filter((l) => l.startsWith('error')).map((l) => l.split(' {')[0]), [
      'error node node-a is now run by another agent (pid 9 on host host-b, lease 900); this agent stops applying compose and writing registrations and status for it, and leaves its containers as they are: stop this agent',
    ]);
    // Later periods and re-grants change nothing, and say nothing more.
    ops.length = 0;
    await clock.advance(60_000);
    regrant('300');
    await clock.advance(0);
    assert.deepEqual(ops, [], 'the claim is not even looked at again');
    assert.equal(log.lines.filter((l) => l.startsWith('error')).length, 1);
    hold.stop();
  });

  test('the periodic check finds another agent\'s claim (put by hand, the lease never lapsed): stand down', async () => {
    const { clock, ops, hold } = holdSetup(['held', 'lost']);
    await clock.advance(20_000);
    assert.deepEqual(ops.slice(0, 4), ['renew 100', 'renew 100', 'standDown node node-a is run by another agent (pid 9 on host host-b, lease 900)', 'registry.stop']);
    await clock.advance(60_000);
    assert.equal(ops.filter((o) => o.startsWith('renew')).length, 2, 'no checks after standing down');
    hold.stop();
  });

  test('a periodic check that fails is tried again next period; a lost lease is left to the re-grant', async () => {
    const { clock, ops, o, hold } = holdSetup([new Error('etcd away')]);
    await clock.advance(20_000);
    assert.deepEqual(ops, ['renew 100', 'renew 100']);
    (o.lease as { state: string }).state = 'lost';
    await clock.advance(30_000);
    assert.deepEqual(ops, ['renew 100', 'renew 100']);
    hold.stop();
  });
});
