// Why corpus documents are refused, grouped: the field (indexes folded) and the message with its values folded.
import type { DocOutcome, IssueOut } from './istio-corpus.js';

/** `spec.http[2].match[0].port: matching on port is not supported` → `spec.http[].match[].port: …`. */
export function reasonOf(issue: IssueOut): string {
  const path = issue.path.replace(/\[\d+\]/g, '[]').replace(/\[("[^"]*")\]/g, '[…]');
  const message = issue.message
    .replace(/got the string ".*"$/, 'got the string "…"')
    .replace(/^no Service named \S+.*$/, 'no Service named …')
    .replace(/^Service \S+ is also defined in .*$/, 'Service … is also defined in …')
    .replace(/^Service \S+ has no (subset|version) .*$/, 'Service … has no $1 …')
    .replace(/^expected \d+, the port of Service .*$/, 'expected …, the port of Service …')
    .replace(/^host \S+ is already routed by .*$/, 'host … is already routed by another VirtualService')
    .replace(/^host \S+ already has DestinationRule .*$/, 'host … already has a DestinationRule')
    .replace(/^(.*) is not valid: see the problems listed for .*$/, '$1 is not valid (follows from another document)')
    .replace(/^unknown field(; did you mean [^;]*)?; expected one of: .*$/, 'unknown field');
  return `${path}: ${message}`;
}

/** Reason → the documents (file#index) refused for it, most frequent reason first, then by name. */
export function refusalsByReason(outcomes: readonly DocOutcome[]): [string, string[]][] {
  const by = new Map<string, Set<string>>();
  for (const o of outcomes) {
    for (const i of o.issues ?? []) {
      const r = reasonOf(i);
      if (!by.has(r)) by.set(r, new Set());
      by.get(r)!.add(`${o.file}#${o.index}`);
    }
  }
  return [...by].map(([r, docs]): [string, string[]] => [r, [...docs].sort()]).sort((a, b) => b[1].length - a[1].length || (a[0] < b[0] ? -1 : 1));
}
