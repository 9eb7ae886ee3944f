// The subsets of a service: its DestinationRule's, or one implicit subset per version.
import type { Desired, Service, TrafficPolicy } from '../model/model.js';

export interface ResolvedSubset {
  name: string;
  version: string;
  trafficPolicy?: TrafficPolicy;
}

export function subsetsOf(svc: Service, desired: Desired): ResolvedSubset[] {
  const dr = desired.subsets.find((d) => d.host === svc.name);
  if (!dr) return svc.versions.map((v) => ({ name: v.name, version: v.name }));
  return dr.subsets.map((s) => ({ name: s.name, version: s.version, trafficPolicy: mergePolicy(dr.trafficPolicy, s.trafficPolicy) }));
}

/** The rule-wide policy with a subset's own policy laid over it, section by section (as Istio does). */
export function mergePolicy(base: TrafficPolicy | undefined, over: TrafficPolicy | undefined): TrafficPolicy | undefined {
  if (!base) return over;
  if (!over) return base;
  return {
    ...base,
    ...over,
    ...(base.connectionPool || over.connectionPool ? { connectionPool: { ...base.connectionPool, ...over.connectionPool } } : {}),
    ...(base.outlierDetection || over.outlierDetection ? { outlierDetection: { ...base.outlierDetection, ...over.outlierDetection } } : {}),
  };
}

export function policyOf(svc: Service, desired: Desired): TrafficPolicy | undefined {
  return desired.subsets.find((d) => d.host === svc.name)?.trafficPolicy;
}
