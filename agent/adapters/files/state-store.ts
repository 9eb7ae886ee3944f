// state.json in the state dir: what a restarted agent needs to carry on (lease id, port assignments, last apply).
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { AppliedState } from '../../core/render/plan.js';
import { silentLogger, type Logger } from '../../core/logger.js';
import { readIfExists, writeAtomic } from './file-store.js';

export interface AgentState extends AppliedState {
  node: string;
  leaseId?: string;
  adminPorts: Record<string, number>;
  appliedRevision?: number;
  /** Hash of the files compose was last run with (compose file + bootstraps). */
  appliedHash?: string;
  /** Compose's config-hash label per compose service after the last clean apply: drift shows as a difference. */
  appliedContainers?: Record<string, string>;
  /** Hash and etcd revision of the last rendered project (the files' header names that revision). */
  renderedHash?: string;
  renderedRevision?: number;
}

/**
 * Pure: the state a state.json holds, or what is wrong with it. Fields it does not know are kept (a newer
 * agent's); a known field of the wrong type makes the whole file suspect, since its lease id and ports are
 * acted on.
 */
export function parseState(text: string): { state: AgentState } | { problem: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    return { problem: `not JSON (${(err as Error).message})` };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { problem: 'not a JSON object' };
  const o = v as Record<string, unknown>;
  const wrong = (field: string, want: string) => ({ problem: `${field} is ${JSON.stringify(o[field])?.slice(0, 40)}, expected ${want}` });
  if (typeof o.node !== 'string') return wrong('node', 'a string');
  if (o.leaseId !== undefined && (typeof o.leaseId !== 'string' || !/^\d+$/.test(o.leaseId))) return wrong('leaseId', 'a lease id (digits)');
  if (o.adminPorts !== undefined && !isRecordOf(o.adminPorts, (p) => Number.isInteger(p) && (p as number) > 0 && (p as number) < 65536)) return wrong('adminPorts', 'an object of port numbers');
  if (o.appliedContainers !== undefined && !isRecordOf(o.appliedContainers, (h) => typeof h === 'string')) return wrong('appliedContainers', 'an object of strings');
  for (const f of ['appliedRevision', 'renderedRevision']) if (o[f] !== undefined && !Number.isInteger(o[f])) return wrong(f, 'an integer');
  for (const f of ['appliedHash', 'renderedHash']) if (o[f] !== undefined && typeof o[f] !== 'string') return wrong(f, 'a string');
  return { state: o as unknown as AgentState };
}

function isRecordOf(v: unknown, ok: (x: unknown) => boolean): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every(ok);
}

export class StateStore {
  readonly path: string;
  #last = '';

  constructor(readonly dir: string, private readonly opts: { log?: Logger; now?: () => number } = {}) {
    this.path = join(dir, 'state.json');
  }

  /**
   * The saved state, or an empty one. A corrupt file is logged, moved aside (`state.json.corrupt-<time>`, for
   * whoever wants to look) and treated as missing: the agent then finds its lease through the node claim.
   */
  async load(node: string): Promise<AgentState> {
    const text = await readIfExists(this.path);
    const empty: AgentState = { node, adminPorts: {} };
    if (text === undefined) return empty;
    const parsed = parseState(text);
    if ('problem' in parsed) {
      await this.#moveAside(parsed.problem);
      return empty;
    }
    const s = parsed.state;
    this.#last = text;
    // A state dir moved to another node keeps nothing but its port choices.
    return s.node === node ? { ...empty, ...s } : { ...empty, adminPorts: s.adminPorts ?? {} };
  }

  async #moveAside(problem: string): Promise<void> {
    const log = this.opts.log ?? silentLogger;
    const aside = `${this.path}.corrupt-${new Date((this.opts.now ?? Date.now)()).toISOString().replace(/:/g, '-')}`;
    try {
      await rename(this.path, aside);
      log.warn('state.json is corrupt; moved aside, starting without it', { file: this.path, problem, movedTo: aside });
    } catch (err) {
      log.warn('state.json is corrupt and cannot be moved aside; starting without it', { file: this.path, problem, error: (err as Error).message });
    }
  }

  /** Writes only when the content changed. */
  async save(state: AgentState): Promise<void> {
    const text = `${JSON.stringify(state, null, 2)}\n`;
    if (text === this.#last) return;
    // The lease id and port assignments are the agent's own: not for other users of the host.
    await writeAtomic(this.path, text, 0o600);
    this.#last = text;
  }
}
