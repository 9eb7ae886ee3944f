// Loads Envoy's own .proto files (shipped by @grpc/grpc-js-xds) into one cached protobufjs Root.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { isAbsolute, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type protobuf from 'protobufjs';
import { envoyIncludeDirs } from './include-dirs.js';

const require = createRequire(import.meta.url);

/** The protobufjs module, required on first use so importing this file stays cheap (~50 ms saved). */
export function protobufjs(): typeof protobuf {
  return (pbjs ??= require('protobufjs') as typeof protobuf);
}
let pbjs: typeof protobuf | undefined;

/** Entry files loaded (their imports follow transitively); relative to the deps search path. */
export const ENVOY_PROTO_FILES: readonly string[] = [
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/health_check/v3/health_check.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto',
  'envoy/extensions/retry/priority/previous_priorities/v3/previous_priorities_config.proto',
  'envoy/extensions/filters/http/cors/v3/cors.proto',
  'envoy/extensions/access_loggers/stream/v3/stream.proto',
  'envoy/extensions/access_loggers/file/v3/file.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto',
  // Types the base bootstrap template uses (templates/envoy-bootstrap.yaml).
  'envoy/extensions/resource_monitors/downstream_connections/v3/downstream_connections.proto',
  'envoy/service/discovery/v3/discovery.proto',
];

/** The loaded Root plus what happened while loading it. */
export interface EnvoyProtos {
  root: protobuf.Root;
  /** Wall time of the first (and only) load, in milliseconds. */
  loadMs: number;
  /** Entry files that loaded. */
  loaded: string[];
  /** Entry files (or the final resolve step) that failed, with the reason. */
  failed: { file: string; error: string }[];
  /** Imports that could not be found in any deps folder (their types stay unresolved). */
  missingImports: string[];
}

let cached: EnvoyProtos | undefined;


// descriptor.proto is not in the deps folders; protobufjs ships it as JSON.
function registerDescriptor(): void {
  protobufjs().common('google/protobuf/descriptor.proto', require('protobufjs/google/protobuf/descriptor.json'));
}

/** Loads (once) and returns Envoy's protos; later calls return the cached result. */
export function loadEnvoyProtos(): EnvoyProtos {
  if (cached) return cached;
  const t0 = performance.now();
  registerDescriptor();
  const dirs = envoyIncludeDirs();
  const missingImports: string[] = [];
  const root = new (protobufjs().Root)();
  root.resolvePath = (_origin: string, target: string): string | null => {
    if (isAbsolute(target)) return target;
    for (const dir of dirs) {
      const candidate = join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    if (!missingImports.includes(target)) missingImports.push(target);
    return null; // protobufjs skips the import; types from it stay unresolved
  };
  const loaded: string[] = [];
  const failed: { file: string; error: string }[] = [];
  for (const file of ENVOY_PROTO_FILES) {
    try {
      root.loadSync(file, { keepCase: true });
      loaded.push(file);
    } catch (err) {
      failed.push({ file, error: (err as Error).message });
    }
  }
  try {
    root.resolveAll();
  } catch (err) {
    // Unresolvable references (from missing imports) are reported per field by the validator.
    failed.push({ file: '(resolveAll)', error: (err as Error).message });
  }
  cached = { root, loadMs: performance.now() - t0, loaded, failed, missingImports };
  return cached;
}

/** The shared Root with all of ENVOY_PROTO_FILES loaded. */
export function envoyRoot(): protobuf.Root {
  return loadEnvoyProtos().root;
}

/** Looks up a message type by full name ("envoy.config.listener.v3.Listener", leading dot optional). */
export function findEnvoyType(fullName: string): protobuf.Type | null {
  let found = typeCache.get(fullName);
  if (found === undefined) {
    const obj = envoyRoot().lookup(fullName.startsWith('.') ? fullName : `.${fullName}`);
    found = obj instanceof protobufjs().Type ? (obj as protobuf.Type) : null;
    typeCache.set(fullName, found);
  }
  return found;
}

// Root.lookup walks the namespace tree; the validator asks for the same few names again and again.
const typeCache = new Map<string, protobuf.Type | null>();
