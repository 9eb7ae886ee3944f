// Whether a route's `sourceLabels` select the caller whose sidecar is being rendered.
// Istio selects workloads by their pod labels; a meshlet workload carries exactly two, as Istio writes them:
// `app: <service>` and `version: <version>`. A label key outside those two selects no meshlet workload.

/** The caller a sidecar (or proxyless client) is rendered for. */
export interface Caller {
  service: string;
  version: string;
}

/** The labels meshlet gives a workload, under Istio's names. */
export const WORKLOAD_LABEL_KEYS = ['app', 'version'] as const;

export function workloadLabels(caller: Caller): Record<string, string> {
  return { app: caller.service, version: caller.version };
}

/** True when every label of `labels` is one of the caller's, with the same value; no labels select every caller. */
export function matchesSource(labels: Readonly<Record<string, string>> | undefined, caller: Caller): boolean {
  if (!labels) return true;
  const own = workloadLabels(caller);
  return Object.entries(labels).every(([k, v]) => Object.hasOwn(own, k) && own[k] === v);
}
