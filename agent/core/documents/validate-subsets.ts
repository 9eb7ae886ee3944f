// Validates an Istio DestinationRule into subsets (by the `version` label) and traffic policies (validate-traffic-policy.ts).
import type { IssueSink } from '../model/issues.js';
import { quote } from '../model/issues.js';
import type { DestinationRule, Subset } from '../model/model.js';
import { SUBSET_NAME, VERSION_NAME } from '../model/model.js';
import { readHost } from './host-names.js';
import type { Obj } from './reader.js';
import { at, readList, readMapping, readObject, readString } from './reader.js';
import { readTrafficPolicy } from './validate-traffic-policy.js';
import { readExportTo } from './validate-route.js';
import type { Draft } from './draft.js';
import { UNREAD } from './draft.js';

const NOT_SUPPORTED = (what: string, why = '') => `${what} is not supported${why ? ` (${why})` : ''}`;

/** The DestinationRule as far as it could be read; the caller accepts it only if no issue was added. */
export function validateDestinationRule(sink: IssueSink, body: Obj, name: string | undefined): Draft<DestinationRule> | undefined {
  const spec = readObject(sink, body.spec, 'spec', ['host', 'trafficPolicy', 'subsets', 'exportTo'], {
    workloadSelector: NOT_SUPPORTED('workloadSelector'),
  });
  if (!spec) return undefined;
  const host = readHost(sink, spec.host, 'spec.host');
  const trafficPolicy = spec.trafficPolicy === undefined ? undefined : readTrafficPolicy(sink, spec.trafficPolicy, 'spec.trafficPolicy');
  if (spec.exportTo !== undefined) readExportTo(sink, spec.exportTo, 'spec.exportTo');
  const gaps: Draft['gaps'] = new Set(name === undefined ? ['name'] : []);
  const subsets: Subset[] = [];
  if (spec.subsets !== undefined) {
    const seen = new Set<string>();
    const list = readList(sink, spec.subsets, 'spec.subsets');
    if (!list) gaps.add('subsets');
    // A subset that cannot be read keeps its place (its name or version UNREAD), so that later indexes stay right.
    (list ?? []).forEach((item, i) => {
      const s = readSubset(sink, item, at('spec.subsets', i));
      if (s.name === UNREAD) gaps.add('subsets');
      else if (seen.has(s.name)) sink.add(at(at('spec.subsets', i), 'name'), `subset ${s.name} is defined twice`);
      seen.add(s.name);
      subsets.push(s);
    });
  }
  return { doc: { kind: 'DestinationRule', name: name ?? UNREAD, namespace: sink.namespace, host: host ?? UNREAD, hostRefs: sink.hosts, ...(trafficPolicy ? { trafficPolicy } : {}), subsets, ref: sink.doc }, gaps };
}

function readSubset(sink: IssueSink, value: unknown, path: string): Subset {
  const s = readObject(sink, value, path, ['name', 'labels', 'trafficPolicy']);
  if (!s) return { name: UNREAD, version: UNREAD };
  const name = readString(sink, s.name, at(path, 'name'), { pattern: SUBSET_NAME, expected: 'a subset name (lower-case letters, digits, ".", "_" and "-")' });
  const labels = readMapping(sink, s.labels, at(path, 'labels'));
  let version: string | undefined;
  if (labels) {
    for (const key of Object.keys(labels)) {
      if (key !== 'version') sink.add(at(at(path, 'labels'), key), NOT_SUPPORTED(`selecting by the label ${quote(key)}`, 'meshlet subsets select a version by labels: {version: …}'));
    }
    if (labels.version === undefined) sink.add(at(path, 'labels'), 'expected labels: {version: <a version of the service>}');
    else version = readString(sink, labels.version, at(at(path, 'labels'), 'version'), { pattern: VERSION_NAME, expected: 'a version key' });
  }
  const trafficPolicy = s.trafficPolicy === undefined ? undefined : readTrafficPolicy(sink, s.trafficPolicy, at(path, 'trafficPolicy'));
  return { name: name ?? UNREAD, version: version ?? UNREAD, ...(trafficPolicy ? { trafficPolicy } : {}) };
}
