// Weighted splits through a real Envoy sidecar, configured by meshlet's renderer and ADS server.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { sendMany } from '../helpers/http-apps.js';
import { destination, startTrafficMesh, type TrafficMesh } from '../helpers/traffic-mesh.js';

let t: TrafficMesh;

const route = (w1: number, w2: number) => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api }
spec:
  hosts: [api]
  http:
    - route: [${destination('v1', w1)}, ${destination('v2', w2)}]
`;

before(async () => {
  t = await startTrafficMesh({ v1: 1, v2: 1 }, { rules: route(90, 10) });
});

after(async () => {
  await t?.stop();
});

for (const [w1, w2] of [[90, 10], [50, 50], [100, 0]] as const) {
  test(`${w1}/${w2} over 2,000 requests lands within 3 points`, async () => {
    await t.apply(route(w1, w2));
    const tally = await sendMany(t.port, 2000, { concurrency: 16 });
    assert.deepEqual(tally.byStatus, { 200: 2000 });
    const share = ((tally.byVersion.v2 ?? 0) / 2000) * 100;
    assert.ok(Math.abs(share - w2) <= 3, `v2 got ${share}% (want ${w2} ± 3): ${JSON.stringify(tally.byVersion)}`);
  });
}
