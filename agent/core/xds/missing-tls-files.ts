// Upstream TLS files that the sidecars of this node would read but that the host does not have: each is an
// issue on the DestinationRule field that names it (the node status shows it), and it is not mounted (Docker
// would create a directory at a missing host path). The sidecar then NACKs that one cluster.
import type { Issue } from '../model/issues.js';
import type { Desired, PolicySections, TrafficPolicy } from '../model/model.js';
import { at } from '../documents/reader.js';

const FIELDS = ['clientCertificate', 'privateKey', 'caCertificates'] as const;

/** Every TLS file any DestinationRule names, sorted (what the agent looks for on its host). */
export function allTlsFiles(desired: Desired): string[] {
  const files = new Set<string>();
  eachTlsFile(desired, (file) => files.add(file));
  return [...files].sort();
}

/** Issues for the files in `used` (read by this node's sidecars) that are not in `present`. */
export function missingTlsFiles(desired: Desired, used: ReadonlySet<string>, present: ReadonlySet<string>, node: string): Issue[] {
  const issues: Issue[] = [];
  eachTlsFile(desired, (file, dr, path) => {
    if (used.has(file) && !present.has(file)) issues.push({ doc: dr, path, message: `the file ${JSON.stringify(file)} is not on node ${node} (or is not a regular file); the sidecars there cannot load this TLS setting` });
  });
  return issues;
}

function eachTlsFile(desired: Desired, visit: (file: string, dr: Desired['subsets'][number]['ref'], path: string) => void): void {
  const sections = (p: PolicySections | undefined, ref: Desired['subsets'][number]['ref'], path: string) => {
    const tls = p?.tls;
    if (!tls || tls.mode === 'DISABLE') return;
    for (const f of FIELDS) if (tls[f] !== undefined) visit(tls[f]!, ref, `${path}.tls.${f}`);
  };
  const policy = (tp: TrafficPolicy | undefined, ref: Desired['subsets'][number]['ref'], path: string) => {
    sections(tp, ref, path);
    tp?.portLevelSettings?.forEach((l) => sections(l.policy, ref, at(at(path, 'portLevelSettings'), l.index)));
  };
  for (const dr of desired.subsets) {
    policy(dr.trafficPolicy, dr.ref, 'spec.trafficPolicy');
    dr.subsets.forEach((s, i) => policy(s.trafficPolicy, dr.ref, at(at('spec.subsets', i), 'trafficPolicy')));
  }
}
