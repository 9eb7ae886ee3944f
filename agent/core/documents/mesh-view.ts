// The documents the set-level checks look at: the valid ones first, then what could be read of refused ones.
import type { DocRef } from '../model/issues.js';
import { describeDoc } from '../model/issues.js';
import type { Desired, DestinationRule, Document, Service, VirtualService } from '../model/model.js';
import type { Gap, Refused } from './draft.js';
import { UNREAD } from './draft.js';
import { toDesired } from './documents.js';

type Add = (doc: Document, path: string, message: string, follows?: DocRef) => void;

export class MeshView {
  /** Each kind: the valid documents by name, then the refused ones by name. */
  readonly services: Service[];
  readonly routes: VirtualService[];
  readonly rules: DestinationRule[];
  readonly #gaps = new Map<Document, ReadonlySet<Gap>>();
  readonly #services = new Map<string, Service>();
  readonly #ruleOf = new Map<string, DestinationRule>();
  readonly #told = new Map<Document, Set<Document>>();

  constructor(desired: Desired, refused: readonly Refused[], readonly add: Add) {
    for (const r of refused) this.#gaps.set(r.doc, r.gaps);
    const later = toDesired(refused.map((r) => r.doc));
    this.services = [...desired.services, ...later.services];
    this.routes = [...desired.routes, ...later.routes];
    this.rules = [...desired.subsets, ...later.subsets];
    // The first of a name (or of a host) wins, as it does when rendering; a duplicate is reported apart.
    for (const s of this.services) if (!this.lacks(s, 'name') && !this.#services.has(s.name)) this.#services.set(s.name, s);
    for (const d of this.rules) if (d.host !== UNREAD && !this.#ruleOf.has(d.host)) this.#ruleOf.set(d.host, d);
  }

  isRefused(doc: Document): boolean {
    return this.#gaps.has(doc);
  }

  /** True when `doc` is refused and its `gap` could not be read: checks that need it are skipped. */
  lacks(doc: Document, gap: Gap): boolean {
    return this.#gaps.get(doc)?.has(gap) ?? false;
  }

  service(name: string): Service | undefined {
    return this.#services.get(name);
  }

  serviceNames(): Iterable<string> {
    return this.#services.keys();
  }

  /**
   * `from` refers to `target` at `path`: if `target` is refused, say so, once for each document that
   * refers to it (the agent rejects `from` for it; further references add nothing).
   */
  mentions(from: Document, path: string, target: Document, what = `${target.kind} ${target.name} is not valid`): void {
    if (!this.isRefused(target)) return;
    const told = this.#told.get(from) ?? new Set<Document>();
    this.#told.set(from, told);
    if (told.has(target)) return;
    told.add(target);
    this.add(from, path, `${what}: see the problems listed for ${describeDoc(target.ref)}`, target.ref);
  }

  /**
   * The subset names a destination of `from` at `path` may use for `svc`: its DestinationRule's, or one
   * per version. Undefined when a refused document leaves them unknown: no subset can then be said missing.
   */
  subsetNames(from: Document, path: string, svc: Service): string[] | undefined {
    const rule = this.#ruleOf.get(svc.name);
    if (!rule) return this.lacks(svc, 'versions') ? undefined : svc.versions.map((v) => v.name);
    this.mentions(from, path, rule, `the subsets of Service ${svc.name} come from a DestinationRule that is not valid`);
    return this.lacks(rule, 'subsets') ? undefined : rule.subsets.map((s) => s.name);
  }
}
