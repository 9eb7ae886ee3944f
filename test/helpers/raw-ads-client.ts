// A bare ADS client (one bidi stream) that checks protocol invariants on every response it receives.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { envoyIncludeDirs } from '../../agent/envoy-proto/include-dirs.js';
import { findEnvoyType } from '../../agent/envoy-proto/envoy-protos.js';

export interface RawResponse {
  version_info: string;
  type_url: string;
  nonce: string;
  resources: { type_url: string; value: Buffer }[];
}

export interface RawRequest {
  type_url: string;
  resource_names?: string[];
  version_info?: string;
  response_nonce?: string;
  error_detail?: { code: number; message: string };
  node?: { id: string; locality?: Record<string, string> };
}

type AdsClientCtor = new (address: string, creds: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => grpc.Client & {
  StreamAggregatedResources(): grpc.ClientDuplexStream<RawRequest, RawResponse>;
};

let ctor: AdsClientCtor | undefined;
function adsClientCtor(): AdsClientCtor {
  if (ctor) return ctor;
  const pkg = protoLoader.loadSync('envoy/service/discovery/v3/ads.proto', { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true, includeDirs: envoyIncludeDirs() });
  const loaded = grpc.loadPackageDefinition(pkg) as unknown as { envoy: { service: { discovery: { v3: { AggregatedDiscoveryService: AdsClientCtor } } } } };
  ctor = loaded.envoy.service.discovery.v3.AggregatedDiscoveryService;
  return ctor;
}

export class RawAdsClient {
  readonly responses: RawResponse[] = [];
  /** Broken invariants, one line each; tests assert this stays empty. */
  readonly violations: string[] = [];
  private readonly client: InstanceType<AdsClientCtor>;
  private readonly call: grpc.ClientDuplexStream<RawRequest, RawResponse>;
  private readonly waiters: ((r: RawResponse) => void)[] = [];
  private readonly queue: RawResponse[] = [];
  private lastNonce = 0;
  private sentNode = false;
  onResponse?: (r: RawResponse) => void;
  error?: grpc.ServiceError;

  constructor(port: number, readonly nodeId: string, opts: { ownConnection?: boolean } = {}) {
    const Ctor = adsClientCtor();
    this.client = new Ctor(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), opts.ownConnection ? { 'grpc.use_local_subchannel_pool': 1 } : {});
    this.call = this.client.StreamAggregatedResources();
    this.call.on('data', (r: RawResponse) => this.received(r));
    this.call.on('error', (err: grpc.ServiceError) => {
      this.error = err;
    });
  }

  private received(r: RawResponse): void {
    const n = Number(r.nonce);
    if (!(n > this.lastNonce)) this.violations.push(`nonce ${r.nonce} after ${this.lastNonce}`);
    this.lastNonce = Math.max(this.lastNonce, n);
    if (!r.version_info) this.violations.push(`empty version_info (nonce ${r.nonce})`);
    for (const res of r.resources) if (res.type_url !== r.type_url) this.violations.push(`resource type ${res.type_url} in a ${r.type_url} response`);
    this.responses.push(r);
    this.onResponse?.(r);
    const w = this.waiters.shift();
    if (w) w(r);
    else this.queue.push(r);
  }

  /** Sends a request; the first one carries the node. */
  send(req: RawRequest): void {
    const node = this.sentNode ? undefined : { id: this.nodeId, locality: {} };
    this.sentNode = true;
    this.call.write({ resource_names: [], version_info: '', response_nonce: '', ...req, ...(node && !req.node ? { node } : {}) });
  }

  /** ACKs a response, keeping the given subscription. */
  ack(r: RawResponse, names: string[] = []): void {
    this.send({ type_url: r.type_url, resource_names: names, version_info: r.version_info, response_nonce: r.nonce });
  }

  nack(r: RawResponse, previousVersion: string, names: string[] = [], message = 'rejected by test'): void {
    this.send({ type_url: r.type_url, resource_names: names, version_info: previousVersion, response_nonce: r.nonce, error_detail: { code: 3, message } });
  }

  /** The next response not yet taken. */
  next(timeoutMs = 5_000): Promise<RawResponse> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(done), 1);
        reject(new Error(`${this.nodeId}: no response within ${timeoutMs} ms`));
      }, timeoutMs);
      const done = (r: RawResponse) => {
        clearTimeout(t);
        resolve(r);
      };
      this.waiters.push(done);
    });
  }

  /** Resolves when nothing arrives for `ms`; rejects with what arrived otherwise. */
  async none(ms = 300): Promise<void> {
    await new Promise((r) => setTimeout(r, ms));
    const got = this.queue.splice(0);
    if (got.length > 0) throw new Error(`expected no response, got ${got.map((r) => `${short(r.type_url)}#${r.nonce}`).join(', ')}`);
  }

  /** Responses received but not yet taken with next(). */
  pending(): RawResponse[] {
    return this.queue.splice(0);
  }

  close(): void {
    this.call.cancel();
    this.client.close();
  }
}

export function short(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
}

/** Decodes the resources of a response into plain objects (snake_case, enums as names). */
export function decodeResources(r: RawResponse): Record<string, unknown>[] {
  return r.resources.map((res) => {
    const type = findEnvoyType(res.type_url.slice(res.type_url.indexOf('/') + 1))!;
    return type.toObject(type.decode(res.value), { longs: String, enums: String, defaults: false }) as Record<string, unknown>;
  });
}

export function resourceNames(r: RawResponse): string[] {
  return decodeResources(r).map((x) => String(x.name ?? x.cluster_name)).sort();
}
