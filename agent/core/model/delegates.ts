// Istio's VirtualService delegation: a rule with `delegate` is replaced by the delegate VirtualService's http
// rules, each merged under the rule's match (Istio's mergeHTTPRoutes). A delegate's match must narrow the
// root's: where it cannot (a prefix outside the root's, another exact path), Istio drops the rule; meshlet's
// validation refuses it by path instead, so rendering only meets mergeable rules.
import type { HttpMatch, HttpRoute, StringMatch, VirtualService } from './model.js';

export type FindRoute = (name: string, namespace: string) => VirtualService | undefined;

/** `vs`'s http rules with every delegate rule expanded (one level, as in Istio); an unknown delegate adds none. */
export function expandDelegates(vs: VirtualService, find: FindRoute, namespace: string): HttpRoute[] {
  return vs.http.flatMap((root) => {
    if (!root.delegate) return [root];
    const target = find(root.delegate.name, root.delegate.namespace ?? namespace);
    if (!target) return [];
    return target.http.flatMap((leaf) => {
      const merged = mergeDelegated(root, leaf);
      return 'conflict' in merged || leaf.delegate ? [] : [merged];
    });
  });
}

/** The delegate rule `leaf` under `root`: the leaf's own fields win, the root's fill the gaps. */
export function mergeDelegated(root: HttpRoute, leaf: HttpRoute): HttpRoute | { conflict: string } {
  const match = mergeMatches(root.match, leaf.match);
  if ('conflict' in match) return match;
  const out: HttpRoute = { ...leaf, match: match.merged };
  const name = joinNames(root.name, leaf.name);
  if (name !== undefined) out.name = name;
  else delete out.name;
  for (const k of ['rewrite', 'timeoutMs', 'retries', 'fault', 'headers', 'corsPolicy'] as const) {
    if (out[k] === undefined && root[k] !== undefined) (out as unknown as Record<string, unknown>)[k] = root[k];
  }
  if (out.mirrors.length === 0) out.mirrors = root.mirrors;
  return out;
}

function joinNames(root: string | undefined, leaf: string | undefined): string | undefined {
  if (leaf === undefined || leaf === '') return root;
  return root ? `${root}-${leaf}` : leaf;
}

/** Each leaf match must fit under at least one root match; it is merged with every one it fits under. */
function mergeMatches(root: HttpMatch[], leaf: HttpMatch[]): { merged: HttpMatch[] } | { conflict: string } {
  if (root.length === 0) return { merged: leaf };
  if (leaf.length === 0) return { merged: root };
  const merged: HttpMatch[] = [];
  for (const [i, l] of leaf.entries()) {
    const reasons: string[] = [];
    for (const r of root) {
      const why = matchConflict(r, l);
      if (why) reasons.push(why);
      else merged.push(mergeMatch(r, l));
    }
    if (reasons.length === root.length) return { conflict: `match[${i}] is not narrower than any match of the delegating rule (${[...new Set(reasons)].join('; ')})` };
  }
  return { merged };
}

function mergeMatch(root: HttpMatch, leaf: HttpMatch): HttpMatch {
  const byName = (a: HttpMatch['headers'], b: HttpMatch['headers']) => {
    const m = new Map(a.map((h) => [h.name, h.match]));
    for (const h of b) m.set(h.name, h.match);
    return [...m].sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0)).map(([name, match]) => ({ name, match }));
  };
  const out: HttpMatch = {
    ...leaf,
    headers: byName(root.headers, leaf.headers),
    withoutHeaders: byName(root.withoutHeaders, leaf.withoutHeaders),
    queryParams: byName(root.queryParams, leaf.queryParams),
  };
  const name = joinNames(root.name, leaf.name);
  if (name !== undefined) out.name = name;
  for (const k of ['uri', 'scheme', 'method', 'authority', 'port', 'sourceNamespace', 'statPrefix'] as const) {
    if (out[k] === undefined && root[k] !== undefined) (out as unknown as Record<string, unknown>)[k] = root[k];
  }
  if (root.sourceLabels || leaf.sourceLabels) out.sourceLabels = { ...root.sourceLabels, ...leaf.sourceLabels };
  return out;
}

/** Why `leaf` cannot narrow `root` (Istio's hasConflict), or undefined. */
function matchConflict(root: HttpMatch, leaf: HttpMatch): string | undefined {
  for (const k of ['uri', 'scheme', 'method', 'authority'] as const) {
    const why = stringConflict(root[k], leaf[k]);
    if (why) return `${k}: ${why}`;
  }
  for (const k of ['headers', 'withoutHeaders', 'queryParams'] as const) {
    for (const h of leaf[k]) {
      const why = stringConflict(root[k].find((x) => x.name === h.name)?.match, h.match);
      if (why) return `${k}.${h.name}: ${why}`;
    }
  }
  if (root.ignoreUriCase !== leaf.ignoreUriCase) return 'ignoreUriCase differs';
  if (root.port !== undefined && leaf.port !== undefined && root.port !== leaf.port) return `port ${leaf.port} is not ${root.port}`;
  if (root.sourceNamespace !== undefined && leaf.sourceNamespace !== root.sourceNamespace) return `sourceNamespace is not ${root.sourceNamespace}`;
  for (const [k, v] of Object.entries(leaf.sourceLabels ?? {})) {
    const rv = root.sourceLabels?.[k];
    if (rv !== undefined && rv !== v) return `sourceLabels.${k} ${v} is not ${rv}`;
  }
  return undefined;
}

const show = (m: StringMatch) => (m.present ? 'present' : m.exact !== undefined ? `exact ${m.exact}` : m.prefix !== undefined ? `prefix ${m.prefix}` : `regex ${m.regex}`);

function stringConflict(root: StringMatch | undefined, leaf: StringMatch | undefined): string | undefined {
  if (!root || !leaf) return undefined;
  const why = () => `${show(leaf)} is not within ${show(root)}`;
  // "Present" holds for any value: under it anything narrows; it narrows nothing with a value.
  if (root.present) return undefined;
  if (leaf.present) return why();
  // A regex cannot be compared with anything: only one side may have it.
  if (root.regex !== undefined || leaf.regex !== undefined) return why();
  if (root.exact !== undefined) return leaf.exact === root.exact ? undefined : why();
  const prefix = root.prefix!;
  const value = leaf.prefix ?? leaf.exact!;
  return value.startsWith(prefix) ? undefined : why();
}
