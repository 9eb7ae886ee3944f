// The agent's one lease: granted or taken back by id, kept alive, and re-granted when lost.
// etcd3's own Lease cannot adopt an existing id and reports loss late (2×TTL), so this talks to the Lease RPCs directly.
import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import { backoffMs } from '../../core/clock.js';
import { ETCD_CALL_DEADLINE_MS, etcdCall } from './etcd-call.js';

export type LeaseState = 'granting' | 'alive' | 'lost' | 'stopped';

/** A lease id to take back, or a function that looks one up. */
export type LeaseCandidate = string | undefined | (() => Promise<string | undefined>);

type KeepAliveStream = Awaited<ReturnType<Etcd3['leaseClient']['leaseKeepAlive']>>;

export interface NodeLeaseEvents {
  /** A new lease replaced a lost one: owners must put their keys again under `id`. */
  regranted: [id: string];
  state: [state: LeaseState];
}

export class NodeLease extends EventEmitter<NodeLeaseEvents> {
  #state: LeaseState = 'granting';
  #id: string | undefined;
  #stream: KeepAliveStream | undefined;
  #lastAlive = 0;
  #abort = new AbortController();
  #loop: Promise<void> | undefined;

  constructor(private readonly etcd: Etcd3, readonly ttlSeconds: number, private readonly clock: Clock, private readonly log: Logger) {
    super();
  }

  get state(): LeaseState {
    return this.#state;
  }

  get id(): string {
    if (!this.#id) throw new Error('lease not granted yet');
    return this.#id;
  }

  /**
   * Takes back the first of `candidates` (an id, or a function that finds one) that etcd still holds, else grants
   * a new lease; then keeps it alive. Returns whether it was adopted. Each candidate is asked with a keepalive, not
   * leaseTimeToLive: that one reports whole seconds, so a lease with under a second left read as 0 and was dropped
   * while its keys (the node claim) lived on; a keepalive renews a lease that lives, and answers TTL 0 only once
   * etcd has revoked it (an expired lease not yet revoked is waited for).
   */
  async start(...candidates: LeaseCandidate[]): Promise<{ id: string; adopted: boolean }> {
    let adopted = false;
    for (const candidate of candidates) {
      // Asked only when the ones before it are gone: each costs a round trip while the lease may be running out.
      const id = typeof candidate === 'function' ? await candidate() : candidate;
      if (!id || !/^\d+$/.test(id) || id === '0') continue;
      if ((await this.#pingOrReset(id)) > 0) {
        this.#id = id;
        adopted = true;
        break;
      }
    }
    if (!this.#id) this.#id = await this.grant();
    this.#lastAlive = this.clock.now();
    this.#setState('alive');
    this.#loop = this.#keepAlive();
    return { id: this.#id, adopted };
  }

  /** Stops keeping the lease alive without revoking it: keys stay until it expires (SIGTERM stance). */
  async stop(): Promise<void> {
    this.#setState('stopped');
    this.#abort.abort();
    this.#stream?.end();
    await this.#loop;
  }

  /** Revokes the lease: every key under it goes at once. */
  async revoke(): Promise<void> {
    const id = this.#id;
    await this.stop();
    if (id) await etcdCall(`revoking lease ${id}`, (o) => this.etcd.leaseClient.leaseRevoke({ ID: id }, o));
  }

  async grant(): Promise<string> {
    const res = await etcdCall('granting the node lease', (o) => this.etcd.leaseClient.leaseGrant({ TTL: this.ttlSeconds, ID: 0 }, o));
    return res.ID;
  }

  #setState(s: LeaseState): void {
    if (this.#state === s || this.#state === 'stopped') return;
    this.#state = s;
    this.emit('state', s);
  }

  async #keepAlive(): Promise<void> {
    const period = Math.max(500, (this.ttlSeconds * 1000) / 3);
    let failures = 0;
    while (!this.#abort.signal.aborted) {
      try {
        if (this.#state === 'lost') {
          this.#id = await this.grant();
          this.#lastAlive = this.clock.now();
          this.log.warn('lease lost; granted a new one', { lease: this.#id });
          this.#setState('alive');
          this.emit('regranted', this.#id);
        }
        const ttl = await this.#ping(this.#id!);
        failures = 0;
        if (ttl <= 0) {
          this.log.warn('lease expired on the server', { lease: this.#id });
          this.#setState('lost');
          continue;
        }
        this.#lastAlive = this.clock.now();
        this.#setState('alive');
        await this.clock.sleep(period, this.#abort.signal);
      } catch (err) {
        if (this.#abort.signal.aborted) break;
        this.#stream?.end();
        this.#stream = undefined;
        failures++;
        if (failures === 1 || failures % 10 === 0) this.log.warn('lease keepalive failed; retrying', { error: (err as Error).message, attempts: failures });
        // Past the TTL the server has dropped the lease: treat it as lost so keys are re-put once etcd answers.
        if (this.clock.now() - this.#lastAlive > this.ttlSeconds * 1000) this.#setState('lost');
        await this.clock.sleep(Math.min(period, backoffMs(failures, 2_000)), this.#abort.signal);
      }
    }
  }

  /** A failed start is retried (untilReachable): it must not leave a broken stream behind for the next try. */
  async #pingOrReset(id: string): Promise<number> {
    try {
      return await this.#ping(id);
    } catch (err) {
      this.#stream?.end();
      this.#stream = undefined;
      throw err;
    }
  }

  /** One keepalive round trip for `id` on a long-lived stream; returns the TTL etcd reports (0: no such lease). */
  async #ping(id: string): Promise<number> {
    if (!this.#stream) {
      const stream = await this.etcd.leaseClient.leaseKeepAlive();
      // A stream that breaks between two pings (its member killed, or cancelled by the member gate) is dropped
      // then, so the next ping opens a new one on a live member instead of waiting out its deadline on a dead one.
      const drop = () => {
        if (this.#stream === stream) this.#stream = undefined;
      };
      stream.on('error', drop);
      stream.on('end', drop);
      this.#stream = stream;
    }
    const stream = this.#stream as unknown as NodeJS.EventEmitter & { write(req: { ID: string }): void };
    return await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`keepalive of lease ${id}: etcd did not answer within ${ETCD_CALL_DEADLINE_MS} ms`)), ETCD_CALL_DEADLINE_MS);
      const onData = (res: { ID: string; TTL: string }) => {
        if (res.ID === id) done(undefined, Number(res.TTL));
      };
      const onEnd = () => done(new Error('keepalive stream closed'));
      const onError = (err: Error) => done(err);
      // stop() does not wait for a frozen etcd's answer.
      const onAbort = () => done(new Error('stopped'));
      const signal = this.#abort.signal;
      function done(err?: Error, ttl?: number) {
        clearTimeout(timer);
        stream.off('data', onData);
        stream.off('end', onEnd);
        stream.off('error', onError);
        signal.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(ttl!);
      }
      stream.on('data', onData);
      stream.on('end', onEnd);
      stream.on('error', onError);
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) return onAbort(); // stopped while the stream was being opened
      stream.write({ ID: id });
    });
  }
}
