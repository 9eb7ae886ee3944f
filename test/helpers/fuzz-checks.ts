// The invariants of the document fuzzing, shared by the unit suite and scripts/fuzz.ts. Each check throws
// an AssertionError naming what broke; fast-check then shrinks the input and reports its seed.
import assert from 'node:assert/strict';
import type { SourceText } from '../../agent/core/documents/documents.js';
import type { Issue } from '../../agent/core/model/issues.js';
import { formatIssue } from '../../agent/core/model/issues.js';
import type { Instance } from '../../agent/core/model/model.js';
import type { Json } from '../../agent/core/xds/envoy-types.js';
import type { XdsResources } from '../../agent/core/xds/build-xds.js';
import type { NodeRender, Templates } from '../../agent/core/render/render-node.js';
import { renderNode } from '../../agent/core/render/render-node.js';
import { renderFiles } from '../../agent/core/render/render-files.js';
import { checkNodeEnvoy } from '../../agent/envoy-proto/check-envoy.js';
import { loadDesired } from '../../agent/core/documents/desired.js';
import { DEFAULT_ADMIN_PORTS } from '../../agent/core/render/admin-ports.js';
import { XDS_PORT } from './doc-arbitraries.js';

export const HEADER = 'fuzz.yaml (sha256 0000000000000000) for node fuzz';

/** Issues are values with a message, a path and the document they concern, and print as one line each. */
export function assertIssuesWellFormed(issues: Issue[], files: SourceText[]): void {
  for (const i of issues) {
    assert.equal(typeof i.message, 'string');
    assert.ok(i.message.length > 0, `an issue without a message at ${i.path}`);
    assert.equal(typeof i.path, 'string');
    assert.ok(files.some((f) => f.source === i.doc.source), `an issue names an unknown source ${i.doc.source}`);
    // '' is the whole document (or file): allowed, the line still names the document.
    const line = formatIssue(i);
    assert.ok(!/[\n\r\0\u2028\u2029]/.test(line), `an issue breaks its line: ${JSON.stringify(line.slice(0, 300))}`);
    assert.ok(line.length < 2000, `an issue line of ${line.length} characters: ${JSON.stringify(line.slice(0, 300))}`);
  }
}

export interface Outcome {
  issues: Issue[];
  render?: NodeRender;
  files?: Map<string, string>;
}

/** Invariants 1 and 2: load never throws; an accepted set renders without issues and passes the strict Envoy check. */
export function checkSet(files: SourceText[], node: string, instances: Instance[], templates: Templates): Outcome {
  const { desired, issues } = loadDesired(files, { xdsPort: XDS_PORT, nodes: [node] });
  assertIssuesWellFormed(issues, files);
  if (issues.length > 0) return { issues };
  const render = renderNode(desired, instances, templates, {
    node, advertiseAddress: '127.0.0.1', prefix: '/meshlet', sidecarImage: 'envoyproxy/envoy:v1.40.0',
    paths: { envoyDir: './envoy', xdsDir: './xds' }, xdsPort: XDS_PORT, adminPorts: DEFAULT_ADMIN_PORTS, previousAdminPorts: {},
  });
  assert.deepEqual(render.issues, [], 'an accepted set renders without issues');
  const envoy = checkNodeEnvoy(render);
  assert.deepEqual(envoy.map(formatIssue), [], 'an accepted set passes the strict Envoy check (a meshlet bug otherwise)');
  return { issues, render, files: renderFiles(render, HEADER) };
}

/** Seeded Fisher–Yates, so a permutation is replayed from the case's seed. */
export function shuffle<T>(list: readonly T[], seed: number): T[] {
  const out = [...list];
  let s = seed >>> 0 || 1;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** The same value with every mapping's keys in another order (YAML mappings are unordered); lists keep theirs. */
export function shuffleKeys(value: unknown, seed: number): unknown {
  if (Array.isArray(value)) return value.map((v, i) => shuffleKeys(v, seed + i + 1));
  if (value === null || typeof value !== 'object') return value;
  const entries = shuffle(Object.entries(value), seed);
  const out: Record<string, unknown> = {};
  entries.forEach(([k, v], i) => Object.defineProperty(out, k, { value: shuffleKeys(v, seed * 31 + i), enumerable: true, writable: true, configurable: true }));
  return out;
}

/**
 * A static bootstrap from a sidecar's bootstrap and its xDS resources, so that `envoy --mode validate`
 * builds every listener, route and cluster: RDS inlined as route_config, EDS clusters made STATIC with
 * their endpoints as load_assignment. The ADS source is dropped (validate mode connects to nothing anyway).
 */
export function staticBootstrap(boot: Json, res: XdsResources): Json {
  const routes = new Map(res.routes.map((r) => [r.name as string, r]));
  const endpoints = new Map(res.endpoints.map((e) => [e.cluster_name as string, e]));
  const listeners = res.listeners.map((l) => {
    const copy = structuredClone(l) as Json & { filter_chains: { filters: { typed_config: Json }[] }[] };
    for (const chain of copy.filter_chains) {
      for (const f of chain.filters) {
        const rds = f.typed_config.rds as { route_config_name: string } | undefined;
        if (!rds) continue;
        delete f.typed_config.rds;
        f.typed_config.route_config = routes.get(rds.route_config_name) ?? assert.fail(`no route ${rds.route_config_name}`);
      }
    }
    return copy;
  });
  const clusters = res.clusters.map((c) => {
    const { eds_cluster_config: _eds, ...rest } = c;
    return { ...rest, type: 'STATIC', load_assignment: endpoints.get(c.name as string) ?? { cluster_name: c.name } };
  });
  const { dynamic_resources: _ads, ...base } = boot;
  const statics = (base.static_resources ?? {}) as { clusters?: Json[] };
  return { ...base, static_resources: { listeners, clusters: [...(statics.clusters ?? []), ...clusters] } };
}
