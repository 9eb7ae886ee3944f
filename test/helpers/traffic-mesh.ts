// One caller (`web`, on node local) whose real Envoy sidecar proxies `api` on 127.0.0.1:<port>, and HTTP apps
// registered as the instances of each `api` version: the frame of the test/envoy/ traffic-rule tests.
import type { Instance } from '../../agent/core/model/model.js';
import type { RunningEnvoy } from './envoy.js';
import { startEnvoyMesh, type EnvoyMesh } from './envoy-mesh.js';
import { startHttpApp, type HttpApp } from './http-apps.js';
import { freePort } from './etcd.js';

export interface TrafficMesh {
  mesh: EnvoyMesh;
  sidecar: RunningEnvoy;
  /** The caller's sidecar listener for `api`. */
  port: number;
  /** Apps by version, in start order; app ids are `api-<version>-<n>`. */
  apps: Record<string, HttpApp[]>;
  app(version: string, n?: number): HttpApp;
  /** The Service documents plus `rules` (VirtualService / DestinationRule YAML); resolves once the sidecar ACKed. */
  apply(rules: string, instances?: Instance[]): Promise<void>;
  /** Registered instances of every app (all of them unless `only` picks some). */
  instances(only?: HttpApp[]): Instance[];
  /** Forgets what every app saw and makes them all answer 200 again. */
  reset(): void;
  stop(): Promise<void>;
}

/** `versions`: how many instances each version of `api` runs, e.g. `{ v1: 2, v2: 1 }`. */
/** `locality`: the caller's node region and zone (as its agent's --region/--zone). */
export async function startTrafficMesh(versions: Record<string, number>, opts: { rules?: string; locality?: { region: string; zone: string } } = {}): Promise<TrafficMesh> {
  const apps: Record<string, HttpApp[]> = {};
  for (const [v, n] of Object.entries(versions)) {
    apps[v] = await Promise.all(Array.from({ length: n }, (_, i) => startHttpApp('api', v, `api-${v}-${i}`)));
  }
  const all = () => Object.values(apps).flat();
  const port = await freePort();
  const services = servicesYaml(Object.keys(versions), port);
  const mesh = await startEnvoyMesh(opts.locality ?? {});
  const instances = (only?: HttpApp[]) => (only ?? all()).map((a) => a.instance('elsewhere'));
  const docs = (rules: string) => services + (rules.trim() ? `---\n${rules}` : '');
  mesh.apply(docs(opts.rules ?? ''), instances());
  const sidecar = await mesh.startSidecar('web-v1');
  return {
    mesh,
    sidecar,
    port,
    apps,
    app: (version, n = 0) => apps[version]![n]!,
    instances,
    async apply(rules, next) {
      mesh.apply(docs(rules), next);
      await mesh.synced('web-v1');
    },
    reset() {
      for (const a of all()) {
        a.seen.length = 0;
        a.behave({ kind: 'ok' });
      }
    },
    async stop() {
      await mesh.stop();
      for (const a of all()) await a.close();
    },
  };
}

function servicesYaml(versions: string[], port: number): string {
  // Ports in the Service are placement data only: the registered instances carry the apps' real ports.
  const vs = versions.map((v, i) => `    ${v}: { image: api:${v}, port: ${2000 + i}, nodes: [elsewhere] }`).join('\n');
  return `
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: web }
spec:
  port: 1000
  versions: { v1: { image: web:1, nodes: [local] } }
  upstreams: [{ service: api, localPort: ${port} }]
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: api }
spec:
  port: 2000
  versions:
${vs}
`;
}

/** A subset per version (an explicit DestinationRule is only needed for traffic policies). */
export function destination(subset: string, weight?: number): string {
  return `{ destination: { host: api, subset: ${subset} }${weight === undefined ? '' : `, weight: ${weight}`} }`;
}
