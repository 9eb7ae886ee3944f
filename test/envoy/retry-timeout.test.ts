// Route timeouts and retries through a real Envoy sidecar: a timeout answers 504; Istio's default retries
// (and explicit ones) hide an instance that answers 503 or refuses connections; `attempts: 0` does not.
import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { send, sendMany, type HttpTally } from '../helpers/http-apps.js';
import { destination, startTrafficMesh, type TrafficMesh } from '../helpers/traffic-mesh.js';

let t: TrafficMesh;

// RANDOM balancing: a retry that could land on the failed host again would do so 1 time in 2 (12.5% of
// requests failing with 2 retries), so only a retry policy that skips previous hosts (as Istio's does)
// hides a bad instance. That policy re-picks at most 5 times: 1 request in ~2,000 may still fail.
const rules = (route: string) => `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: api }
spec:
  host: api
  trafficPolicy: { loadBalancer: { simple: RANDOM } }
  subsets: [{ name: v1, labels: { version: v1 } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api }
spec:
  hosts: [api]
  http:
    - route: [${destination('v1')}]
${route.replace(/^/gm, '      ')}
`;

before(async () => {
  t = await startTrafficMesh({ v1: 2 });
});

beforeEach(() => t.reset());

after(async () => {
  await t?.stop();
});

/** All but a handful (see above) of 1,000 requests answered 200 by the good instance; the rest `status`. */
function assertHidden(tally: HttpTally, status: number): void {
  const ok = tally.byStatus[200] ?? 0;
  assert.equal(ok + (tally.byStatus[status] ?? 0), 1000, JSON.stringify(tally.byStatus));
  assert.ok(ok >= 995, `only ${ok} of 1000 answered 200: ${JSON.stringify(tally.byStatus)}`);
  assert.ok(tally.replies.every((r) => r.status !== 200 || r.app === 'api-v1-0'), 'every 200 came from the good instance');
}

test('timeout: an app slower than the route timeout gets 504 from Envoy, well before the app answers', async () => {
  await t.apply(rules('timeout: 300ms'));
  for (const a of t.apps.v1!) a.behave({ kind: 'delay', ms: 3000 });
  const r = await send(t.port);
  assert.equal(r.status, 504);
  assert.match(r.body, /upstream request timeout/);
  assert.ok(r.ms >= 295 && r.ms < 2500, `answered after ${r.ms.toFixed(0)} ms`);
});

test('no timeout set: a slow answer (1.5 s) still arrives (Istio disables the route timeout by default)', async () => {
  await t.apply(rules(''));
  for (const a of t.apps.v1!) a.behave({ kind: 'delay', ms: 1500 });
  const r = await send(t.port);
  assert.equal(r.status, 200);
  assert.ok(r.ms >= 1490);
});

test('default retries hide an instance that answers 503', async () => {
  await t.apply(rules(''));
  t.app('v1', 1).behave({ kind: 'status', status: 503 });
  const tally = await sendMany(t.port, 1000, { concurrency: 16 });
  assertHidden(tally, 503);
  assert.ok(t.app('v1', 1).seen.length > 100, `the bad instance was tried ${t.app('v1', 1).seen.length} times`);
});

test('retries: {attempts: 0} turns them off: about half the requests see the 503', async () => {
  await t.apply(rules('retries: { attempts: 0 }'));
  t.app('v1', 1).behave({ kind: 'status', status: 503 });
  const tally = await sendMany(t.port, 1000, { concurrency: 16 });
  const failed = tally.byStatus[503] ?? 0;
  assert.equal(failed + (tally.byStatus[200] ?? 0), 1000);
  assert.ok(failed >= 400 && failed <= 600, `${failed} of 1000 saw 503`);
  assert.equal(t.app('v1', 1).seen.length, failed, 'each request went to one instance once');
});

test('default retries hide an instance that refuses connections (closed)', async () => {
  await t.apply(rules(''));
  await t.app('v1', 1).close();
  try {
    const tally = await sendMany(t.port, 1000, { concurrency: 16 });
    assertHidden(tally, 503);
  } finally {
    await t.app('v1', 1).reopen();
  }
});

test('default retries cover 503 only: an instance answering 500 shows through', async () => {
  await t.apply(rules(''));
  t.app('v1', 1).behave({ kind: 'status', status: 500 });
  const tally = await sendMany(t.port, 1000, { concurrency: 16 });
  const failed = tally.byStatus[500] ?? 0;
  assert.ok(failed >= 400 && failed <= 600, `${failed} of 1000 saw 500`);
});

test('retries: {attempts: 3, retryOn: 5xx} hide an instance answering 500', async () => {
  await t.apply(rules('retries: { attempts: 3, retryOn: 5xx }'));
  t.app('v1', 1).behave({ kind: 'status', status: 500 });
  const tally = await sendMany(t.port, 1000, { concurrency: 16 });
  assertHidden(tally, 500);
});

test('retries with perTryTimeout: a hanging instance is abandoned after the per-try timeout and retried elsewhere', async () => {
  await t.apply(rules('retries: { attempts: 2, perTryTimeout: 200ms, retryOn: 5xx }'));
  t.app('v1', 1).behave({ kind: 'delay', ms: 5000 });
  const tally = await sendMany(t.port, 40, { concurrency: 20 });
  assert.deepEqual(tally.byStatus, { 200: 40 });
  assert.deepEqual(tally.byApp, { 'api-v1-0': 40 });
  const slowest = Math.max(...tally.replies.map((r) => r.ms));
  assert.ok(slowest < 4000, `slowest ${slowest.toFixed(0)} ms: the 5 s instance was waited for`);
});
