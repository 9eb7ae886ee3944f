// nextState() and nextLastApply(), pure: what a pass remembers and reports after each kind of apply outcome.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nextLastApply, nextState, type ApplyOutcome, type LastApply } from '../../agent/core/render/next-state.js';
import type { AppliedState, PassPlan } from '../../agent/core/render/plan.js';

const before: AppliedState & { node: string; leaseId: string } = {
  node: 'node-a', leaseId: 'l1', adminPorts: { 'web-v1': 15100 }, appliedRevision: 4, appliedHash: 'h-old', appliedContainers: { 'web-v1': 'c-old' }, renderedHash: 'h-old', renderedRevision: 4,
};
const plan = (composeReason?: string): PassPlan => ({
  render: { adminPorts: { 'web-v1': 15100, 'api-v1': 15101 } } as unknown as PassPlan['render'],
  revision: 9, files: new Map(), projectHash: 'h-new', renderedRevision: 9, images: [], composeServices: [], apps: [],
  ...(composeReason ? { composeReason } : {}),
});
const AT = Date.parse('2026-01-02T03:04:05Z');
const rendered = { adminPorts: { 'web-v1': 15100, 'api-v1': 15101 }, renderedHash: 'h-new', renderedRevision: 9 };

test('no reason to run compose: the revision is applied; a failed last apply is over, an ok one stays', () => {
  const outcome: ApplyOutcome = { at: AT, applied: false };
  assert.deepEqual(nextState(before, plan(), outcome), { ...before, ...rendered, appliedRevision: 9 });
  const failed: LastApply = { ok: false, at: 'x', revision: 8, reason: 'first apply', message: 'boom', action: 'compose up' };
  assert.deepEqual(nextLastApply(failed, plan(), outcome), { ok: true, at: '2026-01-02T03:04:05.000Z', revision: 9, reason: 'Docker already runs the desired project' });
  const ok: LastApply = { ok: true, at: 'x', revision: 8 };
  assert.equal(nextLastApply(ok, plan(), outcome), ok);
  assert.equal(nextLastApply(undefined, plan(), outcome), undefined);
});

test('compose applied: hash, revision and containers are remembered; the lease id and node are kept', () => {
  const outcome: ApplyOutcome = { at: AT, applied: true, appliedContainers: { 'web-v1': 'c-new' } };
  assert.deepEqual(nextState(before, plan('the rendered project changed'), outcome), { ...before, ...rendered, appliedHash: 'h-new', appliedRevision: 9, appliedContainers: { 'web-v1': 'c-new' } });
  assert.deepEqual(nextLastApply(undefined, plan('the rendered project changed'), outcome), { ok: true, at: '2026-01-02T03:04:05.000Z', revision: 9, reason: 'the rendered project changed' });
});

test('a failed action: only what was rendered (and what Docker listed after up) is remembered; the action is named', () => {
  const upFailed: ApplyOutcome = { at: AT, applied: false, failed: { action: 'compose up', message: 'exploded' } };
  assert.deepEqual(nextState(before, plan('first apply'), upFailed), { ...before, ...rendered });
  assert.deepEqual(nextLastApply(undefined, plan('first apply'), upFailed), { ok: false, at: '2026-01-02T03:04:05.000Z', revision: 9, reason: 'first apply', message: 'exploded', action: 'compose up' });
  const notRunning: ApplyOutcome = { at: AT, applied: false, appliedContainers: { 'web-v1': 'c-new' }, failed: { action: 'confirm running', message: 'not running' } };
  assert.deepEqual(nextState(before, plan('first apply'), notRunning), { ...before, ...rendered, appliedContainers: { 'web-v1': 'c-new' } });
  // Compose ran and everything runs, but the last-good copy could not be written: applied, and still reported as failed.
  const lastGood: ApplyOutcome = { at: AT, applied: true, appliedContainers: {}, failed: { action: 'keep as last good', message: 'disk full' } };
  assert.equal(nextState(before, plan('first apply'), lastGood).appliedHash, 'h-new');
  assert.equal(nextLastApply(undefined, plan('first apply'), lastGood)!.ok, false);
  assert.deepEqual(before.appliedContainers, { 'web-v1': 'c-old' }, 'the state passed in is not changed');
});
