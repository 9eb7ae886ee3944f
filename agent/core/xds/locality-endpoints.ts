// Localities of endpoints and callers, and Istio's localityLbSetting over them: `distribute` as locality
// weights, `failover` / `failoverPriority` as Envoy priorities, all from the caller's point of view.
import type { Instance, LocalityLbSetting, PolicySections } from '../model/model.js';
import { LOCALITY_LABELS } from '../documents/validate-load-balancer.js';

/** Envoy's Locality. A node's region and zone come from its agent's --region/--zone; the node is the subzone. */
export interface Locality {
  region: string;
  zone: string;
  sub_zone?: string;
}

/** No flags: region `meshlet` and zone = the node (each node its own zone), as before localities existed. */
export function localityOf(node: string, region?: string, zone?: string): Locality {
  return { region: region ?? 'meshlet', zone: zone ?? node, ...(zone !== undefined ? { sub_zone: node } : {}) };
}

export function instanceLocality(i: Instance): Locality {
  return localityOf(i.node, i.region, i.zone);
}

/** Istio's LocalityMatch: `region[/zone[/subzone]]`, a `*` part matches anything, a missing part too. */
export function localityMatches(l: Locality, pattern: string): boolean {
  const [region, zone, sub] = pattern.split('/');
  const ok = (rule: string | undefined, value: string | undefined) => rule === undefined || rule === '' || rule === '*' || rule === (value ?? '');
  return (region === '*' || region === l.region) && ok(zone, l.zone) && ok(sub, l.sub_zone);
}

export interface LocalityGroup {
  locality: Locality;
  count: number;
}

/** What the setting does for this caller: a weight and a priority per group, or undefined (group left out). */
export interface LocalityPlan {
  place(groups: LocalityGroup[]): ({ weight: number; priority: number } | undefined)[];
}

/**
 * The plan for a cluster, or undefined when no locality setting applies. As in Istio, failover takes
 * effect only with outlier detection in the same policy (without it Istio renders no priorities).
 */
export function localityPlan(policy: PolicySections | undefined, caller: Locality | undefined): LocalityPlan | undefined {
  const s = policy?.loadBalancer?.locality;
  if (!s || !s.enabled || !caller) return undefined;
  if (s.distribute.length > 0) return { place: (groups) => distribute(s, caller, groups) };
  if (!policy?.outlierDetection) return undefined;
  if (s.failoverPriority.length > 0) return { place: (groups) => compact(groups, groups.map((g) => byLabels(s.failoverPriority, caller, g.locality))) };
  return { place: (groups) => compact(groups, groups.map((g) => failoverPriority(s, caller, g.locality))) };
}

function distribute(s: LocalityLbSetting, caller: Locality, groups: LocalityGroup[]): ({ weight: number; priority: number } | undefined)[] {
  const rule = s.distribute.find((d) => localityMatches(caller, d.from));
  if (!rule) return groups.map((g) => ({ weight: g.count, priority: 0 }));
  const out: ({ weight: number; priority: number } | undefined)[] = groups.map(() => undefined);
  // Each `to` pattern (most specific first) takes the groups no earlier one took; its weight is shared by size.
  for (const [pattern, weight] of rule.to) {
    const taken = groups.map((g, i) => (out[i] === undefined && localityMatches(g.locality, pattern) ? i : -1)).filter((i) => i >= 0);
    const total = taken.reduce((sum, i) => sum + groups[i]!.count, 0);
    for (const i of taken) out[i] = { weight: Math.max(1, Math.ceil((groups[i]!.count * weight) / total)), priority: 0 };
  }
  return out;
}

function failoverPriority(s: LocalityLbSetting, caller: Locality, l: Locality): number {
  if (l.region === caller.region) {
    if (l.zone !== caller.zone) return 2;
    return (l.sub_zone ?? '') === (caller.sub_zone ?? '') ? 0 : 1;
  }
  return s.failover.some((f) => f.from === caller.region && f.to === l.region) ? 3 : 4;
}

/** failoverPriority: the number of labels, from the first, that the endpoint does not share with the caller. */
function byLabels(labels: string[], caller: Locality, l: Locality): number {
  const value = (label: string, x: Locality) => (label === LOCALITY_LABELS[0] ? x.region : label === LOCALITY_LABELS[1] ? x.zone : (x.sub_zone ?? ''));
  const matched = labels.findIndex((label) => value(label, caller) !== value(label, l));
  return matched === -1 ? 0 : labels.length - matched;
}

/** Envoy wants priorities 0..N without gaps. */
function compact(groups: LocalityGroup[], priorities: number[]): { weight: number; priority: number }[] {
  const used = [...new Set(priorities)].sort((a, b) => a - b);
  return priorities.map((p, i) => ({ weight: groups[i]!.count, priority: used.indexOf(p) }));
}
