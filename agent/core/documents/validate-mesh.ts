// Checks the documents as a set: references between them, and host ports on every node.
import type { DocRef, Issue } from '../model/issues.js';
import { claimOrder } from '../model/issues.js';
import type { Desired, DestinationRule, Document, Service, VirtualService } from '../model/model.js';
import { KIND_OF_DOC } from '../model/keys.js';
import { DEFAULT_CLUSTER_DOMAIN } from './host-names.js';
import { placedOn } from '../model/model.js';
import { at } from './reader.js';
import { suggestion } from './did-you-mean.js';
import type { Refused } from './draft.js';
import { UNREAD } from './draft.js';
import { MeshView } from './mesh-view.js';
import { checkHttpRoutes } from './check-http-routes.js';
import { checkRuleTarget } from './validate-rule-target.js';

export interface MeshOptions {
  /** The agent's xDS port, which no app or proxy port may take. */
  xdsPort: number;
  /** Nodes to check besides those named in placements (e.g. the node being rendered). */
  nodes?: string[];
  /** The domain of hosts written `<service>.<namespace>.svc.<domain>` (--cluster-domain, default cluster.local). */
  clusterDomain?: string;
}

/**
 * Returns every problem of the set; an empty list means every document may be applied. `refused` are
 * documents with problems of their own, as far as they were read: they are checked too (their parts that
 * could not be read are skipped), and a reference to one says so once instead of failing in its place.
 * They come after the valid documents, so that a clash between the two is always reported on the refused one.
 */
export function checkMesh(desired: Desired, opts: MeshOptions, refused: readonly Refused[] = []): Issue[] {
  const issues: Issue[] = [];
  const add: Add = (doc, path, message, follows) => issues.push({ doc: doc.ref, path, message, ...(follows ? { follows } : {}) });
  const view = new MeshView(desired, refused, add);
  checkDuplicates(view, add);
  for (const d of [...view.routes, ...view.rules]) checkHostRefs(d, view, opts.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN, add);
  for (const s of view.services) checkUpstreams(s, view, add);
  const routeOf = new Map<string, VirtualService>();
  for (const vs of view.routes) {
    vs.hosts.forEach((host, i) => {
      if (host === UNREAD) return;
      const other = routeOf.get(host);
      if (other && other !== vs) add(vs, at('spec.hosts', i), `host ${host} is already routed by VirtualService "${other.name}" (${other.ref.source}); one VirtualService per host`);
      else if (!view.lacks(vs, 'name')) routeOf.set(host, vs);
    });
    checkRoute(vs, view, add);
  }
  checkHttpRoutes(view, add);
  const ruleOf = new Map<string, string>();
  for (const dr of view.rules) {
    if (dr.host === UNREAD) continue;
    const svc = view.service(dr.host);
    if (!svc) add(dr, 'spec.host', `no Service named ${dr.host}${suggestion(dr.host, view.serviceNames())}`);
    else view.mentions(dr, 'spec.host', svc);
    const other = ruleOf.get(dr.host);
    if (other) add(dr, 'spec.host', `host ${dr.host} already has DestinationRule "${other}"; one DestinationRule per host`);
    else if (!view.lacks(dr, 'name')) ruleOf.set(dr.host, dr.name);
    if (svc) checkRuleTarget(dr, svc, view.services, { port: !view.lacks(svc, 'port'), protocol: !view.lacks(svc, 'protocol') }, add);
    dr.subsets.forEach((sub, i) => {
      if (!svc || sub.version === UNREAD || view.lacks(svc, 'versions')) return;
      if (!svc.versions.some((v) => v.name === sub.version)) {
        add(dr, `${at(at('spec.subsets', i), 'labels')}.version`, `Service ${svc.name} has no version ${sub.version} (it has ${svc.versions.map((v) => v.name).join(', ')})`);
      }
    });
  }
  checkPorts(view, opts, add);
  return issues;
}

type Add = (doc: Document, path: string, message: string, follows?: DocRef) => void;

function checkDuplicates(view: MeshView, add: Add): void {
  for (const list of [view.services, view.routes, view.rules] as Document[][]) {
    const seen = new Map<string, Document>();
    for (const d of list) {
      if (view.lacks(d, 'name')) continue;
      const first = seen.get(d.name);
      if (first) add(d, 'metadata.name', duplicateName(d, first));
      else seen.set(d.name, d);
    }
  }
}

/**
 * Each host as written names a Service in its namespace, with the configured cluster domain. A missing
 * Service is reported where the host is used (checkRoute, the DestinationRule loop).
 */
function checkHostRefs(d: VirtualService | DestinationRule, view: MeshView, clusterDomain: string, add: Add): void {
  for (const ref of d.hostRefs) {
    if (ref.domain !== undefined && ref.domain !== clusterDomain) {
      add(d, ref.path, `host ${ref.written} names the cluster domain ${ref.domain}, but the mesh's is ${clusterDomain} (--cluster-domain); a host outside it names no meshlet Service`);
      continue;
    }
    const svc = view.service(ref.name);
    if (!svc || svc.namespace === ref.namespace) continue;
    const short = ref.written === ref.name ? ` (a short name is relative to the document's namespace, ${d.namespace}; write ${ref.name}.${svc.namespace})` : '';
    add(d, ref.path, `host ${ref.written} looks for Service ${ref.name} in namespace ${ref.namespace}, but Service ${ref.name} is in namespace ${svc.namespace}${short}`);
  }
}

/** Why `d` clashes with `first` of the same kind and name; in another namespace too, since etcd keys have none. */
export function duplicateName(d: Document, first: Document, where = `${first.ref.source} (document ${first.ref.index + 1})`): string {
  if (first.namespace === d.namespace) return `${d.kind} ${d.name} is also defined in ${where}`;
  return `${d.kind} ${d.name} is also defined in namespace ${first.namespace} (${where}); meshlet keys documents by kind and name only `
    + `(<prefix>/desired/${KIND_OF_DOC[d.kind]}/${d.name}), so a name is unique across namespaces: rename one`;
}

function checkUpstreams(s: Service, view: MeshView, add: Add): void {
  s.upstreams.forEach((u, i) => {
    if (u.service === UNREAD) return;
    const path = at('spec.upstreams', i);
    const target = view.service(u.service);
    if (!target) {
      add(s, at(path, 'service'), `no Service named ${u.service}${suggestion(u.service, view.serviceNames())}`);
      return;
    }
    view.mentions(s, at(path, 'service'), target);
    if (u.mode === 'xds' && !view.lacks(target, 'protocol') && target.protocol !== 'grpc') {
      add(s, at(path, 'mode'), `xds (proxyless gRPC) needs an upstream with protocol grpc; ${u.service} is ${target.protocol}`);
    }
  });
}

function checkRoute(vs: VirtualService, view: MeshView, add: Add): void {
  const checkDest = (host: string, subset: string | undefined, port: number | undefined, path: string) => {
    if (host === UNREAD) return;
    const svc = view.service(host);
    if (!svc) {
      add(vs, at(path, 'host'), `no Service named ${host}${suggestion(host, view.serviceNames())}`);
      return;
    }
    view.mentions(vs, at(path, 'host'), svc);
    if (port !== undefined && !view.lacks(svc, 'port') && port !== svc.port) add(vs, `${at(path, 'port')}.number`, `expected ${svc.port}, the port of Service ${host}, got ${port}`);
    if (subset === undefined) return;
    const known = view.subsetNames(vs, at(path, 'subset'), svc);
    if (known && !known.includes(subset)) {
      add(vs, at(path, 'subset'), `Service ${host} has no subset ${subset}${suggestion(subset, known)}; known subsets: ${known.join(', ') || 'none'}`);
    }
  };
  vs.hosts.forEach((host, i) => {
    if (host === UNREAD) return;
    const svc = view.service(host);
    if (!svc) return add(vs, at('spec.hosts', i), `no Service named ${host}${suggestion(host, view.serviceNames())}`);
    view.mentions(vs, at('spec.hosts', i), svc);
    if (view.lacks(svc, 'protocol')) return;
    if (svc.protocol === 'tcp' && vs.http.length > 0) add(vs, 'spec.http', `Service ${host} has protocol tcp; use tcp routes`);
    if (svc.protocol !== 'tcp' && vs.tcp.length > 0) add(vs, 'spec.tcp', `Service ${host} has protocol ${svc.protocol}; use http routes`);
    if (svc.protocol !== 'tcp' && vs.tls.length > 0) add(vs, 'spec.tls', `Service ${host} has protocol ${svc.protocol}; tls (passthrough) routes need a Service with protocol tcp`);
    if (view.lacks(svc, 'port')) return;
    // An L4 match on a port the Service does not have would never be taken.
    for (const kind of ['tcp', 'tls'] as const) {
      vs[kind].forEach((r, j) => r.match.forEach((m, k) => {
        if (m.port !== undefined && m.port !== svc.port) {
          add(vs, `${at(at(at(`spec.${kind}`, j), 'match'), k)}.port`, `Service ${host} has one port, ${svc.port}; a match on port ${m.port} would never be taken`);
        }
      }));
    }
  });
  vs.http.forEach((r, i) => {
    const path = at('spec.http', i);
    r.route.forEach((d, j) => checkDest(d.host, d.subset, d.port, at(at(at(path, 'route'), j), 'destination')));
    r.mirrors.forEach((m) => checkDest(m.host, m.subset, undefined, at(path, 'mirror')));
    // Weights of a valid document add up to 100; a refused one already says what is wrong with them.
    if (!view.isRefused(vs) && r.route.length > 0 && r.route.every((d) => d.weight === 0)) add(vs, at(path, 'route'), 'expected at least one destination with a weight above 0');
  });
  for (const kind of ['tcp', 'tls'] as const) {
    vs[kind].forEach((r, i) => r.route.forEach((d, j) => checkDest(d.host, d.subset, d.port, at(at(at(at(`spec.${kind}`, i), 'route'), j), 'destination'))));
  }
}

interface Claim {
  owner: string;
  /** Claims with the same share key may use one port (sidecars proxying the same upstream, with SO_REUSEPORT). */
  share: string;
  doc?: Document;
  path: string;
  /** Where the port was written when not at `path` (a version inheriting spec.port). */
  from?: string;
}

function checkPorts(view: MeshView, opts: MeshOptions, add: Add): void {
  const named = new Set(opts.nodes ?? []);
  for (const s of view.services) for (const v of s.versions) for (const n of v.nodes) if (n !== '*') named.add(n);
  const nodes = [...named].sort();
  // Valid documents claim first, app ports then proxies: a refused one never takes a port from one that is applied.
  const byClaim = (refused: boolean) => view.services.filter((s) => view.isRefused(s) === refused && !view.lacks(s, 'name')).sort((a, b) => claimOrder(a.ref, b.ref));
  const groups = [byClaim(false), byClaim(true)];
  nodes.push('(any other node)');
  const reported = new Set<string>();
  for (const node of nodes) {
    const claims = new Map<number, Claim>();
    const claim = (port: number, c: Claim) => {
      const prev = claims.get(port);
      if (!prev) return void claims.set(port, c);
      if (prev.share === c.share) return;
      const key = `${c.owner}|${port}|${prev.owner}`;
      if (c.doc && !reported.has(key)) {
        reported.add(key);
        add(c.doc, c.path, `port ${port} on node ${node} is already taken by ${prev.owner}${c.from ? `; this version uses ${c.from}` : ''}`);
      }
    };
    claim(opts.xdsPort, { owner: `the agent's xDS server (--xds-port)`, share: 'xds', path: '' });
    for (const group of groups) {
      for (const s of group) {
        for (const v of s.versions) {
          if (!placedOn(v, node)) continue;
          const vpath = at('spec.versions', v.name);
          // A version without its own port uses spec.port: say so, the path alone would not show it.
          claim(v.port, { owner: `Service ${s.name} version ${v.name} (app port)`, share: `app:${s.name}:${v.name}`, doc: s, path: at(vpath, 'port'), ...(v.port === s.port ? { from: 'spec.port' } : {}) });
        }
      }
      for (const s of group) {
        if (!s.versions.some((v) => placedOn(v, node))) continue;
        s.upstreams.forEach((u, i) => {
          if (u.mode !== 'proxy' || u.localPort === undefined) return;
          claim(u.localPort, { owner: `the sidecar proxy for ${u.service} (localPort of Service ${s.name})`, share: `proxy:${u.service}`, doc: s, path: at(at('spec.upstreams', i), 'localPort') });
        });
      }
    }
  }
}
