// The soak's invariants, each a list of what differs (empty: holds). Judged on one observation:
//   containers: one running container per rendered compose service, none else; pending recreates done
//   registry == the healthy app instances (running, Docker health if any, our own probe of the http check)
//   naming keys == registry; every key of the node under the lease in state.json
//   every sidecar connected to the agent (its own stats and the node status) and ACKed; its clusters == the
//   render's, its endpoints == registry; web's weights for api == the render's == what was pushed
//   files on disk == the agent's render of the desired state in etcd (byte-equal); state.json applied it
//   the running agent holds the claim and wrote the node status after reading the latest desired write
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { keys } from '../../agent/core/model/keys.js';
import { xdsNodeId } from '../../agent/core/model/ids.js';
import { namingValue } from '../../agent/adapters/etcd/etcd-registry.js';
import { endpointsOf, expectedEndpoints, sidecarEndpoints, sidecarStats } from '../../test/helpers/agent-traffic.js';
import { within, type Observed, type Target } from './observe.js';

export interface Expectations {
  /** api's catch-all weights as last pushed (v2 = 100 - v1). */
  v1: number;
  /** Compose services a desired change must recreate, with the container id each had before it. */
  recreating: Map<string, string>;
  /** The agent process running now. */
  agentPid?: number;
}

export async function differences(t: Target, o: Observed, e: Expectations): Promise<string[]> {
  return [
    ...o.rejected.map((r) => `desired state: the agent would reject ${r}`),
    ...containers(o, e),
    ...registry(t, o),
    ...naming(t, o),
    ...leases(t, o),
    ...agent(t, o, e),
    ...(await sidecars(t, o, e)),
    ...files(t, o),
  ];
}

const short = (id: string | undefined) => (id ?? '-').slice(0, 12);

function containers(o: Observed, e: Expectations): string[] {
  const out: string[] = [];
  const wanted = o.rendered.composeServices;
  for (const svc of wanted) {
    const list = o.containers.filter((c) => c.service === svc);
    if (list.length !== 1) out.push(`containers: ${svc} has ${list.length} containers (${list.map((c) => `${short(c.id)} ${c.status}`).join(', ') || 'none'})`);
    else if (!list[0]!.running) out.push(`containers: ${svc} (${short(list[0]!.id)}) is ${list[0]!.status}`);
    const before = e.recreating.get(svc);
    if (before && list.some((c) => c.id === before)) out.push(`containers: ${svc} not recreated yet after its env change (still ${short(before)})`);
  }
  for (const c of o.containers) if (!wanted.includes(c.service)) out.push(`containers: ${c.service} (${short(c.id)}, ${c.status}) is not in the rendered project`);
  return out;
}

/** `service/version` → what the node's registry key should hold, for every healthy app. */
function healthyApps(o: Observed): Map<string, { port: number; container: string }> {
  const out = new Map<string, { port: number; container: string }>();
  for (const a of o.rendered.apps) {
    const c = o.containers.find((x) => x.role === 'app' && x.service === `${a.service}-${a.version}`);
    if (!c?.running || (c.dockerHealth && c.dockerHealth !== 'healthy') || (c.probe && !c.probe.ok)) continue;
    out.set(`${a.service}/${a.version}`, { port: a.port, container: c.id });
  }
  return out;
}

function why(o: Observed, workload: string): string {
  const c = o.containers.find((x) => x.role === 'app' && x.service === workload);
  if (!c) return 'no container';
  return `${c.status}${c.dockerHealth ? `, docker health ${c.dockerHealth}` : ''}${c.probe ? `, probe: ${c.probe.detail}` : ''}`;
}

function registry(t: Target, o: Observed): string[] {
  const out: string[] = [];
  const mine = o.instances.filter((i) => i.node === t.node);
  const healthy = healthyApps(o);
  for (const i of mine) {
    const h = healthy.get(`${i.service}/${i.version}`);
    const id = `${i.service}/${i.version}`;
    if (!h) out.push(`registry: ${id} is registered (container ${short(i.container)}) but not healthy (${why(o, `${i.service}-${i.version}`)})`);
    else if (i.address !== t.advertiseAddress || i.port !== h.port || i.container !== h.container) {
      out.push(`registry: ${id} says ${i.address}:${i.port} container ${short(i.container)}, the healthy instance is ${t.advertiseAddress}:${h.port} container ${short(h.container)}`);
    }
  }
  for (const [id, h] of healthy) if (!mine.some((i) => `${i.service}/${i.version}` === id)) out.push(`registry: ${id} is healthy (container ${short(h.container)}) but not registered`);
  const k = keys(t.prefix);
  const keysOfNode = o.kvs.filter((kv) => kv.key.startsWith(k.registry) && kv.key.endsWith(`/${t.node}`)).length;
  if (keysOfNode !== mine.length) out.push(`registry: ${keysOfNode - mine.length} key(s) of ${t.node} the agent's reader skips as invalid`);
  return out;
}

function naming(t: Target, o: Observed): string[] {
  const k = keys(t.prefix);
  const want = new Map(o.instances.filter((i) => i.node === t.node).map((i) => [k.namingEndpoint(i.service, `${i.address}:${i.port}`), namingValue(i, t.node)]));
  const have = new Map(o.kvs.filter((kv) => kv.key.startsWith(k.naming) && kv.value.includes(`"node":${JSON.stringify(t.node)}`)).map((kv) => [kv.key, kv.value]));
  const out: string[] = [];
  for (const [key, v] of want) if (have.get(key) !== v) out.push(`naming: ${key} is ${have.get(key) ?? 'missing'}, registry says ${v}`);
  for (const key of have.keys()) if (!want.has(key)) out.push(`naming: ${key} has no registry entry`);
  return out;
}

function leases(t: Target, o: Observed): string[] {
  const k = keys(t.prefix);
  const lease = o.state.leaseId;
  const ours = o.kvs.filter((kv) => (kv.key.startsWith(k.registry) && kv.key.endsWith(`/${t.node}`)) || kv.key.startsWith(`${k.nodes}${t.node}/`)
    || (kv.key.startsWith(k.naming) && kv.value.includes(`"node":${JSON.stringify(t.node)}`)));
  const out = ours.filter((kv) => kv.lease !== lease && !kv.key.endsWith('/drain')).map((kv) => `lease: ${kv.key} is under lease ${kv.lease}, state.json says ${lease ?? 'none'}`);
  if (!o.kvs.some((kv) => kv.key === k.nodeOwner(t.node))) out.push(`lease: no claim ${k.nodeOwner(t.node)}`);
  return out;
}

function agent(t: Target, o: Observed, e: Expectations): string[] {
  const k = keys(t.prefix);
  const read = (key: string) => {
    const v = o.kvs.find((kv) => kv.key === key)?.value;
    return v ? (JSON.parse(v) as Record<string, unknown>) : undefined;
  };
  const claim = read(k.nodeOwner(t.node));
  const status = read(k.nodeStatus(t.node));
  const latest = Math.max(0, ...o.kvs.filter((kv) => kv.key.startsWith(k.desired)).map((kv) => kv.modRevision));
  const out: string[] = [];
  if (claim && claim.pid !== e.agentPid) out.push(`agent: the claim names pid ${claim.pid}, the running agent is ${e.agentPid}`);
  if (!status) return [...out, 'agent: no node status'];
  if (status.pid !== e.agentPid) out.push(`agent: the node status was written by pid ${status.pid}, the running agent is ${e.agentPid}`);
  if (typeof status.desiredRevision !== 'number' || status.desiredRevision < latest) out.push(`agent: the node status says desired revision ${status.desiredRevision}, the latest desired write is ${latest}`);
  const last = status.lastApply as { ok?: boolean; message?: string } | undefined;
  if (last && !last.ok) out.push(`agent: last apply failed: ${last.message}`);
  if (Array.isArray(status.rejected) && status.rejected.length > 0) out.push(`agent: the node status lists rejected documents: ${JSON.stringify(status.rejected)}`);
  const sidecars = (status.sidecars ?? []) as { workload: string; connected?: boolean; acked?: Record<string, string> }[];
  for (const a of o.rendered.apps) {
    const s = sidecars.find((x) => x.workload === `${a.service}-${a.version}`);
    if (!s?.connected || !s.acked?.cds || !s.acked.lds) out.push(`agent: the node status shows sidecar ${a.service}-${a.version} ${s ? `connected ${s.connected}, ACKed ${JSON.stringify(s.acked)}` : 'missing'}`);
  }
  return out;
}

async function sidecars(t: Target, o: Observed, e: Expectations): Promise<string[]> {
  const out: string[] = [];
  const services = new Set(o.rendered.apps.map((a) => a.service));
  for (const a of o.rendered.apps) {
    const workload = `${a.service}-${a.version}`;
    const port = o.state.adminPorts[workload];
    const snap = o.rendered.render.snapshots[xdsNodeId('sidecar', t.node, a.service, a.version)];
    if (!port || !snap) {
      out.push(`sidecar ${workload}: no admin port in state.json or no rendered snapshot`);
      continue;
    }
    let eps: Record<string, string[]>;
    try {
      eps = await within(`sidecar ${workload} /clusters`, 5_000, sidecarEndpoints(port));
    } catch (err) {
      out.push(`sidecar ${workload}: admin 127.0.0.1:${port}: ${(err as Error).message}`);
      continue;
    }
    const stats = await within(`sidecar ${workload} /stats`, 5_000, sidecarStats(port, '^control_plane\\.connected_state$')).catch(() => ({}) as Record<string, number>);
    if (stats['control_plane.connected_state'] !== 1) out.push(`sidecar ${workload}: not connected to the agent's xDS server (control_plane.connected_state ${stats['control_plane.connected_state']})`);
    const mesh = Object.fromEntries([...services].flatMap((s) => Object.entries(endpointsOf(s, eps))));
    const names = (snap.clusters as { name: string }[]).map((c) => c.name).sort();
    if (JSON.stringify(Object.keys(mesh).sort()) !== JSON.stringify(names)) out.push(`sidecar ${workload}: clusters ${JSON.stringify(Object.keys(mesh).sort())}, rendered ${JSON.stringify(names)}`);
    const want = Object.fromEntries([...services].flatMap((s) => Object.entries(expectedEndpoints(s, o.instances, names))));
    for (const c of names) {
      if (JSON.stringify(mesh[c] ?? []) !== JSON.stringify(want[c] ?? [])) out.push(`sidecar ${workload}: cluster ${c} has ${JSON.stringify(mesh[c] ?? [])}, registry ${JSON.stringify(want[c] ?? [])}`);
    }
    if (a.service === 'web') out.push(...await webRoute(port, snap.routes, e));
  }
  return out;
}

/** web's sidecar's route to api: its weights as Envoy holds them == the render's == the last push. */
async function webRoute(port: number, rendered: unknown[], e: Expectations): Promise<string[]> {
  let dump: { configs?: { route_config?: unknown }[] };
  try {
    const res = await within('sidecar web-v1 /config_dump', 5_000, fetch(`http://127.0.0.1:${port}/config_dump?resource=dynamic_route_configs`));
    dump = (await res.json()) as typeof dump;
  } catch (err) {
    return [`sidecar web-v1: config_dump: ${(err as Error).message}`];
  }
  const pushed = weights({ name: 'api', virtual_hosts: [{ routes: [{ route: { weighted_clusters: { clusters: [{ name: 'api|v1', weight: e.v1 }, { name: 'api|v2', weight: 100 - e.v1 }] } } }] }] });
  const fromRender = weights(rendered.find((r) => (r as { name?: string }).name === 'api'));
  const inEnvoy = weights(dump.configs?.map((c) => c.route_config).find((r) => (r as { name?: string } | undefined)?.name === 'api'));
  const out: string[] = [];
  if (fromRender !== pushed) out.push(`route api: rendered weights ${fromRender}, pushed ${pushed}`);
  if (inEnvoy !== fromRender) out.push(`route api: web's sidecar holds weights ${inEnvoy}, rendered ${fromRender}`);
  return out;
}

/** `cluster=weight` of every non-zero destination of a RouteConfiguration's routes, sorted; `-` when there is none. */
function weights(config: unknown): string {
  type Dest = { weighted_clusters?: { clusters: { name: string; weight?: number | { value: number } }[] }; cluster?: string };
  const c = config as { virtual_hosts?: { routes?: { route?: Dest }[] }[] } | undefined;
  const found: string[] = [];
  for (const r of (c?.virtual_hosts ?? []).flatMap((vh) => vh.routes ?? [])) {
    for (const w of r.route?.weighted_clusters?.clusters ?? []) {
      const n = typeof w.weight === 'object' ? w.weight.value : w.weight ?? 0;
      if (n > 0) found.push(`${w.name}=${n}`);
    }
    if (r.route?.cluster) found.push(`${r.route.cluster}=100`);
  }
  return found.sort().join(',') || '-';
}

function files(t: Target, o: Observed): string[] {
  const out: string[] = [];
  for (const [rel, text] of o.rendered.files) {
    let disk: string | undefined;
    try {
      disk = readFileSync(join(t.stateDir, rel), 'utf8');
    } catch {
      /* missing */
    }
    if (disk !== text) out.push(`files: ${rel} on disk ${disk === undefined ? 'is missing' : `differs from the render (${firstDifference(disk, text)})`}`);
  }
  for (const dir of ['envoy', 'xds']) {
    let names: string[] = [];
    try {
      names = readdirSync(join(t.stateDir, dir));
    } catch {
      /* none */
    }
    for (const n of names) if (!o.rendered.files.has(`${dir}/${n}`) && !n.startsWith('.')) out.push(`files: ${dir}/${n} on disk is not in the render`);
  }
  if (o.state.appliedHash !== o.rendered.projectHash) out.push(`files: state.json appliedHash ${o.state.appliedHash ?? 'none'}, rendered project ${o.rendered.projectHash} (not applied)`);
  return out;
}

function firstDifference(a: string, b: string): string {
  const al = a.split('\n');
  const bl = b.split('\n');
  for (let i = 0; i < Math.max(al.length, bl.length); i++) {
    if (al[i] !== bl[i]) return `line ${i + 1}: disk ${JSON.stringify(al[i] ?? '<end>')}, render ${JSON.stringify(bl[i] ?? '<end>')}`;
  }
  return 'same lines';
}
