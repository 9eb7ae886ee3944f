// Istio's older spellings (issue 14, item 6): those Istio still takes mean what their replacement means
// (same Envoy route); those it removed are refused by path with the replacement named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadDesired } from '../../agent/core/documents/desired.js';
import { formatIssue } from '../../agent/core/model/issues.js';
import { buildRouteConfig } from '../../agent/core/xds/build-routes.js';

const SERVICES = `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: reviews }
spec:
  port: 9082
  versions:
    v1: { image: r:1, nodes: [node-a] }
    v2: { image: r:2, port: 9083, nodes: [node-a] }
`;
const route = (http: string) => `${SERVICES}---
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
${http}
`;
const load = (text: string) => loadDesired([{ source: 'f.yaml', text }], { xdsPort: 15010 });
const problems = (text: string) => load(text).issues.map(formatIssue);
/** The Envoy routes of reviews, after checking the input was accepted. */
const rendered = (text: string) => {
  const { desired, issues } = load(text);
  assert.deepEqual(issues.map(formatIssue), []);
  return JSON.stringify(buildRouteConfig('reviews', desired.routes[0]));
};

test('mirror_percent and mirrorPercent (older) and mirrorPercentage render the same mirror policy', () => {
  const mirror = (pct: string) => route(`    - route: [{ destination: { host: reviews, subset: v1 } }]
      mirror: { host: reviews, subset: v2 }
      ${pct}`);
  const want = rendered(mirror('mirrorPercentage: { value: 30 }'));
  assert.match(want, /"request_mirror_policies":\[\{"cluster":"reviews\|v2","runtime_fraction":\{"default_value":\{"numerator":30,"denominator":"HUNDRED"\}\}\}\]/);
  assert.equal(rendered(mirror('mirrorPercent: 30')), want);
  assert.equal(rendered(mirror('mirror_percent: 30')), want);
});

test('fault percent (older) and percentage render the same fault', () => {
  const delay = (pct: string) => route(`    - route: [{ destination: { host: reviews, subset: v1 } }]
      fault: { delay: { fixedDelay: 2s, ${pct} } }`);
  assert.equal(rendered(delay('percent: 40')), rendered(delay('percentage: { value: 40 }')));
});

test('an old and a new spelling together, or an old one out of place, are refused by path', () => {
  assert.deepEqual(problems(route(`    - route: [{ destination: { host: reviews, subset: v1 } }]
      mirror: { host: reviews, subset: v2 }
      mirror_percent: 30
      mirrorPercent: 30
    - route: [{ destination: { host: reviews, subset: v1 } }]
      mirror_percent: 200
    - route: [{ destination: { host: reviews, subset: v1 } }]
      mirror: { host: reviews, subset: v2 }
      mirror_percent: 200
      mirrorPercentage: { value: 1 }
    - route: [{ destination: { host: reviews, subset: v1 } }]
      fault: { abort: { httpStatus: 500, percent: 10, percentage: { value: 10 } } }`)), [
    'f.yaml: VirtualService "reviews" (document 2): spec.http[0].mirror_percent: expected mirrorPercent or mirror_percent (its older spelling), not both',
    'f.yaml: VirtualService "reviews" (document 2): spec.http[1].mirror_percent: is only used with mirror',
    'f.yaml: VirtualService "reviews" (document 2): spec.http[2].mirrorPercentage: expected mirrorPercentage or mirror_percent, not both',
    'f.yaml: VirtualService "reviews" (document 2): spec.http[2].mirror_percent: expected a percentage from 0 to 100, got 200',
    'f.yaml: VirtualService "reviews" (document 2): spec.http[3].fault.abort: expected percentage or percent, not both',
  ]);
});

test('fields Istio removed are refused with what to write instead', () => {
  assert.deepEqual(problems(route(`    - route: [{ destination: { host: reviews, subset: v1 } }]
      appendHeaders: { x-a: "1" }
      removeResponseHeaders: [x-b]
      websocketUpgrade: true`)), [
    'f.yaml: VirtualService "reviews" (document 2): spec.http[0].appendHeaders: appendHeaders was removed from Istio\'s VirtualService; use headers.request.add',
    'f.yaml: VirtualService "reviews" (document 2): spec.http[0].removeResponseHeaders: removeResponseHeaders was removed from Istio\'s VirtualService; use headers.response.remove',
    'f.yaml: VirtualService "reviews" (document 2): spec.http[0].websocketUpgrade: websocketUpgrade was removed from Istio; meshlet sidecars do not proxy WebSocket upgrades yet',
  ]);
});
