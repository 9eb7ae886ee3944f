// The pure pieces behind sourceLabels and delegation: matchesSource against a caller, and Istio's merge of a
// delegate rule under the delegating one (names joined, gaps filled from the root, conflicts explained).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { matchesCaller, matchesSource } from '../../agent/core/xds/source-labels.js';
import { expandDelegates, mergeDelegated } from '../../agent/core/model/delegates.js';
import type { HttpMatch, HttpRoute, VirtualService } from '../../agent/core/model/model.js';

const web2 = { service: 'web', version: 'v2', namespace: 'default' };

test('matchesSource: every label must be the caller\'s; no labels match anyone; an unknown caller matches only no labels', () => {
  assert.equal(matchesSource(undefined, web2), true);
  assert.equal(matchesSource({}, undefined), true);
  assert.equal(matchesSource({ app: 'web' }, web2), true);
  assert.equal(matchesSource({ app: 'web', version: 'v2' }, web2), true);
  assert.equal(matchesSource({ app: 'web', version: 'v1' }, web2), false);
  assert.equal(matchesSource({ app: 'ops' }, web2), false);
  assert.equal(matchesSource({ team: 'web' }, web2), false);
  assert.equal(matchesSource({ app: 'web' }, undefined), false);
  assert.equal(matchesCaller({ sourceNamespace: 'default', sourceLabels: { version: 'v2' } }, web2), true);
  assert.equal(matchesCaller({ sourceNamespace: 'prod' }, web2), false);
  assert.equal(matchesCaller({ sourceNamespace: 'default' }, undefined), false);
});

const match = (m: Partial<HttpMatch>): HttpMatch => ({ headers: [], withoutHeaders: [], queryParams: [], ignoreUriCase: false, ...m });
const rule = (r: Partial<HttpRoute>): HttpRoute => ({ match: [], route: [{ host: 'api', weight: 100 }], mirrors: [], ...r });

test('mergeDelegated: the leaf narrows the root; names join with "-"; the root fills what the leaf leaves out', () => {
  const root = rule({ name: 'team', match: [match({ name: 'm', uri: { prefix: '/team' }, headers: [{ name: 'x-a', match: { exact: '1' } }] })], timeoutMs: 3000, route: [] });
  const leaf = rule({ name: 'reports', match: [match({ uri: { prefix: '/team/reports' }, headers: [{ name: 'x-b', match: { exact: '2' } }] })], timeoutMs: 1000 });
  const merged = mergeDelegated(root, leaf);
  assert.ok(!('conflict' in merged));
  assert.equal(merged.name, 'team-reports');
  assert.equal(merged.timeoutMs, 1000, 'the leaf\'s own timeout wins');
  assert.deepEqual(merged.match, [match({ name: 'm', uri: { prefix: '/team/reports' }, headers: [{ name: 'x-a', match: { exact: '1' } }, { name: 'x-b', match: { exact: '2' } }] })]);
  const bare = mergeDelegated(root, rule({}));
  assert.ok(!('conflict' in bare));
  assert.equal(bare.timeoutMs, 3000);
  assert.deepEqual(bare.match, root.match, 'a leaf without matches takes the root\'s');
});

test('mergeDelegated: conflicts are explained (Istio drops such a rule; meshlet refuses it)', () => {
  const under = (r: Partial<HttpMatch>, l: Partial<HttpMatch>) => {
    const m = mergeDelegated(rule({ match: [match(r)] }), rule({ match: [match(l)] }));
    return 'conflict' in m ? m.conflict : 'merged';
  };
  assert.equal(under({ uri: { prefix: '/a' } }, { uri: { prefix: '/ab' } }), 'merged');
  assert.equal(under({ uri: { prefix: '/a' } }, { uri: { exact: '/a/x' } }), 'merged');
  assert.match(under({ uri: { prefix: '/a' } }, { uri: { prefix: '/b' } }), /uri: prefix \/b is not within prefix \/a/);
  assert.match(under({ uri: { exact: '/a' } }, { uri: { prefix: '/a' } }), /not within exact \/a/);
  assert.match(under({ uri: { regex: '/a.*' } }, { uri: { prefix: '/a' } }), /not within regex/);
  assert.match(under({}, { uri: { regex: '/a.*' } }), /merged/, 'a regex under no uri match is fine');
  assert.match(under({ ignoreUriCase: true }, {}), /ignoreUriCase differs/);
  assert.match(under({ port: 1 }, { port: 2 }), /port 2 is not 1/);
  assert.match(under({ sourceLabels: { app: 'web' } }, { sourceLabels: { app: 'ops' } }), /sourceLabels.app ops is not web/);
  assert.match(under({ sourceNamespace: 'a' }, {}), /sourceNamespace is not a/, 'as in Istio: the leaf must repeat the root\'s sourceNamespace');
  assert.match(under({ headers: [{ name: 'x', match: { present: true } }] }, { headers: [{ name: 'x', match: { exact: '1' } }] }), /merged/);
  assert.match(under({ headers: [{ name: 'x', match: { exact: '1' } }] }, { headers: [{ name: 'x', match: { present: true } }] }), /headers.x: present is not within exact 1/);
});

test('expandDelegates: one level; a delegate in another namespace is found by its namespace', () => {
  const leaf: VirtualService = { kind: 'VirtualService', name: 'leaf', hosts: [], http: [rule({ name: 'l' })], tcp: [], tls: [], namespace: 'team', hostRefs: [], ref: { source: 'x', index: 1 } };
  const root: VirtualService = { kind: 'VirtualService', name: 'root', hosts: ['api'], http: [rule({ name: 'r', delegate: { name: 'leaf', namespace: 'team' }, route: [] }), rule({ name: 'last' })], tcp: [], tls: [], namespace: 'default', hostRefs: [], ref: { source: 'x', index: 0 } };
  const seen: string[] = [];
  const out = expandDelegates(root, (name, ns) => (seen.push(`${ns}/${name}`), name === 'leaf' && ns === 'team' ? leaf : undefined), 'default');
  assert.deepEqual(seen, ['team/leaf']);
  assert.deepEqual(out.map((r) => r.name), ['r-l', 'last']);
  assert.deepEqual(expandDelegates(root, () => undefined, 'default').map((r) => r.name), ['last'], 'an unknown delegate adds nothing (validation refuses it)');
});
