// Health-aware choice of etcd member for a client with several endpoints: calls and streams skip a member that
// refused, timed out or stopped answering probes, as long as some member is not known to be down; a probe that
// answers lets it back in.
//
// Why etcd3 1.1.2 needs this: its pool (connection-pool.js) picks a random host per call and runs the call through
// that host's policy; a call that reaches the host and fails is NOT tried on another host (only a policy that
// refuses without calling makes it move on). Its default host policy is a breaker that opens after 3 failures in a
// row and then fails every call to that host for 5 s, all calls when it is the only one, so meshlet ran without one:
// after a member died a third of the calls still went to it (ECONNREFUSED), a frozen member (SIGSTOP) held a third
// of them for their whole deadline, and any watch or keepalive stream on it for 15 s (the gRPC keepalive).
import { Etcd3, GRPCDeadlineExceededError, GRPCUnavailableError, RecoverableError, type IOptions } from 'etcd3';
import { noop, type IDefaultPolicyContext, type IPolicy } from 'cockatiel';

/** Probe every member this often; a member is down after PROBE_FAILURES probes in a row go unanswered (~2–3 s). */
export const PROBE_INTERVAL_MS = 1_000;
export const PROBE_DEADLINE_MS = 1_000;
export const PROBE_FAILURES = 2;

/** Thrown by a member's gate instead of calling it: etcd3's pool then tries the next member. Recoverable: retried. */
export class MemberDownError extends Error {
  readonly [RecoverableError] = true;
  constructor(readonly host: string, readonly reason: string) {
    super(`etcd member ${host} is down (${reason})`);
  }
}

/** A call that never left this client: gRPC had no connection to the member, so another member may take it. */
export function isUnsent(err: unknown): boolean {
  // grpc-js's picker fails a call with UNAVAILABLE "No connection established" when the member's channel is in
  // TRANSIENT_FAILURE (its connect was refused or failed): the call was never written to any connection.
  return err instanceof MemberDownError || (err instanceof GRPCUnavailableError && err.message.includes('No connection established'));
}

/** A failure that says the member (or the way to it) is gone, not that it answered with an error. */
function isMemberFailure(err: unknown): boolean {
  return err instanceof GRPCUnavailableError || err instanceof GRPCDeadlineExceededError;
}

type Stream = { cancel(): void; once(event: string, fn: () => void): unknown };
const isStream = (v: unknown): v is Stream => typeof (v as Stream | null)?.cancel === 'function' && typeof (v as Stream).once === 'function';

interface Member {
  host: string;
  down: string | undefined;
  failedProbes: number;
  probing: boolean;
  /** Watch and keepalive streams opened on this member: cancelled when it goes down, so they reopen elsewhere. */
  streams: Set<Stream>;
  probe: Etcd3;
}

export interface MemberEvents {
  down(host: string, reason: string): void;
  up(host: string): void;
}

/** The members of one client, their health, and a gate (etcd3 host policy) for each. */
export class MemberHealth {
  readonly #members = new Map<string, Member>();
  readonly #timer: NodeJS.Timeout;
  #closed = false;

  /** `probeOptions`: the client's own options (TLS, auth, keepalive) for the one-member probe clients. */
  constructor(hosts: string[], probeOptions: Omit<IOptions, 'hosts'>, private readonly events: Partial<MemberEvents> = {}) {
    for (const host of hosts) {
      const probe = new Etcd3({ ...probeOptions, hosts: host, faultHandling: { host: () => noop, global: noop } });
      this.#members.set(host, { host, down: undefined, failedProbes: 0, probing: false, streams: new Set(), probe });
    }
    this.#timer = setInterval(() => this.#probeAll(), PROBE_INTERVAL_MS);
    this.#timer.unref();
  }

  /** The etcd3 host policy of `host`: refuses while it is down and another member is not; records what fails. */
  gate(host: string): IPolicy<IDefaultPolicyContext> {
    const m = this.#members.get(host);
    if (!m) throw new Error(`no etcd member ${host}`);
    const execute = async <T>(fn: (ctx: IDefaultPolicyContext) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> => {
      if (m.down && this.#anyUp()) throw new MemberDownError(host, m.down);
      try {
        const v = await fn({ signal: signal ?? new AbortController().signal });
        if (isStream(v)) this.#track(m, v);
        return v;
      } catch (err) {
        if (isMemberFailure(err)) this.#markDown(m, (err as Error).message);
        throw err;
      }
    };
    return { execute, onSuccess: noop.onSuccess, onFailure: noop.onFailure } as unknown as IPolicy<IDefaultPolicyContext>;
  }

  /** Hosts known to be down now, with why. */
  down(): Record<string, string> {
    return Object.fromEntries([...this.#members.values()].filter((m) => m.down).map((m) => [m.host, m.down!]));
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    for (const m of this.#members.values()) m.probe.close();
  }

  #anyUp(): boolean {
    for (const m of this.#members.values()) if (!m.down) return true;
    return false;
  }

  #track(m: Member, s: Stream): void {
    m.streams.add(s);
    const forget = () => m.streams.delete(s);
    s.once('close', forget);
    s.once('end', forget);
    s.once('error', forget);
  }

  #markDown(m: Member, reason: string): void {
    if (m.down) return;
    m.down = reason;
    this.events.down?.(m.host, reason);
    // A stream on a frozen member would wait for the gRPC keepalive (15 s); cancelled, its owner (etcd3's watch
    // manager, the node lease) opens it again, and the gate sends it to another member.
    if (this.#anyUp()) for (const s of [...m.streams]) s.cancel();
  }

  #markUp(m: Member): void {
    m.failedProbes = 0;
    if (!m.down) return;
    m.down = undefined;
    this.events.up?.(m.host);
  }

  #probeAll(): void {
    for (const m of this.#members.values()) if (!m.probing && !this.#closed) void this.#probe(m);
  }

  /** A probe that goes unanswered is repeated at once, not a period later: two in a row and the member is down. */
  async #probe(m: Member): Promise<void> {
    m.probing = true;
    try {
      for (;;) {
        try {
          // Status is answered by the member itself (no raft round): it tells that this member is there, not the quorum.
          await m.probe.maintenance.status({ deadline: new Date(Date.now() + PROBE_DEADLINE_MS) });
          this.#markUp(m);
          return;
        } catch (err) {
          if (this.#closed) return;
          if (++m.failedProbes >= PROBE_FAILURES) return this.#markDown(m, `no answer to ${m.failedProbes} probes: ${(err as Error).message}`);
        }
      }
    } finally {
      m.probing = false;
    }
  }
}
