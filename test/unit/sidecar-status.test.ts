// What the node status says about sidecars and about containers that are down: pure joins, a recording log reader.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ContainerProblems, CRASH_LOOP_WINDOW_MS, sidecarStatus, troubledContainers } from '../../agent/xds/sidecar-status.js';
import { demuxLogs, type ContainerInfo } from '../../agent/adapters/docker/docker-observer.js';
import { oneLine } from '../../agent/commands/status.js';

test('every sidecar gets a row with its admin address, also one that never connected; xDS types read cds/eds/lds/rds', () => {
  const rows = sidecarStatus('node-a', { 'web-v1': 15102, 'api-v1': 15100 }, {
    'sidecar~node-a~web-v1': { connected: true, acked: { Cluster: 'c1', ClusterLoadAssignment: 'e1', Listener: 'l1', RouteConfiguration: 'r1' }, nack: { type: 'Listener', version: 'l2', message: 'duplicate address', at: '2026-01-01T00:00:00.000Z' } },
    'proxyless~node-a~other': { connected: true, acked: { Listener: 'x' } },
  });
  assert.deepEqual(rows, [
    { id: 'sidecar~node-a~api-v1', workload: 'api-v1', admin: '127.0.0.1:15100', connected: false, acked: {} },
    { id: 'sidecar~node-a~web-v1', workload: 'web-v1', admin: '127.0.0.1:15102', connected: true, acked: { cds: 'c1', eds: 'e1', lds: 'l1', rds: 'r1' }, nack: { type: 'lds', version: 'l2', message: 'duplicate address', at: '2026-01-01T00:00:00.000Z' } },
  ]);
});

const now = Date.parse('2026-01-01T00:01:00.000Z');
const c = (over: Partial<ContainerInfo>): ContainerInfo => ({ id: 'id1', name: 'p_web-v1-envoy_1', composeService: 'web-v1-envoy', state: 'running', image: 'envoy', restarts: 0, startedAt: '2026-01-01T00:00:00.000Z', ...over });

test('troubled: not running, unhealthy, or restarted within the crash-loop window; a long-running restarted one is fine', () => {
  const recent = new Date(now - CRASH_LOOP_WINDOW_MS / 2).toISOString();
  const picked = troubledContainers([
    c({ id: 'ok' }),
    c({ id: 'restarting', state: 'restarting', exitCode: 1, restarts: 3 }),
    c({ id: 'exited', state: 'exited', exitCode: 137 }),
    c({ id: 'unhealthy', health: 'unhealthy' }),
    c({ id: 'starting', health: 'starting' }),
    c({ id: 'just-restarted', restarts: 2, startedAt: recent }),
    c({ id: 'restarted-long-ago', restarts: 2 }),
  ], now);
  assert.deepEqual(picked.map((x) => x.id), ['restarting', 'exited', 'unhealthy', 'just-restarted']);
});

test('a container down is described with its exit code and log tail, read once per state; running again between crashes keeps the last exit code', async () => {
  const reads: string[] = [];
  const problems = new ContainerProblems({ logTail: async (id, n) => { reads.push(`${id} ${n}`); return ['critical: malformed IP address', 'exiting']; } }, () => now);
  const down = c({ state: 'restarting', exitCode: 1, restarts: 1 });
  const first = await problems.describe([down]);
  assert.deepEqual(first, [{ name: 'p_web-v1-envoy_1', composeService: 'web-v1-envoy', state: 'restarting', exitCode: 1, restarts: 1, logTail: ['critical: malformed IP address', 'exiting'] }]);
  await problems.describe([down]);
  assert.deepEqual(reads, ['id1 10'], 'the same state is not read again');
  const runningAgain = await problems.describe([c({ restarts: 2, startedAt: new Date(now - 1000).toISOString() })]);
  assert.equal(runningAgain[0]?.state, 'running');
  assert.equal(runningAgain[0]?.exitCode, 1);
  assert.deepEqual(await problems.describe([c({ restarts: 2 })]), [], 'stable for longer than the window: nothing to say');
});

test('Docker log frames are taken apart (stdout and stderr interleaved); plain text passes as it is', () => {
  const frame = (stream: number, text: string) => {
    const body = Buffer.from(text);
    const head = Buffer.alloc(8);
    head[0] = stream;
    head.writeUInt32BE(body.length, 4);
    return Buffer.concat([head, body]);
  };
  assert.equal(demuxLogs(Buffer.concat([frame(1, 'starting\n'), frame(2, 'malformed IP'), frame(2, ' address\n')])), 'starting\nmalformed IP address\n');
  assert.equal(demuxLogs(Buffer.from('tty output\n')), 'tty output\n');
});

test('a NACK message of several lines prints as one', () => {
  assert.equal(oneLine('Error adding listener(s) a: bad\n  b: worse\n'), 'Error adding listener(s) a: bad b: worse');
});
