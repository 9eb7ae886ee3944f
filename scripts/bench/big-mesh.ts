// A generated desired state: 1,000 services over 50 nodes, two versions each, so each node carries ~40 workloads.
import { stringify } from 'yaml';
import type { Instance } from '../../agent/core/model/model.js';

export interface BigMesh {
  yaml: string;
  instances: Instance[];
}

export function bigMesh(services = 1000, nodes = 50): BigMesh {
  const docs: unknown[] = [];
  const instances: Instance[] = [];
  const name = (i: number) => `svc-${String(i).padStart(4, '0')}`;
  const node = (i: number) => `node-${String(i % nodes).padStart(2, '0')}`;
  for (let i = 0; i < services; i++) {
    const up = [(i + 1) % services, (i + 7) % services];
    docs.push({
      apiVersion: 'meshlet.dev/v1',
      kind: 'Service',
      metadata: { name: name(i) },
      spec: {
        protocol: i % 5 === 0 ? 'grpc' : 'http',
        port: 30000 + i,
        versions: {
          v1: { image: `registry.local/${name(i)}:1`, nodes: [node(i)], health: { http: '/health' }, env: { LOG_LEVEL: 'info' } },
          v2: { image: `registry.local/${name(i)}:2`, port: 40000 + i, nodes: [node(i + 25)], health: { tcp: true } },
        },
        upstreams: up.map((u) => ({ service: name(u), mode: 'proxy', localPort: 20000 + u })),
      },
    });
    if (i % 3 === 0) {
      docs.push({
        apiVersion: 'networking.istio.io/v1',
        kind: 'VirtualService',
        metadata: { name: name(i) },
        spec: {
          hosts: [name(i)],
          http: [
            { match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: [{ destination: { host: name(i), subset: 'v2' } }] },
            { route: [{ destination: { host: name(i), subset: 'v1' }, weight: 90 }, { destination: { host: name(i), subset: 'v2' }, weight: 10 }], timeout: '2s' },
          ],
        },
      });
      docs.push({
        apiVersion: 'networking.istio.io/v1',
        kind: 'DestinationRule',
        metadata: { name: name(i) },
        spec: {
          host: name(i),
          trafficPolicy: { outlierDetection: { consecutive5xxErrors: 5, interval: '10s' } },
          subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }],
        },
      });
    }
    for (const [v, n, port] of [['v1', i, 30000 + i], ['v2', i + 25, 40000 + i]] as const) {
      instances.push({ service: name(i), version: v, node: node(n), address: `127.0.${n % nodes}.${1 + (i % 200)}`, port });
    }
  }
  return { yaml: docs.map((d) => stringify(d)).join('---\n'), instances };
}
