// state.json in the state dir: what a restarted agent needs to carry on (lease id, port assignments, last apply).
import { join } from 'node:path';
import type { AppliedState } from '../../core/render/plan.js';
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

export class StateStore {
  readonly path: string;
  #last = '';

  constructor(readonly dir: string) {
    this.path = join(dir, 'state.json');
  }

  async load(node: string): Promise<AgentState> {
    const text = await readIfExists(this.path);
    const empty: AgentState = { node, adminPorts: {} };
    if (!text) return empty;
    try {
      const s = JSON.parse(text) as AgentState;
      this.#last = text;
      // A state dir moved to another node keeps nothing but its port choices.
      return s.node === node ? { ...empty, ...s } : { ...empty, adminPorts: s.adminPorts ?? {} };
    } catch {
      return empty;
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
