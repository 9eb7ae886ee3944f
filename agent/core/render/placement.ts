// Which app containers (and so sidecars) run on a node.
import type { Desired, Service, Version } from '../model/model.js';
import { placedOn, workloadName } from '../model/model.js';

export interface Workload {
  name: string;
  service: Service;
  version: Version;
}

/** The service versions placed on `node`, in name order. */
export function workloadsOn(desired: Desired, node: string): Workload[] {
  const out: Workload[] = [];
  for (const service of desired.services) {
    for (const version of service.versions) {
      if (placedOn(version, node)) out.push({ name: workloadName(service.name, version.name), service, version });
    }
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Ports on the node that are not free for sidecar admin interfaces. */
export function portsInUse(workloads: Workload[], xdsPort: number): Set<number> {
  const ports = new Set<number>([xdsPort]);
  for (const w of workloads) {
    ports.add(w.version.port);
    for (const u of w.service.upstreams) if (u.localPort !== undefined) ports.add(u.localPort);
  }
  return ports;
}
