// Start step 8: the node claim, held for as long as the agent runs. It is checked by compare-and-swap every
// `checkEveryMs`, and put again under a re-granted lease before anything else is (status, registrations).
// When another agent holds it (it claimed the node while this one was cut off for longer than the TTL), this
// agent stands down: it applies nothing and writes nothing more to etcd for the node, says so once, and never
// takes the claim back. Without this both agents ran compose for the node and overwrote each other's keys.
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import { backoffMs } from '../core/clock.js';
import type { LeaseState } from '../adapters/etcd/etcd-lease.js';
import type { ClaimState, NodeClaim } from '../adapters/etcd/node-claim.js';
import { within } from './until-reachable.js';

// An etcd that accepts the call and never answers must not stall the check for good.
const CALL_DEADLINE_MS = 5_000;

export interface HoldOptions {
  node: string;
  lease: { readonly id: string; readonly state: LeaseState; on(event: 'regranted', f: (id: string) => void): unknown; off(event: 'regranted', f: (id: string) => void): unknown };
  claim: Pick<NodeClaim, 'renew' | 'heldBy'>;
  /** Puts the lease id into state.json, so a restart takes back the lease that holds the keys. */
  remember(lease: string): void;
  reconciler: { standDown(reason: string): void; triggers: { notify(reason: string): void } };
  registry: { rebind(lease: string): Promise<unknown>; stop(): void };
  status: { rebind(lease: string): Promise<unknown>; standDown(lease: string, note: Record<string, unknown>): Promise<boolean> };
  checkEveryMs: number;
  clock: Clock;
  log: Logger;
}

export function holdClaim(o: HoldOptions): { stop(): void } {
  const abort = new AbortController();
  let standing = false;

  const standDown = (lease: string) => {
    if (standing) return;
    standing = true;
    const who = o.claim.heldBy;
    o.log.error(`node ${o.node} is now run by another agent (${who}); this agent stops applying compose and writing registrations and status for it, and leaves its containers as they are: stop this agent`, { node: o.node, heldBy: who });
    o.reconciler.standDown(`node ${o.node} is run by another agent (${who})`);
    o.registry.stop();
    void o.status.standDown(lease, { claimLost: { heldBy: who, at: new Date(o.clock.now()).toISOString() } });
  };

  const renew = (lease: string): Promise<ClaimState> => within(CALL_DEADLINE_MS, o.claim.renew(lease), 'checking the node claim', o.clock);

  /** Under a re-granted lease: the claim first, retried until etcd answers (or a newer lease takes over), then the rest. */
  const onRegranted = async (lease: string) => {
    for (let attempt = 1; !abort.signal.aborted && !standing && lease === o.lease.id; attempt++) {
      let state: ClaimState;
      try {
        state = await renew(lease);
      } catch (err) {
        if (attempt === 1) o.log.warn('cannot put the node claim under the new lease; retrying', { lease, error: (err as Error).message });
        await o.clock.sleep(backoffMs(attempt, 5_000), abort.signal);
        continue;
      }
      // Lost: state.json keeps naming the old lease, so a state dir shared with the other agent stays its own.
      if (state === 'lost') return standDown(lease);
      o.remember(lease);
      void o.status.rebind(lease);
      void o.registry.rebind(lease);
      o.reconciler.triggers.notify('lease re-granted');
      return;
    }
  };
  const regranted = (lease: string) => void onRegranted(lease);

  /** Someone else's claim can also appear without this agent's lease ever lapsing (put by hand): look every period. */
  const periodically = async () => {
    while (!abort.signal.aborted && !standing) {
      await o.clock.sleep(o.checkEveryMs, abort.signal);
      if (abort.signal.aborted || standing || o.lease.state !== 'alive') continue; // a lost lease: the re-grant checks
      const lease = o.lease.id;
      try {
        if ((await renew(lease)) === 'lost') standDown(lease);
      } catch (err) {
        o.log.debug('cannot check the node claim; the next check tries again', { error: (err as Error).message });
      }
    }
  };

  o.lease.on('regranted', regranted);
  void periodically();
  return {
    stop: () => {
      abort.abort();
      o.lease.off('regranted', regranted);
    },
  };
}
