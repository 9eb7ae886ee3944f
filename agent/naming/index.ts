// `meshlet/naming`: lets a Node gRPC client dial `etcd:///<prefix>/naming/<service>` (mode: naming).
//   import { registerEtcdResolver } from 'meshlet/naming';
//   registerEtcdResolver({ endpoints: ['http://10.0.0.2:2379'] });
//   new grpc.Client(process.env.RATINGS_ADDR!, creds, { 'grpc.service_config': '{"loadBalancingConfig":[{"round_robin":{}}]}' });
import * as grpc from '@grpc/grpc-js';
import type { Etcd3 } from 'etcd3';
import type { Logger } from '../core/logger.js';
import { createEtcd } from '../adapters/etcd/etcd-client.js';
import { etcdResolverClass, type ResolverContext, type ResolverHooks, type ResolverStats } from './etcd-resolver.js';

export { endpointsOf, parseNamingValue, targetKeyPrefix, type ResolverHooks, type ResolverStats } from './etcd-resolver.js';

export interface EtcdResolverOptions {
  /** etcd client URLs, e.g. ['http://10.0.0.2:2379']. */
  endpoints: string[];
  /** TLS files and credentials for etcd, as the meshlet CLI takes them. */
  ca?: string;
  cert?: string;
  key?: string;
  user?: string;
  password?: string;
  dialTimeoutMs?: number;
  /** An etcd client to use instead of one made from the options above (it is not closed by close()). */
  etcd?: Etcd3;
  /** The URI scheme to register (default "etcd"). */
  scheme?: string;
  /** Default: gRPC's own logging (GRPC_VERBOSITY / GRPC_TRACE). */
  log?: Logger;
  hooks?: ResolverHooks;
  /**
   * The app's own @grpc/grpc-js module. Resolvers are registered per copy of grpc-js: an app whose
   * node_modules holds another copy than meshlet's must pass its own, or its channels never see this one.
   */
  grpc?: { experimental: Pick<typeof grpc.experimental, 'registerResolver'> };
}

export interface EtcdResolverHandle {
  readonly stats: ResolverStats;
  /** Stops every watch and closes the etcd client made here. Channels still open stop getting updates. */
  close(): void;
}

/** Registers the resolver for `etcd:` targets (grpc-js keeps one resolver per scheme: the last call wins). */
export function registerEtcdResolver(opts: EtcdResolverOptions): EtcdResolverHandle {
  let client = opts.etcd;
  const own = !opts.etcd;
  const ctx: ResolverContext = {
    etcd: () => (client ??= createEtcd({ endpoints: opts.endpoints, prefix: '', retries: 0, ca: opts.ca, cert: opts.cert, key: opts.key, user: opts.user, password: opts.password, dialTimeoutMs: opts.dialTimeoutMs })),
    log: opts.log ?? grpcLogger,
    stats: { snapshots: 0, events: 0, resyncs: 0, errors: 0 },
    hooks: opts.hooks ?? {},
    active: new Set(),
  };
  (opts.grpc ?? grpc).experimental.registerResolver(opts.scheme ?? 'etcd', etcdResolverClass(ctx));
  return {
    stats: ctx.stats,
    close() {
      for (const r of [...ctx.active]) r.destroy();
      if (own) client?.close();
      client = undefined;
    },
  };
}

const grpcLogger: Logger = {
  debug: (msg, f) => grpc.experimental.log(grpc.logVerbosity.DEBUG, line(msg, f)),
  info: (msg, f) => grpc.experimental.log(grpc.logVerbosity.DEBUG, line(msg, f)),
  warn: (msg, f) => grpc.experimental.log(grpc.logVerbosity.INFO, line(msg, f)),
  error: (msg, f) => grpc.experimental.log(grpc.logVerbosity.ERROR, line(msg, f)),
};

function line(msg: string, fields?: Record<string, unknown>): string {
  return fields && Object.keys(fields).length > 0 ? `${msg} ${JSON.stringify(fields)}` : msg;
}
