// Runs the strict Envoy check over everything a node render emits, reporting each problem with its document.
import type { Issue } from '../core/model/issues.js';
import type { NodeRender } from '../core/render/render-node.js';
import type { XdsResources } from '../core/xds/build-xds.js';
import { validateEnvoy } from './envoy-validator.js';

const KINDS: [keyof XdsResources, string][] = [
  ['listeners', 'envoy.config.listener.v3.Listener'],
  ['routes', 'envoy.config.route.v3.RouteConfiguration'],
  ['clusters', 'envoy.config.cluster.v3.Cluster'],
  ['endpoints', 'envoy.config.endpoint.v3.ClusterLoadAssignment'],
];

export function checkResources(source: string, res: XdsResources): Issue[] {
  const issues: Issue[] = [];
  for (const [key, type] of KINDS) {
    res[key].forEach((doc, index) => {
      const name = String(doc.name ?? doc.cluster_name ?? index);
      for (const p of validateEnvoy(type, doc)) issues.push({ doc: { source, index, kind: type.split('.').pop(), name }, path: p.path, message: p.message });
    });
  }
  return issues;
}

export function checkNodeEnvoy(render: NodeRender): Issue[] {
  const issues: Issue[] = [];
  for (const [name, boot] of Object.entries(render.bootstraps)) {
    for (const p of validateEnvoy('envoy.config.bootstrap.v3.Bootstrap', boot)) {
      issues.push({ doc: { source: `envoy/${name}.yaml`, index: 0, kind: 'Bootstrap', name }, path: p.path, message: p.message });
    }
  }
  for (const [nodeId, res] of Object.entries(render.snapshots)) issues.push(...checkResources(`xds/${nodeId}.json`, res));
  return issues;
}
