// After a pass's apply, pure: what the agent remembers (state.json) and what the node status says of the last apply.
import type { AppliedState, PassPlan } from './plan.js';

/** What applying a plan did. The actions after a failed one did not run. */
export interface ApplyOutcome {
  /** When the apply started (epoch ms); the files were written by then. */
  at: number;
  /** Compose ran and Docker shows every service running: the project is applied. */
  applied: boolean;
  /** Compose's config-hash label per service, from the listing after `up` (when that listing ran). */
  appliedContainers?: Record<string, string>;
  /** The first action that failed, named, and its error. */
  failed?: { action: string; message: string };
}

export interface LastApply {
  ok: boolean;
  at: string;
  revision: number;
  reason?: string;
  message?: string;
  /** The action that failed (check images, compose up, …); only when !ok. */
  action?: string;
}

/** The state after the pass: what was rendered always; what was applied only when compose confirmed it (or had no reason to run). */
export function nextState<S extends AppliedState>(state: S, plan: PassPlan, outcome: ApplyOutcome): S {
  const next: S = { ...state, adminPorts: plan.render.adminPorts, renderedHash: plan.projectHash, renderedRevision: plan.renderedRevision };
  if (!plan.composeReason) return { ...next, appliedRevision: plan.revision };
  if (outcome.appliedContainers) next.appliedContainers = outcome.appliedContainers;
  return outcome.applied ? { ...next, appliedHash: plan.projectHash, appliedRevision: plan.revision } : next;
}

/** The node status's last apply: a new one when compose ran; when it had no reason to run, a failed one is over. */
export function nextLastApply(last: LastApply | undefined, plan: PassPlan, outcome: ApplyOutcome): LastApply | undefined {
  const at = new Date(outcome.at).toISOString();
  const { revision, composeReason: reason } = plan;
  if (!reason) return last && !last.ok ? { ok: true, at, revision, reason: 'Docker already runs the desired project' } : last;
  return outcome.failed ? { ok: false, at, revision, reason, message: outcome.failed.message, action: outcome.failed.action } : { ok: true, at, revision, reason };
}
