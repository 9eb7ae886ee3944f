// The host files (upstream TLS certificates and keys) one sidecar reads: those of every cluster it can send to.
import type { Desired, PolicySections } from '../model/model.js';
import type { Workload } from '../render/placement.js';
import { resolveCluster } from './build-clusters.js';
import { referencedClusters } from './build-routes.js';
import { routeFor } from './build-xds.js';
import { tlsFiles } from './upstream-tls.js';
import { anyRule } from './any-rule.js';
import { namespaceOf } from '../model/namespaces.js';

export function sidecarTlsFiles(w: Workload, desired: Desired): string[] {
  if (!anyRule(desired, readsFiles)) return [];
  const files = new Set<string>();
  for (const u of w.service.upstreams) {
    if (u.mode !== 'proxy') continue;
    for (const name of referencedClusters(u.service, routeFor(u.service, desired, namespaceOf(w.service)))) {
      for (const f of tlsFiles(resolveCluster(name, desired)?.policy)) files.add(f);
    }
  }
  return [...files].sort();
}

const readsFiles = (p: PolicySections | undefined) => tlsFiles(p).length > 0;
