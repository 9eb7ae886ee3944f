// The subsets of a service: its DestinationRule's, or one implicit subset per version; and the policy of each.
import type { Desired, PolicySections, Service, TrafficPolicy } from '../model/model.js';

export interface ResolvedSubset {
  name: string;
  version: string;
  trafficPolicy?: PolicySections;
}

export function subsetsOf(svc: Service, desired: Desired): ResolvedSubset[] {
  const dr = desired.subsets.find((d) => d.host === svc.name);
  if (!dr) return svc.versions.map((v) => ({ name: v.name, version: v.name }));
  return dr.subsets.map((s) => ({ name: s.name, version: s.version, trafficPolicy: mergePolicy(forPort(dr.trafficPolicy, svc.port), forPort(s.trafficPolicy, svc.port)) }));
}

/**
 * The rule-wide policy with a subset's own laid over it, as Istio does: each section the subset sets
 * (loadBalancer, connectionPool, outlierDetection, tls) replaces the rule's section whole.
 */
export function mergePolicy(base: PolicySections | undefined, over: PolicySections | undefined): PolicySections | undefined {
  if (!base) return over;
  if (!over) return base;
  return { ...base, ...over };
}

/**
 * A policy's sections for the service's one port: a portLevelSettings entry for that port replaces all four
 * sections (Istio: port-level settings do not inherit; what they leave out takes the defaults).
 */
export function forPort(policy: TrafficPolicy | undefined, port: number): PolicySections | undefined {
  if (!policy) return undefined;
  const level = policy.portLevelSettings?.find((p) => p.port === port);
  if (level) return level.policy;
  const { portLevelSettings: _, ...sections } = policy;
  return sections;
}

export function policyOf(svc: Service, desired: Desired): PolicySections | undefined {
  return forPort(desired.subsets.find((d) => d.host === svc.name)?.trafficPolicy, svc.port);
}
