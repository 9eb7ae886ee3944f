// Whether any DestinationRule policy section (rule-wide, per port or per subset) passes a test: lets a node's
// render skip per-route and per-sidecar work for features no rule uses. Cached per desired state and test.
import type { Desired, PolicySections, TrafficPolicy } from '../model/model.js';

type Test = (p: PolicySections | undefined) => boolean;
const cache = new WeakMap<Desired, Map<Test, boolean>>();

export function anyRule(desired: Desired, test: Test): boolean {
  let known = cache.get(desired);
  if (!known) cache.set(desired, (known = new Map()));
  let answer = known.get(test);
  if (answer === undefined) {
    const inPolicy = (tp: TrafficPolicy | undefined) => test(tp) || (tp?.portLevelSettings ?? []).some((l) => test(l.policy));
    answer = desired.subsets.some((dr) => inPolicy(dr.trafficPolicy) || dr.subsets.some((s) => inPolicy(s.trafficPolicy)));
    known.set(test, answer);
  }
  return answer;
}
