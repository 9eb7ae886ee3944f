// meshlet drain / undrain: a persistent mark the node's agent watches; drained, it deregisters everything
// and registers nothing until undrained. The containers keep running.
import { hostname, userInfo } from 'node:os';
import { NODE_NAME } from '../core/model/model.js';
import { ValidationError } from '../core/errors.js';
import type { EtcdFlags } from './etcd-options.js';
import { withEtcd } from '../adapters/etcd/etcd-store.js';

export async function drainCommand(args: EtcdFlags & { node: string; undo: boolean }, out: (l: string) => void): Promise<void> {
  if (!NODE_NAME.test(args.node)) {
    throw new ValidationError([{ doc: { source: '--node', index: 0, whole: true }, path: '', message: `expected a node name, got ${JSON.stringify(args.node)}` }]);
  }
  await withEtcd(args, async (s) => {
    const key = s.k.nodeDrain(args.node);
    if (args.undo) {
      const res = await s.etcd.delete().key(key).options(s.call()).exec();
      out(Number(res.deleted) > 0 ? `node ${args.node} undrained: its agent registers healthy instances again` : `node ${args.node} was not drained`);
      return;
    }
    const value = JSON.stringify({ since: new Date().toISOString(), by: `${safeUser()}@${hostname()}` });
    await s.etcd.put(key).value(value).options(s.call()).exec();
    const status = await s.etcd.get(s.k.nodeStatus(args.node)).options(s.call()).string();
    out(`node ${args.node} drained: its agent deregisters every instance now and registers none until \`meshlet undrain --node ${args.node}\``);
    if (!status) out(`note: no agent has reported for node ${args.node}; the mark applies when one starts`);
  });
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}
