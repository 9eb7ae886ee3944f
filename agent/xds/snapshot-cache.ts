// One consistent, validated xDS snapshot per client node id; no transport here (the ADS server reads it).
import type { XdsResources } from '../core/xds/build-xds.js';
import type { Json } from '../core/xds/envoy-types.js';
import { TYPE } from '../core/xds/envoy-types.js';
import { validateEnvoy } from '../envoy-proto/envoy-validator.js';
import { contentHash } from '../core/model/canonical.js';
import { consistencyErrors } from './snapshot-consistency.js';
import { markProxyless } from './proxyless-marks.js';

export type TypeUrl = typeof TYPE.listener | typeof TYPE.route | typeof TYPE.cluster | typeof TYPE.endpoint;

/** Every type a snapshot holds, in the order a change is pushed: clusters → endpoints → listeners → routes. */
export const PUSH_ORDER: readonly TypeUrl[] = [TYPE.cluster, TYPE.endpoint, TYPE.listener, TYPE.route];

/**
 * One resource; `version` is the hash of its content, so an unchanged resource keeps its version. Snapshots that
 * hold equal content hold the same object, so what is derived from it (the ADS server's encoded bytes) is made once
 * and lives exactly as long as a snapshot or a stream still holds the resource.
 */
export interface Resource {
  readonly name: string;
  readonly json: Json;
  readonly version: string;
}

export interface Snapshot {
  /** Hash of every resource's type, name and version. */
  readonly version: string;
  readonly resources: Readonly<Record<TypeUrl, ReadonlyMap<string, Resource>>>;
}

export type SetResult = { ok: true; version: string } | { ok: false; errors: string[] };

/** Resources for a client the agent did not start, from the listener names it asks for; undefined = none. */
export type Fallback = (nodeId: string, requestedListenerNames: string[]) => XdsResources | undefined;

export type SnapshotListener = (snapshot: Snapshot) => void;

const KEYS: [TypeUrl, keyof XdsResources][] = [
  [TYPE.listener, 'listeners'],
  [TYPE.route, 'routes'],
  [TYPE.cluster, 'clusters'],
  [TYPE.endpoint, 'endpoints'],
];

interface FallbackEntry {
  names: string;
  snapshot?: Snapshot;
  /** The fallback's output the snapshot was built from: every pass calls setFallback, most change nothing. */
  input?: string;
}

export class SnapshotCache {
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly fallbackSnapshots = new Map<string, FallbackEntry>();
  private readonly watchers = new Map<string, Set<SnapshotListener>>();
  private fallback: Fallback | undefined;
  /**
   * `<type>|<version>` → the resource that passed validateEnvoy, for every resource a served snapshot holds: the
   * check runs once per content, and equal content is one object. Only what is served is kept; it used to keep
   * every version ever checked (each route or endpoint change is a new one), with the ADS server's bytes of each.
   */
  private live = new Map<string, Resource>();
  /** Resources built by the test-only seam, which skipped the strict check: never reused as checked. */
  private readonly unchecked = new WeakSet<Resource>();
  /** The input each node's snapshot was built from, to skip rebuilding an unchanged one. */
  private readonly inputs = new Map<string, string>();
  /** Each node's last refused input and why: a pass with the same input is refused again without a rebuild. */
  private readonly refused = new Map<string, { input: string; errors: string[] }>();

  /** Checks consistency and validity, then publishes; on failure the previous snapshot keeps serving. */
  setSnapshot(nodeId: string, res: XdsResources): SetResult {
    // Most passes change nothing for most clients: the same input (the builders are deterministic) is the same snapshot.
    const input = JSON.stringify(res);
    const previous = this.snapshots.get(nodeId);
    if (previous && this.inputs.get(nodeId) === input) return { ok: true, version: previous.version };
    const refused = this.refused.get(nodeId);
    if (refused?.input === input) return { ok: false, errors: refused.errors };
    const built = this.build(res);
    if (!built.ok) {
      this.refused.set(nodeId, { input, errors: built.errors });
      return built;
    }
    this.refused.delete(nodeId);
    this.inputs.set(nodeId, input);
    this.snapshots.set(nodeId, built.snapshot);
    this.fallbackSnapshots.delete(nodeId);
    this.forgetUnserved();
    if (previous?.version !== built.snapshot.version) this.notify(nodeId, built.snapshot);
    return { ok: true, version: built.snapshot.version };
  }

  /**
   * Tests only: publishes like setSnapshot, without the strict Envoy check (consistency still applies), to show
   * what a real Envoy does with a resource the check lets through. Leaves the recorded input alone, so the
   * agent's next pass with unchanged desired state keeps this snapshot.
   */
  setSnapshotUncheckedForTests(nodeId: string, res: XdsResources): SetResult {
    const built = this.build(res, false);
    if (!built.ok) return built;
    const previous = this.snapshots.get(nodeId);
    this.snapshots.set(nodeId, built.snapshot);
    this.forgetUnserved();
    if (previous?.version !== built.snapshot.version) this.notify(nodeId, built.snapshot);
    return { ok: true, version: built.snapshot.version };
  }

  /** Stops serving a node id (its workload is gone); a connected client keeps what it has. */
  deleteSnapshot(nodeId: string): void {
    this.snapshots.delete(nodeId);
    this.inputs.delete(nodeId);
    this.refused.delete(nodeId);
    this.forgetUnserved();
  }

  /** How many distinct resources (type and content) the cache holds for the snapshots it serves. */
  resourceCount(): number {
    return this.live.size;
  }

  getSnapshot(nodeId: string): Snapshot | undefined {
    return this.snapshots.get(nodeId);
  }

  /** Node ids with a snapshot set by the agent. */
  nodeIds(): string[] {
    return [...this.snapshots.keys()].sort();
  }

  /**
   * The snapshot to serve `nodeId`: the one set for it, else one built by the fallback from the
   * listener names the client asks for (kept while the client watches, rebuilt when the names or
   * the fallback change).
   */
  resolve(nodeId: string, requestedListenerNames: readonly string[]): Snapshot | undefined {
    const own = this.snapshots.get(nodeId);
    if (own) return own;
    const names = [...new Set(requestedListenerNames)].sort();
    const key = names.join('\n');
    // No fallback yet (the agent's first pass is still running): remember what the client asked for, so
    // setFallback() answers it; otherwise it would wait for good.
    if (!this.fallback) {
      this.fallbackSnapshots.set(nodeId, { names: key, snapshot: undefined });
      return undefined;
    }
    const entry = this.fallbackSnapshots.get(nodeId);
    if (entry?.names === key) return entry.snapshot;
    return this.rebuildFallback(nodeId, names, entry?.snapshot);
  }

  /** Replaces the fallback (the agent passes a new one with each desired state) and refreshes watched clients. */
  setFallback(fn: Fallback | undefined): void {
    this.fallback = fn;
    for (const [nodeId, entry] of [...this.fallbackSnapshots]) {
      if (this.snapshots.has(nodeId) || !this.watchers.get(nodeId)?.size) this.fallbackSnapshots.delete(nodeId);
      else this.rebuildFallback(nodeId, entry.names === '' ? [] : entry.names.split('\n'), entry.snapshot);
    }
    this.forgetUnserved();
  }

  /** Calls `listener` with each new snapshot (set or fallback) for `nodeId`; returns the unsubscribe. */
  watch(nodeId: string, listener: SnapshotListener): () => void {
    let set = this.watchers.get(nodeId);
    if (!set) this.watchers.set(nodeId, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size > 0) return;
      this.watchers.delete(nodeId);
      if (this.fallbackSnapshots.delete(nodeId)) this.forgetUnserved();
    };
  }

  private rebuildFallback(nodeId: string, names: string[], previous: Snapshot | undefined): Snapshot | undefined {
    const res = this.fallback?.(nodeId, names);
    const input = res ? JSON.stringify(res) : undefined;
    const entry = this.fallbackSnapshots.get(nodeId);
    const key = names.join('\n');
    if (input !== undefined && entry?.names === key && entry.input === input && entry.snapshot) return entry.snapshot;
    const built = res ? this.build(res) : undefined;
    // An invalid fallback result serves nothing new: the client keeps what it has.
    const snapshot = built?.ok ? built.snapshot : previous;
    this.fallbackSnapshots.set(nodeId, { names: key, snapshot, ...(built?.ok ? { input } : {}) });
    if (built?.ok) this.forgetUnserved();
    if (snapshot && snapshot.version !== previous?.version) this.notify(nodeId, snapshot);
    return snapshot;
  }

  /** Keeps the checked resources of the snapshots served (set and fallback), drops the rest. */
  private forgetUnserved(): void {
    const live = new Map<string, Resource>();
    const served = [...this.snapshots.values(), ...[...this.fallbackSnapshots.values()].map((e) => e.snapshot)];
    for (const snap of served) {
      if (!snap) continue;
      for (const [typeUrl, byName] of Object.entries(snap.resources)) {
        for (const r of byName.values()) if (!this.unchecked.has(r)) live.set(`${typeUrl}|${r.version}`, r);
      }
    }
    this.live = live;
  }

  private notify(nodeId: string, snapshot: Snapshot): void {
    for (const fn of [...(this.watchers.get(nodeId) ?? [])]) fn(snapshot);
  }

  private build(input: XdsResources, strict = true): { ok: true; snapshot: Snapshot } | { ok: false; errors: string[] } {
    const res = markProxyless(input);
    const errors = consistencyErrors(res);
    const resources = {} as Record<TypeUrl, Map<string, Resource>>;
    const summary: [string, string, string][] = [];
    for (const [typeUrl, key] of KEYS) {
      const byName = new Map<string, Resource>();
      const kind = typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
      for (const json of res[key]) {
        const name = String(typeUrl === TYPE.endpoint ? json.cluster_name : json.name);
        if (byName.has(name)) errors.push(`${kind} ${name}: defined twice`);
        const version = contentHash(json);
        // Equal content is one object; its name is part of the content (clusters, listeners, routes; an assignment's cluster_name).
        let r = strict ? this.live.get(`${typeUrl}|${version}`) : undefined;
        if (!r) {
          if (strict) errors.push(...this.check(kind, name, typeUrl, json));
          r = { name, json, version };
          if (!strict) this.unchecked.add(r);
        }
        byName.set(name, r);
        summary.push([typeUrl, name, version]);
      }
      resources[typeUrl] = byName;
    }
    if (errors.length > 0) return { ok: false, errors };
    summary.sort((a, b) => (a.join('|') < b.join('|') ? -1 : 1));
    return { ok: true, snapshot: { version: contentHash(summary), resources } };
  }

  private check(kind: string, name: string, typeUrl: TypeUrl, json: Json): string[] {
    return validateEnvoy(typeUrl, json).map((i) => `${kind} ${name}: ${i.path || '(root)'}: ${i.message}`);
  }
}
