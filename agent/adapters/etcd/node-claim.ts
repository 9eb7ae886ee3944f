// One agent per node: `<p>/nodes/<node>/agent` is created under the agent's lease; a second agent is refused.
import { hostname } from 'node:os';
import type { Etcd3 } from 'etcd3';
import { ConflictError } from '../../core/errors.js';
import type { Keys } from '../../core/model/keys.js';
import { etcdCall } from './etcd-call.js';

export interface ClaimValue {
  node: string;
  host: string;
  pid: number;
  lease: string;
}

/** Claims the node for `lease`. A claim held under the same lease (this agent, restarted) is taken back. */
export async function claimNode(etcd: Etcd3, k: Keys, node: string, lease: string): Promise<void> {
  const key = k.nodeOwner(node);
  const value: ClaimValue = { node, host: hostname(), pid: process.pid, lease };
  const res = await etcdCall(`claiming node ${node}`, (o) => etcd.if(key, 'Create', '==', 0).then(etcd.put(key).value(JSON.stringify(value)).lease(lease)).else(etcd.get(key)).options(o).commit());
  if (res.succeeded) return;
  const kv = res.responses[0]?.response_range?.kvs[0];
  const heldBy = kv ? (kv.lease === lease || String(kv.lease) === lease ? 'self' : kv.value.toString()) : 'gone';
  if (heldBy === 'self' || heldBy === 'gone') {
    await etcdCall(`claiming node ${node}`, (o) => etcd.put(key).value(JSON.stringify(value)).lease(lease).options(o).exec());
    return;
  }
  let who = heldBy;
  try {
    const o = JSON.parse(heldBy) as ClaimValue;
    who = `pid ${o.pid} on host ${o.host}, lease ${o.lease}`;
  } catch {
    /* show the raw value */
  }
  throw new ConflictError(`node ${node} is already run by another agent (${who}); stop it first, or wait for its lease to expire if it died`);
}

/** Puts the claim again under a new lease (after the old one was lost). */
export async function reclaimNode(etcd: Etcd3, k: Keys, node: string, lease: string): Promise<void> {
  const value: ClaimValue = { node, host: hostname(), pid: process.pid, lease };
  await etcdCall(`re-claiming node ${node}`, (o) => etcd.put(k.nodeOwner(node)).value(JSON.stringify(value)).lease(lease).options(o).exec());
}

/** Deletes the claim if it is still held under `lease` (never another agent's). */
export async function releaseNode(etcd: Etcd3, k: Keys, node: string, lease: string): Promise<void> {
  const key = k.nodeOwner(node);
  await etcdCall(`releasing node ${node}`, (o) => etcd.if(key, 'Lease', '==', lease).then(etcd.delete().key(key)).options(o).commit());
}
