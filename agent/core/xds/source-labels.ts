// Which caller a rule applies to: Istio's sourceLabels and sourceNamespace, matched against the workload whose
// client (sidecar or proxyless app) the routes are rendered for. Routes are rendered per client, so a rule for
// other callers is simply left out of this client's routes. Istio selects workloads by their pod labels; a
// meshlet workload carries exactly two, as Istio writes them: `app: <service>` and `version: <version>`.
import type { Service } from '../model/model.js';
import { namespaceOf } from '../model/namespaces.js';

/** The workload a client belongs to. */
export interface Caller {
  service: string;
  version: string;
  namespace: string;
}

/** The labels meshlet gives a workload, under Istio's names. A label key outside these selects no meshlet workload. */
export const WORKLOAD_LABEL_KEYS = ['app', 'version'] as const;

export function callerOf(service: Service, version: string): Caller {
  return { service: service.name, version, namespace: namespaceOf(service) };
}

export function workloadLabels(caller: Caller): Record<string, string> {
  return { app: caller.service, version: caller.version };
}

/** True when every label of `labels` is the caller's; no labels match every caller, an unknown caller only those. */
export function matchesSource(labels: Readonly<Record<string, string>> | undefined, caller: Caller | undefined): boolean {
  if (!labels || Object.keys(labels).length === 0) return true;
  if (!caller) return false;
  const own = workloadLabels(caller);
  return Object.entries(labels).every(([k, v]) => Object.hasOwn(own, k) && own[k] === v);
}

/** sourceLabels and sourceNamespace of one match against the caller. */
export function matchesCaller(m: { sourceLabels?: Readonly<Record<string, string>>; sourceNamespace?: string }, caller: Caller | undefined): boolean {
  if (m.sourceNamespace !== undefined && m.sourceNamespace !== caller?.namespace) return false;
  return matchesSource(m.sourceLabels, caller);
}
