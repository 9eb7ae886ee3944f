// Builds the etcd3 client the way meshlet needs it: keepalive so a stalled etcd is noticed, a deadline on every
// unary call, no circuit breaker (the default one fails every call for 5 s after a single error on one host), and,
// with several endpoints, a health-aware gate per member so calls and streams move off a dead or frozen member.
import { readFileSync } from 'node:fs';
import { Etcd3, isRecoverableError, type IOptions } from 'etcd3';
import { ExponentialBackoff, handleWhen, noop, retry } from 'cockatiel';
import { ValidationError } from '../../core/errors.js';
import { callOptions } from './etcd-call.js';
import { isUnsent, MemberHealth, type MemberEvents } from './member-health.js';

export interface EtcdConnection {
  endpoints: string[];
  prefix: string;
  ca?: string;
  cert?: string;
  key?: string;
  user?: string;
  password?: string;
  /** Retries for one call (the CLI); the agent passes 0 and runs its own backoff loop. */
  retries?: number;
  dialTimeoutMs?: number;
  /** Told when a member is found down or back (several endpoints only). */
  members?: Partial<MemberEvents>;
}

/** The etcd3 client, plus the health of its members when it has several; close() stops their probes too. */
export class MeshletEtcd extends Etcd3 {
  health: MemberHealth | undefined;

  override close(): void {
    this.health?.close();
    super.close();
  }
}

/** etcd reads keepalive pings more often than --grpc-keepalive-min-time (5 s) as abuse: stay at 10 s. */
export const KEEPALIVE = { 'grpc.keepalive_time_ms': 10_000, 'grpc.keepalive_timeout_ms': 5_000, 'grpc.keepalive_permit_without_calls': 1 };

export function createEtcd(conn: EtcdConnection): MeshletEtcd {
  const opts: IOptions = {
    hosts: conn.endpoints,
    dialTimeout: conn.dialTimeoutMs ?? 3_000,
    grpcOptions: KEEPALIVE,
    // A safety net under the agent's named deadlines (etcd-call.ts), e.g. for the token exchange of --etcd-user.
    // Streams (watches, lease keepalive) have none: the keepalive above finds a frozen etcd within 15 s (with
    // several endpoints the member gate cancels the streams on a member its probes find frozen within 2–3 s).
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : callOptions()),
    faultHandling: {
      host: () => noop,
      global: (conn.retries ?? 2) > 0 ? retry(handleWhen(isRecoverableError), { maxAttempts: conn.retries ?? 2, backoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1_000 }) }) : noop,
      // etcd3 1.1 types this as an IBackoff but calls .next() on it first, as on a cockatiel 3 factory (its own default).
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 2_000 }) as unknown as NonNullable<NonNullable<IOptions['faultHandling']>['watchBackoff']>,
    },
  };
  if (conn.ca || conn.cert || conn.key) {
    const read = (what: string, path?: string) => {
      if (!path) return undefined;
      try {
        return readFileSync(path);
      } catch (err) {
        throw new ValidationError([{ doc: { source: `--etcd-${what}`, index: 0, whole: true }, path: '', message: `cannot read ${path}: ${(err as NodeJS.ErrnoException).code}` }]);
      }
    };
    opts.credentials = { rootCertificate: read('ca', conn.ca)!, privateKey: read('key', conn.key), certChain: read('cert', conn.cert) };
  }
  if (conn.user) opts.auth = { username: conn.user, password: conn.password ?? '' };
  if (conn.endpoints.length < 2) return new MeshletEtcd(opts);
  const health = new MemberHealth(conn.endpoints, { ...opts }, conn.members);
  opts.faultHandling!.host = (host) => health.gate(host);
  // The agent retries on its own (retries 0), but a call that never left (no connection to the member it was sent
  // to) is safe to send to another member at once: etcd3 would otherwise fail it. Anything that may have reached
  // a member is not resent: a transaction applied twice fails its compare the second time.
  if ((conn.retries ?? 2) === 0) opts.faultHandling!.global = retry(handleWhen(isUnsent), { maxAttempts: conn.endpoints.length - 1 });
  const client = new MeshletEtcd(opts);
  client.health = health;
  return client;
}
