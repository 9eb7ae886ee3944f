// Istio fault injection through a real Envoy sidecar: aborts at a percentage (fractional and the older
// integer `percent`), delays that hold a request at least the fixed delay, at 100% and at a percentage.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { sendMany } from '../helpers/http-apps.js';
import { destination, startTrafficMesh, type TrafficMesh } from '../helpers/traffic-mesh.js';

let t: TrafficMesh;

const withFault = (fault: string) => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api }
spec:
  hosts: [api]
  http:
    - fault: ${fault}
      route: [${destination('v1')}]
`;

before(async () => {
  t = await startTrafficMesh({ v1: 1 });
});

after(async () => {
  await t?.stop();
});

for (const [label, abort, want] of [
  ['percentage 30', '{ httpStatus: 503, percentage: { value: 30 } }', 30],
  ['percentage 12.5 (per million)', '{ httpStatus: 503, percentage: { value: 12.5 } }', 12.5],
  ['older percent 40', '{ httpStatus: 503, percent: 40 }', 40],
] as const) {
  test(`abort 503 at ${label}: share of 2,000 requests within 4 points, the rest reach the app`, async () => {
    await t.apply(withFault(`{ abort: ${abort} }`));
    t.reset();
    const tally = await sendMany(t.port, 2000, { concurrency: 16 });
    const aborted = tally.byStatus[503] ?? 0;
    assert.equal(aborted + (tally.byStatus[200] ?? 0), 2000, JSON.stringify(tally.byStatus));
    assert.ok(Math.abs((aborted / 2000) * 100 - want) <= 4, `aborted ${aborted} of 2000 (want ${want}% ± 4)`);
    // An aborted request never reaches the app; the others all do.
    assert.equal(t.app('v1').seen.length, tally.byStatus[200]);
    const sample = tally.replies.find((r) => r.status === 503)!;
    assert.equal(sample.version, undefined, 'the abort comes from Envoy, not the app');
    assert.match(sample.body, /fault filter abort/);
  });
}

test('abort with another status at 100%: every request gets it from Envoy', async () => {
  await t.apply(withFault('{ abort: { httpStatus: 418, percentage: { value: 100 } } }'));
  t.reset();
  const tally = await sendMany(t.port, 200, { concurrency: 8 });
  assert.deepEqual(tally.byStatus, { 418: 200 });
  assert.equal(t.app('v1').seen.length, 0);
});

test('delay 400ms at 100%: every request takes at least the delay and still reaches the app', async () => {
  await t.apply(withFault('{ delay: { fixedDelay: 400ms, percentage: { value: 100 } } }'));
  t.reset();
  const tally = await sendMany(t.port, 40, { concurrency: 20 });
  assert.deepEqual(tally.byStatus, { 200: 40 });
  assert.deepEqual(tally.byVersion, { v1: 40 });
  const fastest = Math.min(...tally.replies.map((r) => r.ms));
  assert.ok(fastest >= 395, `fastest reply took ${fastest.toFixed(1)} ms (want ≥ 400)`);
});

test('delay 300ms at 50%: Envoy holds about half of 400 requests (± 10 points), each at least the delay', async () => {
  await t.apply(withFault('{ delay: { fixedDelay: 300ms, percentage: { value: 50 } } }'));
  t.reset();
  const injected = async () => (await t.sidecar.stats('^http\\.api\\.fault\\.delays_injected$'))['http.api.fault.delays_injected'] ?? 0;
  const before = await injected();
  const tally = await sendMany(t.port, 400, { concurrency: 50 });
  assert.deepEqual(tally.byStatus, { 200: 400 });
  const delayed = (await injected()) - before;
  assert.ok(Math.abs((delayed / 400) * 100 - 50) <= 10, `${delayed} of 400 delayed (want 50% ± 10)`);
  // Every delayed request took at least the delay; a busy machine may make a few others slow too.
  const held = tally.replies.filter((r) => r.ms >= 295).length;
  assert.ok(held >= delayed && held <= delayed + 40, `${held} replies took ≥ 300 ms, Envoy delayed ${delayed}`);
});

test('a route without fault is neither aborted nor delayed', async () => {
  await t.apply(`
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api }
spec:
  hosts: [api]
  http: [{ route: [${destination('v1')}] }]
`);
  t.reset();
  const tally = await sendMany(t.port, 500, { concurrency: 16 });
  assert.deepEqual(tally.byStatus, { 200: 500 });
});
