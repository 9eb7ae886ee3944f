// Which caller a rule applies to: Istio's sourceLabels and sourceNamespace, matched against the workload whose
// client (sidecar or proxyless app) the routes are rendered for. Routes are rendered per client, so a rule for
// other callers is simply left out of this client's routes.
import type { Service } from '../model/model.js';
import { namespaceOf } from '../model/namespaces.js';

/** The workload a client belongs to, with the labels Istio gives workloads: `app` (the Service) and `version`. */
export interface Caller {
  service: string;
  version: string;
  namespace: string;
}

export function callerOf(service: Service, version: string): Caller {
  return { service: service.name, version, namespace: namespaceOf(service) };
}

/** True when every label of `labels` is the caller's; no labels match every caller, an unknown caller only those. */
export function matchesSource(labels: Readonly<Record<string, string>> | undefined, caller: Caller | undefined): boolean {
  if (!labels || Object.keys(labels).length === 0) return true;
  if (!caller) return false;
  const own: Record<string, string> = { app: caller.service, version: caller.version };
  return Object.entries(labels).every(([k, v]) => own[k] === v);
}

/** sourceLabels and sourceNamespace of one match against the caller. */
export function matchesCaller(m: { sourceLabels?: Readonly<Record<string, string>>; sourceNamespace?: string }, caller: Caller | undefined): boolean {
  if (m.sourceNamespace !== undefined && m.sourceNamespace !== caller?.namespace) return false;
  return matchesSource(m.sourceLabels, caller);
}
