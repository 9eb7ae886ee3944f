// Every unary etcd call the agent makes ends within a deadline, and one that does not names what it was for.
// A frozen etcd (SIGSTOP, a stalled disk) keeps its TCP connection open and answers nothing: without a deadline
// gRPC waits until its keepalive gives up on the connection (15 s here), and the pass, the registry's retry or
// the lease's grant waits with it; on a connection opened to the frozen etcd meanwhile, it waits for good.
import { GRPCDeadlineExceededError } from 'etcd3';
import { ExternalError } from '../../core/errors.js';

/** The deadline of one unary etcd call: a read, a put, a transaction, a lease grant, look-up or revoke. */
export const ETCD_CALL_DEADLINE_MS = 5_000;

/** gRPC call options for one call: its deadline, counted from now (a retry on another member shares it). */
export function callOptions(ms = ETCD_CALL_DEADLINE_MS): { deadline: Date } {
  return { deadline: new Date(Date.now() + ms) };
}

/** An etcd call that was not answered within its deadline; recoverable: the caller's retry tries again. */
export class EtcdDeadlineError extends ExternalError {
  constructor(what: string, ms: number, cause?: unknown) {
    super(`${what}: etcd did not answer within ${ms} ms`, cause);
  }
}

/** Runs one etcd call with a deadline; past it the call fails with `<what>: etcd did not answer within <ms> ms`. */
export async function etcdCall<T>(what: string, call: (options: { deadline: Date }) => Promise<T>, ms = ETCD_CALL_DEADLINE_MS): Promise<T> {
  try {
    return await call(callOptions(ms));
  } catch (err) {
    if (err instanceof GRPCDeadlineExceededError) throw new EtcdDeadlineError(what, ms, err);
    throw err;
  }
}
