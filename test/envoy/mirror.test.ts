// Istio traffic mirroring through a real Envoy sidecar: the mirror target receives copies (Host suffixed
// `-shadow`), the caller only ever sees the primary's answer, and mirrorPercentage / `mirrors` sample.
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { sendMany } from '../helpers/http-apps.js';
import { destination, startTrafficMesh, type TrafficMesh } from '../helpers/traffic-mesh.js';
import { waitFor } from '../helpers/wait.js';

let t: TrafficMesh;

const vs = (extra: string) => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api }
spec:
  hosts: [api]
  http:
    - route: [${destination('v1')}]
${extra.replace(/^/gm, '      ')}
`;

before(async () => {
  t = await startTrafficMesh({ v1: 1, v2: 1, v3: 1 });
});

beforeEach(() => t.reset());

after(async () => {
  await t?.stop();
});

/** Mirrored copies are sent in the background: wait until the count stops growing. */
async function settled(count: () => number): Promise<number> {
  let last = -1;
  await waitFor('mirrored copies to settle', async () => {
    const now = count();
    const same = now === last;
    last = now;
    await new Promise((r) => setTimeout(r, 200));
    return same;
  }, 15_000, 0);
  return last;
}

test('mirror at 100%: every request is copied to v2 with Host api-shadow; the caller sees v1 only', async () => {
  await t.apply(vs('mirror: { host: api, subset: v2 }'));
  const tally = await sendMany(t.port, 300, { path: '/m', host: 'api', concurrency: 8 });
  assert.deepEqual(tally.byStatus, { 200: 300 });
  assert.deepEqual(tally.byVersion, { v1: 300 });
  assert.equal(await settled(() => t.app('v2').seen.length), 300);
  assert.equal(t.app('v1').seen.length, 300);
  const copy = t.app('v2').seen[0]!;
  assert.equal(copy.path, '/m');
  assert.equal(copy.headers.host, 'api-shadow');
  assert.equal(t.app('v3').seen.length, 0);
});

test("the mirror target's failures and slowness never reach the caller", async () => {
  await t.apply(vs('mirror: { host: api, subset: v2 }'));
  t.app('v2').behave({ kind: 'status', status: 500 });
  const failing = await sendMany(t.port, 200, { concurrency: 8 });
  assert.deepEqual(failing.byStatus, { 200: 200 });
  assert.deepEqual(failing.byVersion, { v1: 200 });
  t.app('v2').behave({ kind: 'delay', ms: 2000 });
  const slow = await sendMany(t.port, 50, { concurrency: 10 });
  assert.deepEqual(slow.byStatus, { 200: 50 });
  const slowest = Math.max(...slow.replies.map((r) => r.ms));
  assert.ok(slowest < 1900, `slowest reply ${slowest.toFixed(0)} ms: the caller waited for the mirror`);
});

test('mirrorPercentage 30: about 30% of 1,000 requests are copied (± 5 points)', async () => {
  await t.apply(vs('mirror: { host: api, subset: v2 }\nmirrorPercentage: { value: 30 }'));
  const tally = await sendMany(t.port, 1000, { concurrency: 16 });
  assert.deepEqual(tally.byStatus, { 200: 1000 });
  const copies = await settled(() => t.app('v2').seen.length);
  assert.ok(Math.abs(copies / 10 - 30) <= 5, `${copies} of 1000 copied (want 30% ± 5)`);
});

test('mirrors: two targets each sample on their own (v2 at 100%, v3 at 50%)', async () => {
  await t.apply(vs(`mirrors:
  - { destination: { host: api, subset: v2 } }
  - { destination: { host: api, subset: v3 }, percentage: { value: 50 } }`));
  const tally = await sendMany(t.port, 1000, { concurrency: 16 });
  assert.deepEqual(tally.byVersion, { v1: 1000 });
  assert.equal(await settled(() => t.app('v2').seen.length), 1000);
  const v3 = await settled(() => t.app('v3').seen.length);
  assert.ok(Math.abs(v3 / 10 - 50) <= 5, `${v3} of 1000 copied to v3 (want 50% ± 5)`);
});

test('no mirror: nothing is copied', async () => {
  await t.apply(vs(''));
  await sendMany(t.port, 200, { concurrency: 8 });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(t.app('v2').seen.length, 0);
  assert.equal(t.app('v3').seen.length, 0);
});
