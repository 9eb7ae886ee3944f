// Istio's `tcp` and `tls` routes of a VirtualService: L4 matches (port, sourceLabels, sourceNamespace, and
// for tls the SNI) and weighted destinations. Whether the port is the Service's is a set-level check.
import type { IssueSink } from '../model/issues.js';
import { quote } from '../model/issues.js';
import type { L4Match, TcpRoute, TlsRoute } from '../model/model.js';
import type { Obj } from './reader.js';
import { at, readInt, readList, readMapping, readObject, readString, readStringList } from './reader.js';
import { NAMESPACE } from './host-names.js';
import { readDestinations, readGateways } from './validate-route.js';
import { WORKLOAD_LABEL_KEYS } from '../xds/source-labels.js';

const NOT_SUPPORTED = (what: string, why = '') => `${what} is not supported${why ? ` (${why})` : ''}`;
const L4_MATCH = ['port', 'sourceLabels', 'sourceNamespace', 'gateways'];
const L4_UNSUPPORTED = {
  destinationSubnets: NOT_SUPPORTED('destinationSubnets', 'a sidecar listens on 127.0.0.1 for each upstream; match on port or sniHosts'),
  sourceSubnet: NOT_SUPPORTED('sourceSubnet', 'removed from Istio; use sourceLabels'),
};
// Envoy's server_names take an exact name or a "*." wildcard prefix (filter_chain_match.server_names).
const SNI = {
  pattern: /^(\*\.)?[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/,
  maxLength: 253,
  expected: 'a server name (lower-case DNS name, optionally starting with "*.")',
};
const LABEL_VALUE = { pattern: /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/, expected: 'a label value' };

export function readTcpRoute(sink: IssueSink, value: unknown, path: string): TcpRoute | undefined {
  const r = readObject(sink, value, path, ['match', 'route']);
  if (!r) return undefined;
  const match = r.match === undefined ? [] : (readList(sink, r.match, at(path, 'match')) ?? []).flatMap((m, i) => {
    const p = at(at(path, 'match'), i);
    const o = readObject(sink, m, p, L4_MATCH, { ...L4_UNSUPPORTED, sniHosts: 'sniHosts is a tls route match; move this route to spec.tls' });
    return o ? [readL4Match(sink, o, p)] : [];
  });
  return { match, route: readDestinations(sink, r.route, at(path, 'route')) };
}

/** A TLS route needs its match: Istio requires at least one, each with sniHosts. */
export function readTlsRoute(sink: IssueSink, value: unknown, path: string): TlsRoute | undefined {
  const r = readObject(sink, value, path, ['match', 'route']);
  if (!r) return undefined;
  if (r.match === undefined) sink.add(at(path, 'match'), 'expected matches with sniHosts: a tls route is chosen by the SNI (for any TCP connection, use spec.tcp)');
  const match = (r.match === undefined ? [] : readList(sink, r.match, at(path, 'match'), 1) ?? []).flatMap((m, i) => {
    const p = at(at(path, 'match'), i);
    const o = readObject(sink, m, p, ['sniHosts', ...L4_MATCH], L4_UNSUPPORTED);
    if (!o) return [];
    const sniHosts = readStringList(sink, o.sniHosts, at(p, 'sniHosts'), SNI, 1);
    return sniHosts ? [{ ...readL4Match(sink, o, p), sniHosts }] : [];
  });
  return { match, route: readDestinations(sink, r.route, at(path, 'route')) };
}

function readL4Match(sink: IssueSink, m: Obj, path: string): L4Match {
  const out: L4Match = {};
  if (m.port !== undefined) {
    const port = readInt(sink, m.port, at(path, 'port'), 1, 65535, 'a port');
    if (port !== undefined) out.port = port;
  }
  if (m.sourceLabels !== undefined) {
    const labels = readSourceLabels(sink, m.sourceLabels, at(path, 'sourceLabels'));
    if (labels) out.sourceLabels = labels;
  }
  if (m.sourceNamespace !== undefined) {
    const ns = readString(sink, m.sourceNamespace, at(path, 'sourceNamespace'), NAMESPACE);
    if (ns !== undefined) out.sourceNamespace = ns;
  }
  if (m.gateways !== undefined) readGateways(sink, m.gateways, at(path, 'gateways'));
  return out;
}

/** A label meshlet workloads do not carry would select no caller: refused rather than never taken. */
export function readSourceLabels(sink: IssueSink, value: unknown, path: string): Record<string, string> | undefined {
  const m = readMapping(sink, value, path);
  if (!m) return undefined;
  const out: Record<string, string> = {};
  let ok = true;
  for (const key of Object.keys(m).sort()) {
    const p = at(path, key);
    if (!(WORKLOAD_LABEL_KEYS as readonly string[]).includes(key)) {
      sink.add(p, NOT_SUPPORTED(`selecting callers by the label ${quote(key)}`, `a meshlet workload carries the labels ${WORKLOAD_LABEL_KEYS.join(' and ')}`));
      ok = false;
      continue;
    }
    const v = readString(sink, m[key], p, LABEL_VALUE);
    if (v === undefined) ok = false;
    else out[key] = v;
  }
  return ok ? out : undefined;
}
