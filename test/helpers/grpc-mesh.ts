// A tiny gRPC mesh for proxyless xDS tests: echo servers that say their version, a desired state naming them, calls in bulk.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Desired, Instance } from '../../agent/core/model/model.js';
import type { XdsResources } from '../../agent/core/xds/build-xds.js';
import { buildProxylessResources } from '../../agent/core/xds/build-xds.js';
import { loadDesired } from '../../agent/core/documents/desired.js';

const PROTO = `syntax = "proto3";
package meshtest;
service Echo { rpc Say (SayRequest) returns (SayReply); }
message SayRequest { string text = 1; }
message SayReply { string version = 1; string server = 2; }
`;

export interface SayReply {
  version: string;
  server: string;
}

type EchoClient = grpc.Client & {
  Say(req: { text: string }, md: grpc.Metadata, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: SayReply) => void): void;
};
type EchoCtor = grpc.ServiceClientConstructor & (new (target: string, creds: grpc.ChannelCredentials, opts?: grpc.ChannelOptions) => EchoClient);

let echo: EchoCtor | undefined;
function echoService(): EchoCtor {
  if (echo) return echo;
  const file = join(mkdtempSync(join(tmpdir(), 'meshlet-echo-')), 'echo.proto');
  writeFileSync(file, PROTO);
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(file, { keepCase: true })) as unknown as { meshtest: { Echo: EchoCtor } };
  echo = pkg.meshtest.Echo;
  return echo;
}

export interface EchoServer {
  id: string;
  version: string;
  port: number;
  calls: number;
  stop(): void;
}

/** A gRPC server on 127.0.0.1 answering every call with its version and id. */
export async function startEcho(id: string, version: string): Promise<EchoServer> {
  const server = new grpc.Server();
  const self: EchoServer = { id, version, port: 0, calls: 0, stop: () => server.forceShutdown() };
  server.addService(echoService().service, {
    Say: (_call: unknown, cb: (err: null, res: SayReply) => void) => {
      self.calls++;
      cb(null, { version, server: id });
    },
  });
  self.port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return self;
}

export function echoClient(target: string, options: grpc.ChannelOptions = {}): EchoClient {
  return new (echoService())(target, grpc.credentials.createInsecure(), options) as unknown as EchoClient;
}

export type CallResult = { ok: true; reply: SayReply } | { ok: false; code: number; details: string };

export function callOnce(client: EchoClient, headers: Record<string, string> = {}, timeoutMs = 5_000): Promise<CallResult> {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(headers)) md.set(k, v);
  return new Promise((resolve) => {
    client.Say({ text: 'hi' }, md, { deadline: Date.now() + timeoutMs }, (err, res) => resolve(err ? { ok: false, code: err.code, details: err.details } : { ok: true, reply: res! }));
  });
}

export interface Tally {
  total: number;
  byVersion: Record<string, number>;
  byServer: Record<string, number>;
  errors: Record<number, number>;
}

/** `n` calls, `concurrency` at a time. */
export async function callMany(client: EchoClient, n: number, opts: { concurrency?: number; headers?: Record<string, string> } = {}): Promise<Tally> {
  const tally: Tally = { total: 0, byVersion: {}, byServer: {}, errors: {} };
  let started = 0;
  const worker = async () => {
    while (started < n) {
      started++;
      const r = await callOnce(client, opts.headers);
      tally.total++;
      if (r.ok) {
        tally.byVersion[r.reply.version] = (tally.byVersion[r.reply.version] ?? 0) + 1;
        tally.byServer[r.reply.server] = (tally.byServer[r.reply.server] ?? 0) + 1;
      } else tally.errors[r.code] = (tally.errors[r.code] ?? 0) + 1;
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency ?? 20 }, worker));
  return tally;
}

export interface RouteSpec {
  weights: Record<string, number>;
  /** Calls with `end-user: jason` go to this version. */
  jason?: string;
  /** Percent of calls on the default route aborted with ABORTED. */
  abortPercent?: number;
}

/** greeter (v1, v2) and a client service dialing it over xds, with one VirtualService. */
export function greeterMesh(route: RouteSpec): Desired {
  const http: string[] = [];
  if (route.jason) http.push(`    - match: [{ headers: { end-user: { exact: jason } } }]\n      route: [{ destination: { host: greeter, subset: ${route.jason} } }]`);
  const dests = Object.entries(route.weights).map(([v, w]) => `        - { destination: { host: greeter, subset: ${v} }, weight: ${w} }`);
  const fault = route.abortPercent !== undefined ? `\n      fault: { abort: { grpcStatus: ABORTED, percentage: { value: ${route.abortPercent} } } }` : '';
  http.push(`    - route:\n${dests.join('\n')}${fault}`);
  const yaml = `apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: greeter }
spec:
  protocol: grpc
  port: 50051
  versions:
    v1: { image: greeter:1, nodes: [n1] }
    v2: { image: greeter:2, port: 50052, nodes: [n1] }
---
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: client }
spec:
  protocol: grpc
  port: 50060
  versions:
    v1: { image: client:1, nodes: [n1] }
  upstreams:
    - { service: greeter, mode: xds }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: greeter }
spec:
  hosts: [greeter]
  http:
${http.join('\n')}
`;
  const { desired, issues } = loadDesired([{ source: 'greeter.yaml', text: yaml }], { xdsPort: 15010 });
  if (issues.length > 0) throw new Error(`greeterMesh: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`);
  return desired;
}

export function instancesOf(servers: EchoServer[]): Instance[] {
  return servers.map((s) => ({ service: 'greeter', version: s.version, node: 'n1', address: '127.0.0.1', port: s.port }));
}

export function greeterResources(route: RouteSpec, servers: EchoServer[]): XdsResources {
  return buildProxylessResources(['greeter'], greeterMesh(route), instancesOf(servers), []);
}

/** The bootstrap a proxyless app gets (inline, for GRPC_XDS_BOOTSTRAP_CONFIG). */
export function xdsBootstrap(port: number, nodeId: string): string {
  return JSON.stringify({ xds_servers: [{ server_uri: `127.0.0.1:${port}`, channel_creds: [{ type: 'insecure' }], server_features: [] }], node: { id: nodeId, locality: {} } });
}
