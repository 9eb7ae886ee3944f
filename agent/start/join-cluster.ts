// Start step 1: the node's lease (taken back by id after a restart, else granted) and the claim on the node.
import { hostname } from 'node:os';
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import type { Keys } from '../core/model/keys.js';
import { NodeLease } from '../adapters/etcd/etcd-lease.js';
import { NodeClaim } from '../adapters/etcd/node-claim.js';
import { processStart } from '../adapters/host/processes.js';
import { untilReachable, within } from './until-reachable.js';

const RELEASE_DEADLINE_MS = 2_000;

export interface ClusterOptions {
  etcd: Etcd3;
  keys: Keys;
  node: string;
  leaseTtl: number;
  /** The lease id a previous run saved in the state dir. */
  savedLease?: string;
  /** Absolute: named in the claim, so a later run in the same state dir knows the claim for its predecessor's. */
  stateDir: string;
  /** For messages: where etcd was looked for. */
  endpoints: string;
  clock: Clock;
  log: Logger;
  signal: AbortSignal;
}

export interface Cluster {
  lease: NodeLease;
  claim: NodeClaim;
  id: string;
  adopted: boolean;
  /** SIGTERM: stop renewing; the claim, registrations and status stay until the lease expires. */
  stop(): Promise<void>;
  /** A failed start: give the node back. */
  abandon(): Promise<void>;
}

/**
 * Retries until etcd answers; a node claimed by another live agent is a ConflictError, with nothing left taken.
 * The lease taken back is the one state.json names, else (state.json lost or corrupt) the one this node's
 * previous run still holds the claim under: either way its registrations are adopted, not rewritten.
 */
export async function joinCluster(o: ClusterOptions): Promise<Cluster> {
  const lease = new NodeLease(o.etcd, o.leaseTtl, o.clock, o.log);
  const claim = new NodeClaim(o.etcd, o.keys.nodeOwner(o.node), { node: o.node, host: hostname(), pid: process.pid, stateDir: o.stateDir, ...startedField() }, o.log);
  const fromClaim = async () => {
    const id = await claim.predecessorLease();
    if (id && id !== o.savedLease) o.log.info('taking back the lease of this node\'s previous run from its claim', { lease: id, savedLease: o.savedLease ?? null });
    return id;
  };
  let id: string;
  let adopted: boolean;
  try {
    ({ id, adopted } = await untilReachable(`cannot reach etcd at ${o.endpoints}`, () => lease.start(o.savedLease, fromClaim), o.clock, o.log, o.signal));
  } catch (err) {
    // A grant still in flight when the signal came finds the keepalive stopped and ends at once.
    await lease.stop();
    throw err;
  }
  const abandon = async () => {
    const released = await within(RELEASE_DEADLINE_MS, claim.release(id), 'releasing the node claim', o.clock).then(() => undefined, (err: Error) => err);
    // A lease granted here is revoked (its keys go with it); an adopted one still carries the last run's
    // registrations of containers that keep running, so it is left to expire as after SIGTERM.
    if (adopted) await lease.stop();
    else await within(RELEASE_DEADLINE_MS, lease.revoke(), 'revoking the lease', o.clock);
    if (released) throw released;
  };
  try {
    // An etcd that does not answer in time is waited for like at the lease; another agent's claim ends the start.
    await untilReachable(`cannot claim node ${o.node} in etcd at ${o.endpoints}`, () => claim.take(id), o.clock, o.log, o.signal);
  } catch (err) {
    await abandon().catch(() => {});
    throw err;
  }
  return { lease, claim, id, adopted, stop: () => lease.stop(), abandon };
}

function startedField(): { started?: string } {
  const started = processStart(process.pid);
  return started ? { started } : {};
}
