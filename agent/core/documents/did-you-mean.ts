// Suggests the closest known name for a misspelt one.

export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/**
 * A candidate the name is the start of (a truncated name: `prot` → `protocol`; the shortest if
 * several), else the nearest candidate within a third of the name's length (at least 2 edits), if any.
 */
export function didYouMean(name: string, candidates: Iterable<string>): string | undefined {
  const list = [...candidates];
  if (name.length >= 3) {
    const lower = name.toLowerCase();
    const longer = list.filter((c) => c.length > name.length && c.toLowerCase().startsWith(lower));
    longer.sort((a, b) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0));
    if (longer.length > 0) return longer[0];
  }
  const limit = Math.max(2, Math.floor(name.length / 3));
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of list) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestDistance || (d === bestDistance && best !== undefined && c < best)) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

export function suggestion(name: string, candidates: Iterable<string>): string {
  const s = didYouMean(name, candidates);
  return s ? ` (did you mean "${s}"?)` : '';
}
