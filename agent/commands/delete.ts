// meshlet delete: removes one desired document, refusing when others still refer to it (unless --force).
import type { DesiredKind } from '../core/model/keys.js';
import { formatIssue } from '../core/model/issues.js';
import { ConflictError, ValidationError } from '../core/errors.js';
import { suggestion } from '../core/documents/did-you-mean.js';
import { parseDesiredKey } from '../core/model/keys.js';
import type { EtcdFlags } from './etcd-options.js';
import { checkChange, commitGuarded, modRevisionOf, readDesired, sameMod, untilStable, withEtcd } from '../adapters/etcd/etcd-store.js';

export const DELETE_KINDS: Record<string, DesiredKind> = { service: 'services', services: 'services', route: 'routes', routes: 'routes', subset: 'subsets', subsets: 'subsets' };
const KIND_WORD: Record<DesiredKind, string> = { services: 'Service', routes: 'VirtualService', subsets: 'DestinationRule' };

export interface DeleteArgs extends EtcdFlags {
  kind: string;
  name: string;
  force?: boolean;
  /** Only to tell whether documents still fit together; deleting cannot make a port clash. */
  xdsPort?: number;
}

export interface DeleteHooks {
  beforeCommit?: (attempt: number) => Promise<void>;
}

export async function deleteCommand(args: DeleteArgs, log: (line: string) => void, warn: (line: string) => void, hooks: DeleteHooks = {}): Promise<void> {
  const kind = DELETE_KINDS[args.kind];
  if (!kind) throw new ValidationError([{ doc: { source: args.kind, index: 0, whole: true }, path: '', message: 'expected service, route or subset' }]);
  const what = `${KIND_WORD[kind]} ${args.name}`;
  await withEtcd(args, (s) => untilStable(`deleting ${what}`, async (attempt) => {
    const snap = await readDesired(s);
    const key = s.k.desiredDoc(kind, args.name);
    const entry = snap.entries.get(key);
    if (!entry) {
      const names = [...snap.entries.keys()].map((k) => parseDesiredKey(s.k.prefix, k)).filter((p) => p?.kind === kind).map((p) => p!.name);
      throw new ValidationError([{ doc: { source: key, index: 0, whole: true }, path: '', message: `no ${what} in etcd${suggestion(args.name, names)}` }], 'nothing to delete');
    }
    const { errors } = checkChange(snap, { put: new Map(), remove: new Set([key]) }, { xdsPort: args.xdsPort ?? 15010 });
    if (errors.length > 0 && !args.force) {
      const docs = new Set(errors.map((e) => e.doc.source)).size;
      throw new ValidationError(errors, `refusing to delete ${what}: ${docs} document${docs === 1 ? ' refers' : 's refer'} to it (change ${docs === 1 ? 'it' : 'them'} first, or delete with --force)`);
    }
    // A route's rollback history goes with it: a later route of the same name starts afresh.
    const deletes = kind === 'routes' ? [key, s.k.routeHistory(args.name)] : [key];
    await hooks.beforeCommit?.(attempt);
    const revision = await commitGuarded(s, snap.revision, { puts: [], deletes, compares: [sameMod(key, entry.modRevision)] });
    if (revision === undefined) {
      if ((await modRevisionOf(s, key)) !== entry.modRevision) {
        throw new ConflictError(`${what} (${key}) was changed by someone else after it was read; nothing was deleted. Check it with meshlet get and retry`);
      }
      return undefined;
    }
    if (errors.length > 0) for (const e of errors) warn(`warning: --force: this reference is now broken (agents reject the document): ${formatIssue(e)}`);
    log(`deleted ${key} at etcd revision ${revision}`);
    return true;
  }));
}
