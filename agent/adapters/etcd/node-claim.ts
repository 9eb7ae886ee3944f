// One agent per node: `<p>/nodes/<node>/agent` is held under the agent's lease and only ever changed by a
// compare-and-swap, so two agents never both believe they hold it. A claim left by this node's own previous
// run (same node, host and state dir, its process gone) is taken over; one held by any other agent is not:
// at start that is a refusal, later (another agent claimed the node while this one was cut off) the node is lost.
import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import { ConflictError, ExternalError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { processAlive } from '../host/processes.js';
import { etcdCall } from './etcd-call.js';

/** The claim's value. Fields are only ever added (older agents read it). */
export interface ClaimValue {
  node: string;
  host: string;
  pid: number;
  lease: string;
  /** The agent's state dir (absolute): with node and host, what makes a claim this node's own previous run's. */
  stateDir?: string;
  /** When the process started (host/processes.ts), so a reused pid is not taken for the agent. */
  started?: string;
}

export type Whose =
  | { kind: 'mine' }
  | { kind: 'predecessor'; held: ClaimValue }
  | { kind: 'other'; who: string };

export type ClaimState = 'unclaimed' | 'held' | 'lost';

type Alive = (pid: number, started?: string) => boolean;

interface Held {
  lease: string;
  value: string;
  modRevision: string;
}

// Rounds of read-then-swap before giving up; each lost round means the key changed in between.
const SWAP_ATTEMPTS = 5;

/**
 * Pure: whose claim `held` is, seen by `me` (`me.lease` is the lease this agent holds or '' before it has one).
 * A value that is not a claim, or names a live process, another host or another state dir, is another agent's.
 */
export function whoseClaim(held: { lease: string; value: string }, me: ClaimValue, alive: Alive): Whose {
  if (me.lease && String(held.lease) === me.lease) return { kind: 'mine' };
  const v = parseClaim(held.value);
  if (!v) return { kind: 'other', who: held.value };
  // This very process, under a lease it held before (the lease was re-granted meanwhile). The state dir too:
  // tests run two agents in one process.
  if (v.host === me.host && v.pid === me.pid && v.started !== undefined && v.started === me.started && v.stateDir === me.stateDir) return { kind: 'mine' };
  if (v.node === me.node && v.host === me.host && v.stateDir !== undefined && v.stateDir === me.stateDir && !alive(v.pid, v.started)) return { kind: 'predecessor', held: v };
  return { kind: 'other', who: describeClaim(v) };
}

export function describeClaim(v: ClaimValue): string {
  return `pid ${v.pid} on host ${v.host}, lease ${v.lease}${v.stateDir ? `, state dir ${v.stateDir}` : ''}`;
}

function parseClaim(text: string): ClaimValue | undefined {
  try {
    const v = JSON.parse(text) as Partial<ClaimValue>;
    if (typeof v?.node !== 'string' || typeof v.host !== 'string' || typeof v.pid !== 'number' || typeof v.lease !== 'string') return undefined;
    if (v.stateDir !== undefined && typeof v.stateDir !== 'string') return undefined;
    if (v.started !== undefined && typeof v.started !== 'string') return undefined;
    return v as ClaimValue;
  } catch {
    return undefined;
  }
}

export interface NodeClaimEvents {
  /** Another agent holds the node now; `who` names it. Emitted once. */
  lost: [who: string];
}

export class NodeClaim extends EventEmitter<NodeClaimEvents> {
  #state: ClaimState = 'unclaimed';
  #heldBy = '';

  /** `me`: this agent as its claim names it, without the lease. */
  constructor(private readonly etcd: Etcd3, readonly key: string, private readonly me: Omit<ClaimValue, 'lease'>, private readonly log: Logger, private readonly alive: Alive = processAlive) {
    super();
  }

  get state(): ClaimState {
    return this.#state;
  }

  /** Who holds the node, once it is lost. */
  get heldBy(): string {
    return this.#heldBy;
  }

  /** Before a lease is chosen: the lease of this node's previous run if it still holds the claim (its lease can be adopted). */
  async predecessorLease(): Promise<string | undefined> {
    const kv = (await etcdCall('reading the node claim', (o) => this.etcd.get(this.key).options(o).exec())).kvs[0];
    if (!kv) return undefined;
    const whose = whoseClaim({ lease: kv.lease, value: kv.value.toString() }, this.#value(''), this.alive);
    return whose.kind === 'predecessor' && String(kv.lease) !== '0' ? String(kv.lease) : undefined;
  }

  /** At start: claims the node for `lease`, taking over this node's previous run's claim; another agent's is a ConflictError. */
  async take(lease: string): Promise<void> {
    const whose = await this.#claim(lease);
    if (whose.kind === 'other') {
      throw new ConflictError(`node ${this.me.node} is already run by another agent (${whose.who}); stop it first, or wait for its lease to expire if it died`);
    }
    this.#state = 'held';
  }

  /**
   * While running (periodically, and under a re-granted lease): the claim is put again only where it is absent or
   * still this agent's. Held by another agent, it is left alone and the node is lost for good (emits 'lost').
   */
  async renew(lease: string): Promise<ClaimState> {
    if (this.#state === 'lost') return 'lost';
    // The common case in one round trip: still under this lease, nothing to write.
    if ((await etcdCall('checking the node claim', (o) => this.etcd.if(this.key, 'Lease', '==', lease).options(o).commit())).succeeded) return (this.#state = 'held');
    const whose = await this.#claim(lease);
    if (whose.kind !== 'other') return (this.#state = 'held');
    this.#state = 'lost';
    this.#heldBy = whose.who;
    this.emit('lost', whose.who);
    return 'lost';
  }

  /** Deletes the claim if it is still held under `lease` (never another agent's). */
  async release(lease: string): Promise<void> {
    await etcdCall('releasing the node claim', (o) => this.etcd.if(this.key, 'Lease', '==', lease).then(this.etcd.delete().key(this.key)).options(o).commit());
  }

  /** Creates the claim, or swaps it in for one that is this agent's or its dead predecessor's; never writes over another's. */
  async #claim(lease: string): Promise<Whose> {
    const value = JSON.stringify(this.#value(lease));
    for (let attempt = 1; attempt <= SWAP_ATTEMPTS; attempt++) {
      const res = await etcdCall('claiming the node', (o) => this.etcd.if(this.key, 'Create', '==', 0).then(this.etcd.put(this.key).value(value).lease(lease)).else(this.etcd.get(this.key)).options(o).commit());
      if (res.succeeded) return { kind: 'mine' };
      const kv = res.responses[0]?.response_range?.kvs[0];
      if (!kv) continue;
      const held: Held = { lease: String(kv.lease), value: kv.value.toString(), modRevision: String(kv.mod_revision) };
      const whose = whoseClaim(held, this.#value(lease), this.alive);
      if (whose.kind === 'other') return whose;
      // Only the value just judged is replaced: if anyone wrote the key since, judge again.
      const swap = await etcdCall('taking over the node claim', (o) => this.etcd.if(this.key, 'Mod', '==', held.modRevision).then(this.etcd.put(this.key).value(value).lease(lease)).options(o).commit());
      if (!swap.succeeded) continue;
      if (whose.kind === 'predecessor') this.log.info('took over the node claim of this node\'s previous run', { previous: describeClaim(whose.held), lease });
      return whose;
    }
    throw new ExternalError(`the node claim ${this.key} kept changing while it was being taken (${SWAP_ATTEMPTS} tries)`);
  }

  #value(lease: string): ClaimValue {
    return { ...this.me, lease };
  }
}
