// Checks a DestinationRule's traffic policies against the Service it names: its one port, its protocol,
// and the proxyless gRPC clients that call it.
import type { DestinationRule, PolicySections, Service, TrafficPolicy } from '../model/model.js';
import { at } from './reader.js';

type Add = (doc: DestinationRule, path: string, message: string) => void;

/** `known`: the Service's port and protocol could be read (else those checks are skipped). */
export function checkRuleTarget(dr: DestinationRule, svc: Service, services: readonly Service[], known: { port: boolean; protocol: boolean }, add: Add): void {
  if (known.port) checkPortLevels(dr, svc, add);
  if (known.protocol) checkTcpHash(dr, svc, add);
  checkProxylessTls(dr, services.filter((s) => s.upstreams.some((u) => u.mode === 'xds' && u.service === svc.name)), add);
}

/** Each policy of the rule (rule-wide, then each subset's) with its path. */
function eachPolicy(dr: DestinationRule, visit: (tp: TrafficPolicy | undefined, path: string) => void): void {
  visit(dr.trafficPolicy, 'spec.trafficPolicy');
  dr.subsets.forEach((s, i) => visit(s.trafficPolicy, at(at('spec.subsets', i), 'trafficPolicy')));
}

/** Each section set of a policy: its own, and each portLevelSettings entry's, with its path. */
function eachSections(tp: TrafficPolicy | undefined, path: string, visit: (p: PolicySections | undefined, path: string) => void): void {
  visit(tp, path);
  tp?.portLevelSettings?.forEach((l) => visit(l.policy, at(at(path, 'portLevelSettings'), l.index)));
}

/** A tcp Service's sidecars hash connections: only useSourceIp names something a connection has. */
function checkTcpHash(dr: DestinationRule, svc: Service, add: Add): void {
  if (svc.protocol !== 'tcp') return;
  eachPolicy(dr, (tp, path) => eachSections(tp, path, (p, where) => {
    const key = p?.loadBalancer?.consistentHash?.key;
    if (key && !('sourceIp' in key)) add(dr, `${where}.loadBalancer.consistentHash`, `only useSourceIp can be hashed for Service ${svc.name}, which is tcp (headers, cookies and query parameters are HTTP)`);
  }));
}

/** gRPC's xDS client gets no upstream TLS from meshlet (it would need certificate providers in its bootstrap). */
function checkProxylessTls(dr: DestinationRule, callers: Service[], add: Add): void {
  if (callers.length === 0) return;
  eachPolicy(dr, (tp, path) => eachSections(tp, path, (p, where) => {
    if (p?.tls && p.tls.mode !== 'DISABLE') add(dr, `${where}.tls.mode`, `${p.tls.mode} is not supported for proxyless gRPC clients (Service ${callers[0]!.name} calls ${dr.host} with mode xds); meshlet renders upstream TLS for sidecars only`);
  }));
}

/** A meshlet Service has one port: settings for any other port would never apply, so they are refused. */
function checkPortLevels(dr: DestinationRule, svc: Service, add: Add): void {
  eachPolicy(dr, (tp, path) => tp?.portLevelSettings?.forEach((p) => {
    if (p.port !== svc.port) add(dr, `${at(at(path, 'portLevelSettings'), p.index)}.port.number`, `expected ${svc.port}, the one port of Service ${svc.name} (settings for port ${p.port} would never apply), got ${p.port}`);
  }));
}
