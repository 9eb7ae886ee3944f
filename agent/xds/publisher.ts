// Publishes each pass's xDS resources into the snapshot cache: one snapshot per sidecar and proxyless app of
// this node, a fallback for proxyless clients the agent did not start, and what failed (for the node status).
import type { Logger } from '../core/logger.js';
import type { Desired, Instance } from '../core/model/model.js';
import type { XdsResources } from '../core/xds/build-xds.js';
import { buildProxylessResources } from '../core/xds/build-xds.js';
import type { SnapshotCache } from './snapshot-cache.js';
import type { XdsClientStatus } from './ads-server.js';

export interface XdsClientSummary {
  connected: boolean;
  acked: Record<string, string>;
  nack?: { type: string; version: string; message: string; at: string };
}

export class XdsPublisher {
  #errors: Record<string, string[]> = {};

  constructor(private readonly cache: SnapshotCache, private readonly log: Logger) {}

  /** A snapshot that fails validation or consistency is not published: the last good one keeps serving. */
  publish(snapshots: Record<string, XdsResources>, desired: Desired, instances: Instance[]): void {
    const errors: Record<string, string[]> = {};
    for (const [nodeId, res] of Object.entries(snapshots)) {
      const r = this.cache.setSnapshot(nodeId, res);
      if (!r.ok) {
        errors[nodeId] = r.errors;
        if (JSON.stringify(this.#errors[nodeId]) !== JSON.stringify(r.errors)) this.log.error('xDS snapshot refused; the last good one keeps serving', { nodeId, errors: r.errors });
      }
    }
    for (const id of this.cache.nodeIds()) if (!(id in snapshots)) this.cache.deleteSnapshot(id);
    this.#errors = errors;
    // Any proxyless gRPC client on this host is served, also one the agent did not start: a listener
    // request for a known service's name gets that service's resources.
    this.cache.setFallback((_id, names) => {
      const known = names.filter((n) => desired.services.some((s) => s.name === n));
      return known.length > 0 ? buildProxylessResources(known, desired, instances, []) : undefined;
    });
  }

  errors(): Record<string, string[]> {
    return this.#errors;
  }

  clientStatus(clients: Record<string, XdsClientStatus>): Record<string, XdsClientSummary> {
    const out: Record<string, XdsClientSummary> = {};
    for (const [id, c] of Object.entries(clients).sort()) {
      const acked: Record<string, string> = {};
      for (const [t, v] of Object.entries(c.acked)) if (v) acked[t.split('.').pop()!] = v;
      const nack = Object.entries(c.nacked).find(([, n]) => n);
      out[id] = { connected: c.connected, acked, ...(nack ? { nack: { type: nack[0].split('.').pop()!, ...nack[1]! } } : {}) };
    }
    return out;
  }
}
