// Set-level checks of http rules that need other documents: a match's port against the Service's, sourceLabels
// against the Services, delegation (the delegate exists, has no hosts, is one level, narrows the match), and
// what gRPC's xDS client cannot do when a proxyless app calls the host.
import type { DocRef } from '../model/issues.js';
import type { Document, HttpRoute, Service, VirtualService } from '../model/model.js';
import { mergeDelegated } from '../model/delegates.js';
import { namespaceOf } from '../model/namespaces.js';
import { at } from './reader.js';
import { suggestion } from './did-you-mean.js';
import type { MeshView } from './mesh-view.js';

type Add = (doc: Document, path: string, message: string, follows?: DocRef) => void;

export function checkHttpRoutes(view: MeshView, add: Add): void {
  for (const vs of view.routes) {
    const hosts = servedHosts(vs, view);
    vs.http.forEach((r, i) => {
      const path = at('spec.http', i);
      checkMatches(vs, r, path, hosts, view, add);
      if (r.delegate) checkDelegate(vs, r, path, view, add);
      checkProxyless(vs, r, path, hosts, view, add);
    });
    // Destinations are read alike for both kinds of route; header operations only exist for http.
    vs.tcp.forEach((r, i) => r.route.forEach((d, j) => {
      if (d.headers) add(vs, at(at(at(at('spec.tcp', i), 'route'), j), 'headers'), 'header operations apply to http routes only; a tcp route carries no headers');
    }));
  }
}

/** The Services whose traffic `vs`'s rules route: its hosts, or for a delegate the hosts of those delegating to it. */
function servedHosts(vs: VirtualService, view: MeshView): Service[] {
  const names = new Set(vs.hosts);
  for (const root of view.routes) {
    if (root.http.some((r) => r.delegate && isTarget(vs, r.delegate, root))) root.hosts.forEach((h) => names.add(h));
  }
  return [...names].flatMap((h) => view.service(h) ?? []);
}

function isTarget(vs: VirtualService, d: NonNullable<HttpRoute['delegate']>, root: VirtualService): boolean {
  return vs.name === d.name && namespaceOf(vs) === (d.namespace ?? namespaceOf(root));
}

function checkMatches(vs: VirtualService, r: HttpRoute, path: string, hosts: Service[], view: MeshView, add: Add): void {
  r.match.forEach((m, j) => {
    const mp = at(at(path, 'match'), j);
    if (m.port !== undefined) {
      for (const svc of hosts) {
        if (view.lacks(svc, 'port') || svc.port === m.port) continue;
        add(vs, at(mp, 'port'), `Service ${svc.name} has the one port ${svc.port}: a match on port ${m.port} never matches`);
      }
    }
    const app = m.sourceLabels?.app;
    if (app !== undefined) {
      const svc = view.service(app);
      if (!svc) add(vs, at(at(mp, 'sourceLabels'), 'app'), `no Service named ${app}${suggestion(app, view.serviceNames())}: no caller carries this label`);
      else {
        const version = m.sourceLabels?.version;
        if (version !== undefined && !view.lacks(svc, 'versions') && !svc.versions.some((v) => v.name === version)) {
          add(vs, at(at(mp, 'sourceLabels'), 'version'), `Service ${app} has no version ${version} (it has ${svc.versions.map((v) => v.name).join(', ')})`);
        }
      }
    }
  });
}

function checkDelegate(vs: VirtualService, r: HttpRoute, path: string, view: MeshView, add: Add): void {
  const d = r.delegate!;
  const dp = at(path, 'delegate');
  const ns = d.namespace ?? namespaceOf(vs);
  const target = view.routes.find((x) => isTarget(x, d, vs));
  if (!target) {
    const names = view.routes.filter((x) => x.hosts.length === 0 && namespaceOf(x) === ns).map((x) => x.name);
    add(vs, at(dp, 'name'), `no VirtualService named ${d.name} in namespace ${ns}${suggestion(d.name, names)}`);
    return;
  }
  view.mentions(vs, dp, target);
  if (target === vs) return add(vs, dp, 'a VirtualService cannot delegate to itself');
  if (target.hosts.length > 0) return add(vs, dp, `VirtualService ${d.name} has hosts (${target.hosts.join(', ')}); a delegate has none, its rules apply only under this one`);
  target.http.forEach((leaf, k) => {
    if (leaf.delegate) add(vs, dp, `VirtualService ${d.name} delegates again (spec.http[${k}].delegate); Istio delegates one level only`);
    const merged = mergeDelegated(r, leaf);
    if ('conflict' in merged) add(vs, dp, `rule spec.http[${k}] of VirtualService ${d.name} cannot apply under this rule: ${merged.conflict}`);
  });
  if (target.tcp.length > 0) add(vs, dp, `VirtualService ${d.name} has tcp routes; a delegate holds http rules only`);
}

/** What a proxyless caller could not honour: gRPC's xDS client NACKs redirect and directResponse, and does no CORS or path rewriting. */
function checkProxyless(vs: VirtualService, r: HttpRoute, path: string, hosts: Service[], view: MeshView, add: Add): void {
  const parts: [keyof HttpRoute | 'rewrite.uriRegexRewrite', boolean][] = [
    ['redirect', r.redirect !== undefined],
    ['directResponse', r.directResponse !== undefined],
    ['corsPolicy', r.corsPolicy !== undefined],
    ['rewrite.uriRegexRewrite', r.rewrite?.uriRegexRewrite !== undefined],
  ];
  const used = parts.filter(([, on]) => on).map(([k]) => k);
  if (used.length === 0) return;
  for (const host of hosts) {
    const callers = view.services.filter((s) => s.upstreams.some((u) => u.service === host.name && u.mode === 'xds')).map((s) => s.name);
    if (callers.length === 0) continue;
    for (const k of used) {
      add(vs, `${path}.${k}`, `not supported for proxyless gRPC callers: Service ${callers.join(', ')} calls ${host.name} with mode xds, and gRPC's xDS client ${k === 'redirect' || k === 'directResponse' ? 'refuses routes that do not forward' : 'does not do it'} (use mode proxy for a sidecar that does)`);
    }
  }
}
