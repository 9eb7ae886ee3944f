// What the node status says about each sidecar (xDS connection, ACKed versions, last NACK, admin address) and
// about each container that is not running as it should (state, exit code, restarts, last log lines).
import type { ContainerInfo, ContainerLogs } from '../adapters/docker/docker-observer.js';
import type { XdsClientSummary } from './publisher.js';
import { workloadNodeId } from '../core/model/ids.js';

/** xDS type short names (as XdsPublisher.clientStatus gives them) → the usual discovery service names. */
const SHORT: Record<string, 'cds' | 'eds' | 'lds' | 'rds'> = { Cluster: 'cds', ClusterLoadAssignment: 'eds', Listener: 'lds', RouteConfiguration: 'rds' };

export interface SidecarStatus {
  /** xDS node id, e.g. `sidecar~node-a~reviews-v1`. */
  id: string;
  workload: string;
  /** Envoy's admin interface (`/config_dump`, `/clusters`, `/stats`), always on loopback. */
  admin: string;
  connected: boolean;
  acked: Partial<Record<'cds' | 'eds' | 'lds' | 'rds', string>>;
  /** The last version Envoy refused, with Envoy's own message; the version before it keeps serving. */
  nack?: { type: string; version: string; message: string; at: string };
}

/** One row per sidecar this node runs (connected or not), joined with what its xDS stream reported. */
export function sidecarStatus(node: string, adminPorts: Record<string, number>, clients: Record<string, XdsClientSummary>): SidecarStatus[] {
  return Object.entries(adminPorts).sort(([a], [b]) => (a < b ? -1 : 1)).map(([workload, port]) => {
    const id = workloadNodeId('sidecar', node, workload);
    const c = clients[id];
    const acked: SidecarStatus['acked'] = {};
    for (const [t, v] of Object.entries(c?.acked ?? {})) acked[SHORT[t] ?? (t as 'cds')] = v;
    return {
      id, workload, admin: `127.0.0.1:${port}`, connected: c?.connected === true, acked,
      ...(c?.nack ? { nack: { ...c.nack, type: SHORT[c.nack.type] ?? c.nack.type } } : {}),
    };
  });
}

export interface ContainerProblem {
  name: string;
  composeService: string;
  /** Docker's state: restarting, exited, dead, created, paused, … or running but unhealthy. */
  state: string;
  health?: string;
  exitCode?: number;
  restarts: number;
  /** Its last log lines (stdout and stderr), oldest first. */
  logTail: string[];
}

/**
 * Docker resets a restart policy's backoff once a container has run this long: one that restarted more recently
 * may be crash-looping though it reads `running` for the moment (Docker also resets ExitCode to 0 on start).
 */
export const CRASH_LOOP_WINDOW_MS = 10_000;

/** Containers that are not running, running but unhealthy, or restarted by Docker within the crash-loop window. */
export function troubledContainers(containers: ContainerInfo[], now: number): ContainerInfo[] {
  return containers.filter((c) => c.state !== 'running' || c.health === 'unhealthy' || justRestarted(c, now));
}

function justRestarted(c: ContainerInfo, now: number): boolean {
  return (c.restarts ?? 0) > 0 && c.startedAt !== undefined && now - Date.parse(c.startedAt) < CRASH_LOOP_WINDOW_MS;
}

/** Reads the log tail of each troubled container; a container seen before in the same state is not read again. */
export class ContainerProblems {
  #seen = new Map<string, ContainerProblem>();
  /** Last exit code seen per container id, for one that is running again after a crash. */
  #lastExit = new Map<string, number>();

  constructor(private readonly logs: ContainerLogs, private readonly now: () => number, private readonly lines = 10) {}

  async describe(containers: ContainerInfo[]): Promise<ContainerProblem[]> {
    for (const c of containers) if (c.exitCode !== undefined) this.#lastExit.set(c.id, c.exitCode);
    for (const id of this.#lastExit.keys()) if (!containers.some((c) => c.id === id)) this.#lastExit.delete(id);
    const next = new Map<string, ContainerProblem>();
    for (const c of troubledContainers(containers, this.now())) {
      const exitCode = c.exitCode ?? this.#lastExit.get(c.id);
      const key = `${c.id}|${c.state}|${c.health ?? ''}|${c.restarts ?? 0}|${exitCode ?? ''}`;
      let p = this.#seen.get(key);
      if (!p) {
        const logTail = await this.logs.logTail(c.id, this.lines).catch((err: Error) => [`(log not readable: ${err.message})`]);
        p = {
          name: c.name, composeService: c.composeService, state: c.state,
          ...(c.health ? { health: c.health } : {}), ...(exitCode !== undefined ? { exitCode } : {}),
          restarts: c.restarts ?? 0, logTail,
        };
      }
      next.set(key, p);
    }
    this.#seen = next;
    return [...next.values()];
  }
}
