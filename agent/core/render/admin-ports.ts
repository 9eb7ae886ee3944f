// Assigns each sidecar an Envoy admin port, keeping earlier assignments so re-renders are stable.

export interface PortRange {
  from: number;
  to: number;
}

export const DEFAULT_ADMIN_PORTS: PortRange = { from: 15100, to: 15999 };

/**
 * Keeps `previous[name]` when it is still in range and free, then gives each remaining sidecar
 * (in name order) the lowest free port. Returns undefined for a sidecar when the range is full.
 */
export function allocateAdminPorts(
  names: string[],
  previous: Readonly<Record<string, number>>,
  range: PortRange,
  taken: ReadonlySet<number>,
): { ports: Record<string, number>; unplaced: string[] } {
  const used = new Set(taken);
  const ports: Record<string, number> = {};
  const sorted = [...names].sort();
  for (const name of sorted) {
    const p = previous[name];
    if (p !== undefined && p >= range.from && p <= range.to && !used.has(p)) {
      ports[name] = p;
      used.add(p);
    }
  }
  const unplaced: string[] = [];
  let next = range.from;
  for (const name of sorted) {
    if (ports[name] !== undefined) continue;
    while (next <= range.to && used.has(next)) next++;
    if (next > range.to) { unplaced.push(name); continue; }
    ports[name] = next;
    used.add(next);
  }
  return { ports, unplaced };
}
