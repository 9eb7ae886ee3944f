// The canary verbs through the real agent, real compose and real Envoy sidecars: `meshlet route`, `promote` and
// `rollback` change where web's sidecar sends requests, restart nothing, and 20 flips under load fail no request.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import type { RunningAgent } from '../../agent/agent.js';
import { startEtcd, freePort, type TestEtcd } from '../helpers/etcd.js';
import { tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { putDocs, randomPortBase } from '../helpers/local-mesh.js';
import { runCli } from '../helpers/cli.js';
import { composeDown, containerIds, requests, share, startLoad, stopLoads, startLocalAgent, trafficMesh, type LoadTally } from '../helpers/agent-traffic.js';

const node = `canary-${Math.random().toString(36).slice(2, 8)}`;
const prefix = `/c-${node}`;
const base = randomPortBase();
const proxy = base + 3;
const stateDir = tempDir('meshlet-traffic-canary-');
let etcdServer: TestEtcd;
let etcd: Etcd3;
let agent: RunningAgent;
let idsAtStart: Record<string, string>;

const flags = () => ['--etcd', etcdServer.url, '--prefix', prefix];

async function cli(...args: string[]): Promise<void> {
  const r = await runCli([...args, ...flags()]);
  assert.equal(r.code, 0, `meshlet ${args.join(' ')}: ${r.err}`);
}

/** Waits until 200 requests through web's sidecar all answer and `check` holds for their tally. */
async function waitTraffic(what: string, check: (t: LoadTally) => boolean): Promise<LoadTally> {
  return waitFor(what, async () => {
    const t = await requests(proxy, 200);
    return t.ok === 200 && check(t) ? t : undefined;
  }, 30_000, 100);
}

before(async () => {
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
  await putDocs(etcd, prefix, trafficMesh(base, node, { weights: { v1: 90, v2: 10 } }));
  agent = await startLocalAgent({ node, etcdUrl: etcdServer.url, prefix, stateDir, xdsPort: await freePort(), base });
  // Up: both api versions healthy, registered and answering through web's sidecar.
  await waitTraffic('both versions answering through web\'s sidecar', (t) => (t.byVersion.v1 ?? 0) > 0 && (t.byVersion.v2 ?? 0) > 0);
  idsAtStart = await containerIds(node);
});

after(async () => {
  await stopLoads();
  await agent?.stop();
  composeDown(node, stateDir);
  etcd?.close();
  await etcdServer?.stop();
});

test('the mesh runs six containers: three apps, three real Envoy sidecars', () => {
  assert.deepEqual(Object.keys(idsAtStart), ['api-v1', 'api-v1-envoy', 'api-v2', 'api-v2-envoy', 'web-v1', 'web-v1-envoy']);
});

test('90/10 from the VirtualService, then route 50/50, promote v2 and rollback, each followed by the sidecar', async () => {
  const start = await requests(proxy, 1000);
  assert.equal(start.ok, 1000, JSON.stringify(start.failures.slice(0, 3)));
  // 10% of 1,000: binomial sd ≈ 9.5; ±5 sd.
  assert.ok(share(start, 'v2') >= 0.05 && share(start, 'v2') <= 0.15, `90/10: v2 got ${start.byVersion.v2 ?? 0} of 1000`);

  await cli('route', 'api', '--weights', 'v1=50,v2=50');
  const half = await waitTraffic('a 50/50 split', (t) => share(t, 'v1') > 0.3 && share(t, 'v2') > 0.3);
  const more = await requests(proxy, 1000);
  assert.equal(more.ok, 1000);
  assert.ok(share(more, 'v2') >= 0.42 && share(more, 'v2') <= 0.58, `50/50: v2 got ${more.byVersion.v2 ?? 0} of 1000 (first look ${JSON.stringify(half.byVersion)})`);

  await cli('promote', 'api', 'v2');
  await waitTraffic('every request on v2', (t) => t.byVersion.v2 === 200);
  const promoted = await requests(proxy, 500);
  assert.deepEqual(promoted.byVersion, { v2: 500 });

  // rollback restores the weights before the last route/promote: 50/50.
  await cli('rollback', 'api');
  await waitTraffic('50/50 again after rollback', (t) => share(t, 'v1') > 0.3 && share(t, 'v2') > 0.3);
  const back = await etcd.get(`${prefix}/desired/routes/api`).string();
  assert.match(back!, /"weight":50/);

  assert.deepEqual(await containerIds(node), idsAtStart, 'no container was recreated by a weight change');
});

test('20 flips v1=100/v2=0 ↔ v1=0/v2=100 under continuous load: no failed request, both versions answer', async () => {
  await cli('route', 'api', '--weights', 'v1=100,v2=0');
  await waitTraffic('v1 only', (t) => t.byVersion.v1 === 200);
  const load = startLoad(proxy, { workers: 4, pauseMs: 2 });
  const sides: string[] = [];
  for (let i = 0; i < 20; i++) {
    const to = i % 2 === 0 ? 'v2' : 'v1';
    await cli('route', 'api', '--weights', to === 'v2' ? 'v1=0,v2=100' : 'v1=100,v2=0');
    // Each flip must reach the sidecar before the next: the load itself shows it (`to` answers again).
    const seen = load.tally.byVersion[to] ?? 0;
    await waitFor(`flip ${i + 1} (to ${to}) to show in the load`, () => (load.tally.byVersion[to] ?? 0) >= seen + 20, 30_000, 10);
    sides.push(to);
    // Let some traffic run on this side before the next flip.
    const mark = load.tally.ok;
    await waitFor('traffic between flips', () => load.tally.ok >= mark + 50, 30_000, 10);
  }
  const t = await load.stop();
  assert.deepEqual(t.failures, [], `failed requests while flipping (of ${t.total})`);
  assert.ok(t.total >= 1000, `load ran: ${t.total} requests`);
  assert.ok((t.byVersion.v1 ?? 0) > 100 && (t.byVersion.v2 ?? 0) > 100, `both versions answered: ${JSON.stringify(t.byVersion)}`);
  assert.equal(sides.length, 20);
  // The last flip went to v1 (an even count): every request now lands there.
  await waitTraffic('v1 only after the last flip', (x) => x.byVersion.v1 === 200);
  assert.deepEqual(await containerIds(node), idsAtStart, 'no container was recreated while flipping');
  console.log(`# flips: 20, requests ${t.total}, failed ${t.failures.length}, by version ${JSON.stringify(t.byVersion)}`);
});
