// Real Envoy sidecars on the host, configured exactly as the agent configures them: the desired state is
// rendered by renderNode(), published by the agent's XdsPublisher into its SnapshotCache and served by its
// AdsServer; each sidecar is the real Envoy binary started with the bootstrap meshlet rendered for it.
// No Docker here: the e2e tests cover the same sidecars running as compose containers.
import type { Desired, Instance } from '../../agent/core/model/model.js';
import type { Json } from '../../agent/core/xds/envoy-types.js';
import { loadDesired } from '../../agent/core/documents/desired.js';
import { renderNode, type NodeRender } from '../../agent/core/render/render-node.js';
import { xdsNodeId } from '../../agent/core/model/ids.js';
import { contentHash } from '../../agent/core/model/canonical.js';
import { TYPE } from '../../agent/core/xds/envoy-types.js';
import { silentLogger } from '../../agent/core/logger.js';
import { loadTemplates } from '../../agent/adapters/files/templates.js';
import { SnapshotCache } from '../../agent/xds/snapshot-cache.js';
import { AdsServer, type AdsEvent } from '../../agent/xds/ads-server.js';
import { XdsPublisher } from '../../agent/xds/publisher.js';
import { freePort } from './etcd.js';
import { startEnvoy, type RunningEnvoy } from './envoy.js';
import { waitFor } from './wait.js';

export interface EnvoyMesh {
  node: string;
  xdsPort: number;
  cache: SnapshotCache;
  ads: AdsServer;
  desired(): Desired;
  render(): NodeRender;
  /** Validates `yaml` strictly (as `meshlet apply` does), renders the node and publishes every snapshot. */
  apply(yaml: string, instances?: Instance[]): void;
  /** Same desired state, new instances (the registry changed). */
  setInstances(instances: Instance[]): void;
  /** Starts the real Envoy for workload `<service>-<version>` and waits until it ACKed the current snapshot. */
  startSidecar(workload: string): Promise<RunningEnvoy>;
  /** Waits until the sidecar of `workload` ACKed every type of its current snapshot. */
  synced(workload: string): Promise<void>;
  events: AdsEvent[];
  stop(): Promise<void>;
}

/** `region`/`zone`: the node's locality, as its agent's --region/--zone would give it. */
export async function startEnvoyMesh(opts: { node?: string; region?: string; zone?: string } = {}): Promise<EnvoyMesh> {
  const node = opts.node ?? 'local';
  const cache = new SnapshotCache();
  const ads = new AdsServer({ cache, log: silentLogger });
  const xdsPort = await ads.start(0);
  const publisher = new XdsPublisher(cache, silentLogger);
  const templates = await loadTemplates();
  const events: AdsEvent[] = [];
  ads.on((e) => events.push(e));
  const sidecars: RunningEnvoy[] = [];
  let desired: Desired | undefined;
  let instances: Instance[] = [];
  let render: NodeRender | undefined;
  // One admin port per workload for the life of the mesh, as the agent keeps them in state.json.
  const adminPorts: Record<string, number> = {};

  const publish = () => {
    render = renderNode(desired!, instances, templates, {
      node,
      advertiseAddress: '127.0.0.1',
      prefix: '/meshlet',
      sidecarImage: 'unused',
      paths: { envoyDir: './envoy', xdsDir: './xds' },
      xdsPort,
      adminPorts: { from: 1, to: 65535 },
      previousAdminPorts: adminPorts,
      // These sidecars run on the host: they read upstream TLS files at their host paths.
      upstreamTlsRoot: '',
      ...(opts.region !== undefined ? { region: opts.region } : {}),
      ...(opts.zone !== undefined ? { zone: opts.zone } : {}),
    });
    if (render.issues.length > 0) throw new Error(`render: ${render.issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
    publisher.publish(render.snapshots, desired!, instances);
    const errors = publisher.errors();
    if (Object.keys(errors).length > 0) throw new Error(`snapshot refused: ${JSON.stringify(errors)}`);
  };

  const synced = async (workload: string) => {
    if (!render?.bootstraps[workload]) throw new Error(`no sidecar ${workload} on node ${node}`);
    const id = idOf(workload);
    await waitFor(`${id} to ACK its snapshot`, () => {
      const snap = cache.getSnapshot(id);
      const client = ads.clients()[id];
      if (!snap || !client?.connected) return false;
      const nack = Object.values(client.nacked).find(Boolean);
      if (nack) throw new Error(`${id} NACKed: ${nack.message}`);
      // An Envoy sidecar subscribes to every resource of its snapshot, so the version of each type it
      // must ACK is the hash of all of them (what AdsStream sends; see its respond()).
      for (const [type, pool] of Object.entries(snap.resources)) {
        const all = [...pool.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
        if (all.length === 0 && type !== TYPE.listener && type !== TYPE.cluster) continue;
        if (client.acked[type as keyof typeof client.acked] !== contentHash(all.map((r) => [r.name, r.version]))) return false;
      }
      return true;
    }, 20_000, 20);
  };

  const idOf = (workload: string) => {
    const dash = workload.lastIndexOf('-');
    return xdsNodeId('sidecar', node, workload.slice(0, dash), workload.slice(dash + 1));
  };

  return {
    node,
    xdsPort,
    cache,
    ads,
    events,
    desired: () => desired!,
    render: () => render!,
    apply(yaml, next) {
      const loaded = loadDesired([{ source: 'test.yaml', text: yaml }], { xdsPort, nodes: [node] });
      if (loaded.issues.length > 0) throw new Error(`desired state refused: ${loaded.issues.map((i) => `${i.doc.source}#${i.doc.index} ${i.path}: ${i.message}`).join('; ')}`);
      desired = loaded.desired;
      if (next) instances = next;
      publish();
    },
    setInstances(next) {
      instances = next;
      publish();
    },
    async startSidecar(workload) {
      if (!render?.bootstraps[workload]) throw new Error(`no sidecar ${workload} on node ${node}`);
      adminPorts[workload] ??= await freePort();
      // Admin port taken from the mesh's own choice, so two meshes in one test file never clash.
      const bootstrap = { ...(render.bootstraps[workload] as Json), admin: { address: { socket_address: { address: '127.0.0.1', port_value: adminPorts[workload] } } } };
      const envoy = await startEnvoy(bootstrap, { adminPort: adminPorts[workload]! });
      sidecars.push(envoy);
      await synced(workload);
      return envoy;
    },
    synced,
    async stop() {
      await Promise.all(sidecars.map((s) => s.stop()));
      await ads.stop();
    },
  };
}
