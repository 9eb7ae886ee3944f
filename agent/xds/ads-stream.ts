// One ADS stream (state of the world): subscriptions, nonces, ACK/NACK and what to send when.
import type { Resource, Snapshot, SnapshotCache, TypeUrl } from './snapshot-cache.js';
import { PUSH_ORDER } from './snapshot-cache.js';
import { TYPE } from '../core/xds/envoy-types.js';
import { contentHash } from '../core/model/canonical.js';

/** The fields of envoy.service.discovery.v3.DiscoveryRequest meshlet reads (proto-loader, keepCase, defaults). */
export interface DiscoveryRequest {
  version_info: string;
  node: { id: string } | null;
  resource_names: string[];
  type_url: string;
  response_nonce: string;
  error_detail: { code: number; message: string } | null;
}

export interface DiscoveryResponse {
  version_info: string;
  resources: { type_url: string; value: Uint8Array }[];
  type_url: string;
  nonce: string;
}

export interface StreamHooks {
  send(response: DiscoveryResponse): void;
  /** Encoded Any value of a resource (memoised by the server: versions are content hashes). */
  encode(typeUrl: TypeUrl, resource: Resource): Uint8Array;
  ack(typeUrl: TypeUrl, version: string): void;
  nack(typeUrl: TypeUrl, version: string, message: string): void;
}

interface TypeState {
  names: Set<string>;
  wildcard: boolean;
  namedEver: boolean;
  /** Latest response of this type: its nonce, version, subscription and resources. */
  nonce?: string;
  version?: string;
  namesKey?: string;
  sent: Map<string, Resource>;
  /** A version the client refused: never sent again on this stream (a new snapshot has a new version). */
  nacked?: string;
}

const KNOWN = new Set<string>(PUSH_ORDER);
/** Listener and Cluster responses carry every subscribed resource (absence = deletion), and only they have a wildcard. */
const FULL_STATE = new Set<string>([TYPE.listener, TYPE.cluster]);

/*
 * Protocol facts this class keeps (REFERENCE "Envoy xDS"):
 * - Nonces increase per stream. A request whose nonce is not the latest sent for its type is
 *   STALE: it gets NO reply and changes nothing (the client will answer the newer response).
 * - ACK = latest nonce, no error_detail; NACK = error_detail set (not judged by version_info).
 * - Push order on a change: clusters (new ones, and removed ones kept) → endpoints → listeners →
 *   routes → a final CDS without the removed clusters, so nothing names a missing resource.
 *   (Wildcard subscribers only; named subscribers drop a cluster by no longer asking for it.)
 * - After a CDS response Envoy re-requests endpoints and waits for an answer even when nothing
 *   changed: the next EDS request is answered even with the same version.
 */
export class AdsStream {
  private nonce = 0;
  private readonly types = new Map<TypeUrl, TypeState>();
  private edsOwed = false;

  constructor(
    readonly nodeId: string,
    private readonly cache: SnapshotCache,
    private readonly hooks: StreamHooks,
  ) {}

  handle(req: DiscoveryRequest): void {
    if (!KNOWN.has(req.type_url)) return;
    const type = req.type_url as TypeUrl;
    const st = this.state(type);
    if (req.response_nonce && st.nonce !== undefined && req.response_nonce !== st.nonce) return; // stale: no reply
    const nack = req.error_detail !== null && req.error_detail !== undefined;
    if (req.response_nonce && req.response_nonce === st.nonce) {
      if (nack) {
        st.nacked = st.version;
        this.hooks.nack(type, st.version!, req.error_detail!.message || `code ${req.error_detail!.code}`);
      } else this.hooks.ack(type, st.version!);
    }
    this.subscribe(type, st, req.resource_names ?? []);
    this.respond(type, { force: type === TYPE.endpoint && this.edsOwed && !nack });
  }

  /** A new snapshot: send every subscribed type that changed, in the safe order. */
  push(): void {
    const snap = this.snapshot();
    if (!snap) return;
    const cds = this.types.get(TYPE.cluster);
    const removed = cds?.wildcard ? [...cds.sent.values()].filter((r) => !snap.resources[TYPE.cluster].has(r.name)) : [];
    this.respond(TYPE.cluster, { keep: removed });
    this.respond(TYPE.endpoint);
    this.respond(TYPE.listener);
    this.respond(TYPE.route);
    if (removed.length > 0) this.respond(TYPE.cluster, { removalOnly: true });
  }

  private state(type: TypeUrl): TypeState {
    let st = this.types.get(type);
    if (!st) this.types.set(type, (st = { names: new Set(), wildcard: false, namedEver: false, sent: new Map() }));
    return st;
  }

  // An empty list is a wildcard only for listeners/clusters, and only if nothing was ever asked by name.
  private subscribe(type: TypeUrl, st: TypeState, names: string[]): void {
    if (names.length > 0) {
      st.namedEver = true;
      st.wildcard = names.includes('*');
      st.names = new Set(names.filter((n) => n !== '*'));
    } else {
      st.wildcard = FULL_STATE.has(type) && !st.namedEver;
      st.names = new Set();
    }
  }

  private snapshot(): Snapshot | undefined {
    const lds = this.types.get(TYPE.listener);
    return this.cache.resolve(this.nodeId, lds ? [...lds.names].sort() : []);
  }

  private respond(type: TypeUrl, opts: { force?: boolean; keep?: Resource[]; removalOnly?: boolean } = {}): void {
    const st = this.types.get(type);
    if (!st || (!st.wildcard && st.names.size === 0)) return;
    const snap = this.snapshot();
    if (!snap) return;
    const pool = snap.resources[type];
    // A listener or cluster named by the client and sent before is never reported deleted while the
    // client still asks for it: grpc-js-xds 1.14 keeps a deleted resource's old copy and ignores it
    // when it comes back unchanged (a cluster dropped by a 100/0 flip and re-added by 50/50 stayed dead).
    const retained = (n: string) => (FULL_STATE.has(type) ? st.sent.get(n) : undefined);
    const chosen = st.wildcard ? [...pool.values(), ...(opts.keep ?? [])] : [...st.names].map((n) => pool.get(n) ?? retained(n)).filter((r): r is Resource => r !== undefined);
    // Routes and endpoints: absence means nothing, so an empty answer says nothing.
    if (chosen.length === 0 && !FULL_STATE.has(type)) return;
    chosen.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    // The version names exactly what is sent, so a different subscription gives a different version.
    const version = contentHash(chosen.map((r) => [r.name, r.version]));
    const namesKey = st.wildcard ? '*' : [...st.names].sort().join('\n');
    if (version === st.nacked) return;
    if (!opts.force && version === st.version && namesKey === st.namesKey) return;
    const nonce = String(++this.nonce);
    Object.assign(st, { nonce, version, namesKey, sent: new Map(chosen.map((r) => [r.name, r])) });
    if (type === TYPE.cluster && !opts.removalOnly) this.edsOwed = true;
    if (type === TYPE.endpoint) this.edsOwed = false;
    this.hooks.send({ version_info: version, type_url: type, nonce, resources: chosen.map((r) => ({ type_url: type, value: this.hooks.encode(type, r) })) });
  }
}
