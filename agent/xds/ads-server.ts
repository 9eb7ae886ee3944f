// Envoy's Aggregated Discovery Service (state of the world, v3) over gRPC on loopback, serving a SnapshotCache.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import { systemClock } from '../core/clock.js';
import { silentLogger } from '../core/logger.js';
import type { Resource, SnapshotCache, TypeUrl } from './snapshot-cache.js';
import type { DiscoveryRequest, DiscoveryResponse } from './ads-stream.js';
import { AdsStream } from './ads-stream.js';
import { encodeResource } from '../envoy-proto/encode-resource.js';
import { envoyIncludeDirs } from '../envoy-proto/include-dirs.js';

export interface AdsServerOptions {
  cache: SnapshotCache;
  log?: Logger;
  clock?: Clock;
}

export interface NackRecord {
  version: string;
  message: string;
  /** ISO time the NACK arrived. */
  at: string;
}

/** What the agent writes into the node status, per xDS node id. */
export interface XdsClientStatus {
  connected: boolean;
  streams: number;
  /** Last version ACKed, per type URL. */
  acked: Partial<Record<TypeUrl, string>>;
  /** Last NACK per type URL; dropped once that type ACKs a version again. */
  nacked: Partial<Record<TypeUrl, NackRecord>>;
}

export type AdsEvent =
  | { kind: 'connect' | 'disconnect'; nodeId: string }
  | { kind: 'ack'; nodeId: string; typeUrl: TypeUrl; version: string }
  | { kind: 'nack'; nodeId: string; typeUrl: TypeUrl; version: string; message: string };

export class AdsServer {
  private server: grpc.Server | undefined;
  private readonly status = new Map<string, XdsClientStatus>();
  private readonly listeners = new Set<(e: AdsEvent) => void>();
  /**
   * Any bytes per resource: the cache hands out one object per content, so each content is encoded once, and its
   * bytes go with the last snapshot or stream holding it (a map by version kept up to 20,000 old versions' bytes).
   */
  private readonly encoded = new WeakMap<Resource, Uint8Array>();
  private readonly cache: SnapshotCache;
  private readonly log: Logger;
  private readonly clock: Clock;

  constructor(opts: AdsServerOptions) {
    this.cache = opts.cache;
    this.log = opts.log ?? silentLogger;
    this.clock = opts.clock ?? systemClock;
  }

  /** Listens on 127.0.0.1:`port` (0 = any free port); resolves to the port bound. */
  async start(port: number): Promise<number> {
    if (this.server) throw new Error('AdsServer already started');
    const server = new grpc.Server({ 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
    server.addService(adsService(), { StreamAggregatedResources: (call: AdsCall) => this.serve(call) });
    const bound = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    this.server = server;
    this.log.info('xds server listening', { address: `127.0.0.1:${bound}` });
    return bound;
  }

  /** Closes every stream at once (ADS streams never end by themselves) and the listening socket. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    server?.forceShutdown();
  }

  /** Per xDS node id: connected, last ACKed version and last NACK per type. */
  clients(): Record<string, XdsClientStatus> {
    const out: Record<string, XdsClientStatus> = {};
    for (const [id, s] of [...this.status].sort(([a], [b]) => (a < b ? -1 : 1))) out[id] = { ...s, acked: { ...s.acked }, nacked: { ...s.nacked } };
    return out;
  }

  /** Calls `fn` on connect, disconnect, ACK and NACK; returns the unsubscribe. */
  on(fn: (e: AdsEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  // One StreamAggregatedResources call. The protocol rules (push order clusters → endpoints →
  // listeners → routes → final CDS; a stale nonce gets no reply; NACK = error_detail) live in AdsStream.
  private serve(call: AdsCall): void {
    let stream: AdsStream | undefined;
    let unwatch: (() => void) | undefined;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      unwatch?.();
      if (stream) this.disconnected(stream.nodeId);
    };
    call.on('data', (req: DiscoveryRequest) => {
      if (closed) return;
      if (!stream) {
        const nodeId = req.node?.id;
        if (!nodeId) {
          call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'the first DiscoveryRequest of a stream must carry node.id' });
          return;
        }
        stream = new AdsStream(nodeId, this.cache, this.hooks(nodeId, call));
        this.connected(nodeId);
        const s = stream;
        unwatch = this.cache.watch(nodeId, () => s.push());
      }
      this.log.debug('xds request', { node: stream.nodeId, type: req.type_url, names: req.resource_names, nonce: req.response_nonce, version: req.version_info, error: req.error_detail?.message });
      try {
        stream.handle(req);
      } catch (err) {
        this.log.error('xds request failed', { node: stream.nodeId, type: req.type_url, error: (err as Error).message });
        call.emit('error', { code: grpc.status.INTERNAL, details: (err as Error).message });
      }
    });
    call.on('end', () => {
      close();
      call.end();
    });
    call.on('error', close);
    call.on('cancelled', close);
    call.on('close', close);
  }

  private hooks(nodeId: string, call: AdsCall) {
    return {
      send: (response: DiscoveryResponse) => {
        this.log.debug('xds response', { node: nodeId, type: response.type_url, nonce: response.nonce, version: response.version_info, resources: response.resources.length });
        if (!call.writableEnded && !call.destroyed) call.write(response);
      },
      encode: (typeUrl: TypeUrl, r: Resource) => this.encode(typeUrl, r),
      ack: (typeUrl: TypeUrl, version: string) => {
        const s = this.status.get(nodeId)!;
        s.acked[typeUrl] = version;
        if (s.nacked[typeUrl]?.version !== version) delete s.nacked[typeUrl];
        this.emit({ kind: 'ack', nodeId, typeUrl, version });
      },
      nack: (typeUrl: TypeUrl, version: string, message: string) => {
        this.status.get(nodeId)!.nacked[typeUrl] = { version, message, at: new Date(this.clock.now()).toISOString() };
        this.log.warn('xds NACK', { node: nodeId, type: typeUrl, version, message });
        this.emit({ kind: 'nack', nodeId, typeUrl, version, message });
      },
    };
  }

  private encode(typeUrl: TypeUrl, r: Resource): Uint8Array {
    let bytes = this.encoded.get(r);
    if (!bytes) this.encoded.set(r, (bytes = encodeResource(typeUrl, r.json)));
    return bytes;
  }

  private connected(nodeId: string): void {
    const s = this.status.get(nodeId) ?? { connected: false, streams: 0, acked: {}, nacked: {} };
    s.streams++;
    s.connected = true;
    this.status.set(nodeId, s);
    if (s.streams === 1) this.emit({ kind: 'connect', nodeId });
  }

  private disconnected(nodeId: string): void {
    const s = this.status.get(nodeId);
    if (!s) return;
    s.streams = Math.max(0, s.streams - 1);
    s.connected = s.streams > 0;
    if (!s.connected) this.emit({ kind: 'disconnect', nodeId });
  }

  private emit(e: AdsEvent): void {
    for (const fn of [...this.listeners]) {
      try {
        fn(e);
      } catch (err) {
        this.log.error('xds event listener failed', { error: (err as Error).message });
      }
    }
  }
}

type AdsCall = grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>;

let definition: grpc.ServiceDefinition | undefined;

/** The ADS service definition, loaded once from Envoy's protos shipped in @grpc/grpc-js-xds. */
export function adsService(): grpc.ServiceDefinition {
  if (definition) return definition;
  const pkg = protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: envoyIncludeDirs(),
  });
  const loaded = grpc.loadPackageDefinition(pkg) as unknown as { envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: grpc.ServiceClientConstructor } } } } };
  definition = loaded.envoy.service.discovery.v3.AggregatedDiscoveryService.service;
  return definition;
}
