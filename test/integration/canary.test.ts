// meshlet route / promote / rollback against a real etcd: exact weights, history, checks, and races.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { listing, uniquePrefix } from '../helpers/etcd.js';
import { etcdForFile } from '../helpers/etcd-cli.js';
import { fixture } from '../helpers/paths.js';
import { ConflictError } from '../../agent/core/errors.js';
import type { Issue } from '../../agent/core/model/issues.js';
import { fromEtcdEntry } from '../../agent/core/documents/etcd-docs.js';
import { routeCommand } from '../../agent/commands/canary.js';

const SERVICES = fixture('bookinfo', 'services.yaml');
const ROUTES = fixture('bookinfo', 'routes.yaml');

const { env, cli } = etcdForFile();

async function bookinfo(): Promise<string> {
  const prefix = uniquePrefix();
  const res = await cli(prefix, 'apply', '-f', SERVICES, '-f', ROUTES);
  assert.equal(res.code, 0, res.err);
  return prefix;
}

type Vs = { spec: { hosts: string[]; http: { name?: string; route: unknown[] }[] } } & Record<string, unknown>;
async function stored(prefix: string, name: string): Promise<{ raw: string; vs: Vs }> {
  const res = await env.client.get(`${prefix}/desired/routes/${name}`).exec();
  const kv = res.kvs[0]!;
  // Whatever the verbs write must read back as a valid document.
  const issues: Issue[] = [];
  assert.ok(fromEtcdEntry(prefix, kv.key.toString(), kv.value.toString(), Number(kv.mod_revision), issues), JSON.stringify(issues));
  return { raw: kv.value.toString(), vs: JSON.parse(kv.value.toString()) as Vs };
}
const dest = (subset: string, weight: number) => ({ destination: { host: 'reviews', subset }, weight });
const history = async (prefix: string, name: string) => JSON.parse((await env.client.get(`${prefix}/history/routes/${name}`).string()) ?? 'null') as unknown;

describe('meshlet route, promote, rollback', () => {
  test('a round trip sets exact weights on the catch-all route only, and rollback restores the stored document byte for byte', async () => {
    const prefix = await bookinfo();
    const original = await stored(prefix, 'reviews');
    const originalRoute = original.vs.spec.http[1]!.route;

    const r1 = await cli(prefix, 'route', 'reviews', '--weights', 'v1=50,v2=50');
    assert.equal(r1.code, 0, r1.err);
    const rev1 = Number((await env.client.get(`${prefix}/desired/routes/reviews`).exec()).kvs[0]!.mod_revision);
    assert.equal(r1.out, `VirtualService reviews, http route 2 ("default"):\n  old weights: v1=90,v3=10\n  new weights: v1=50,v2=50\nwritten at etcd revision ${rev1}; the old weights are kept for meshlet rollback`);
    const s1 = await stored(prefix, 'reviews');
    assert.deepEqual(s1.vs.spec.http[1]!.route, [dest('v1', 50), dest('v2', 50)]);
    // The match route above and every other field of the catch-all stay as they were.
    assert.deepEqual(s1.vs.spec.http[0], original.vs.spec.http[0]);
    assert.deepEqual({ ...s1.vs.spec.http[1], route: null }, { ...original.vs.spec.http[1], route: null });
    assert.deepEqual(await history(prefix, 'reviews'), [{ route: originalRoute }]);

    const r2 = await cli(prefix, 'promote', 'reviews', 'v3');
    assert.equal(r2.code, 0, r2.err);
    assert.match(r2.out, /old weights: v1=50,v2=50\n {2}new weights: v3=100\n/);
    assert.deepEqual((await stored(prefix, 'reviews')).vs.spec.http[1]!.route, [dest('v3', 100)]);

    const b1 = await cli(prefix, 'rollback', 'reviews');
    assert.equal(b1.code, 0, b1.err);
    assert.match(b1.out, /old weights: v3=100\n {2}new weights: v1=50,v2=50\nwritten at etcd revision \d+; 1 older step left to roll back$/);
    assert.equal((await stored(prefix, 'reviews')).raw, s1.raw);

    const b2 = await cli(prefix, 'rollback', 'reviews');
    assert.equal(b2.code, 0, b2.err);
    assert.match(b2.out, /old weights: v1=50,v2=50\n {2}new weights: v1=90,v3=10\n/);
    assert.equal((await stored(prefix, 'reviews')).raw, original.raw);

    const b3 = await cli(prefix, 'rollback', 'reviews');
    assert.equal(b3.code, 2);
    assert.equal(b3.err, `error: nothing to roll back:\n  - ${prefix}/history/routes/reviews: no rollback history for Service reviews: meshlet route or promote has not changed its weights since the route was applied, or every change was rolled back already`);
  });

  test('route creates a VirtualService for a service without one; rollback removes it again', async () => {
    const prefix = await bookinfo();
    const res = await cli(prefix, 'route', 'productpage', '--weights', 'v1=100');
    assert.equal(res.code, 0, res.err);
    assert.match(res.out, /^VirtualService productpage created for Service productpage:\n {2}old weights: none \(no VirtualService: round robin over all versions\)\n {2}new weights: v1=100\n/);
    const { vs } = await stored(prefix, 'productpage');
    assert.deepEqual(vs, { apiVersion: 'networking.istio.io/v1', kind: 'VirtualService', metadata: { name: 'productpage' }, spec: { hosts: ['productpage'], http: [{ route: [{ destination: { host: 'productpage', subset: 'v1' }, weight: 100 }] }] } });
    assert.deepEqual(await history(prefix, 'productpage'), [{ created: true }]);
    const back = await cli(prefix, 'rollback', 'productpage');
    assert.equal(back.code, 0, back.err);
    assert.equal(await env.client.get(`${prefix}/desired/routes/productpage`).string(), null);
  });

  test('the same weights again write nothing', async () => {
    const prefix = await bookinfo();
    const before = await listing(env.client, prefix);
    const res = await cli(prefix, 'route', 'reviews', '--weights', 'v1=90,v3=10');
    assert.equal(res.code, 0, res.err);
    assert.match(res.out, /weights already v1=90,v3=10; nothing written/);
    assert.deepEqual(await listing(env.client, prefix), before);
  });

  test('weights are checked by the core validation, and a refused shift writes nothing', async () => {
    const prefix = await bookinfo();
    const before = await listing(env.client, prefix);
    const cases: [string[], RegExp][] = [
      [['route', 'reviews', '--weights', 'v1=50,v9=50'], /spec\.http\[1\]\.route\[1\]\.destination\.subset: Service reviews has no subset v9/],
      [['route', 'reviews', '--weights', 'v1=50,v2=60'], /spec\.http\[1\]\.route: expected weights adding up to 100, got 50 \+ 60 = 110/],
      [['route', 'reviews', '--weights', 'v1=fifty'], /--weights: expected SUBSET=WEIGHT with a weight from 0 to 100/],
      [['route', 'reviews', '--weights', 'v1=50,v1=50'], /--weights: v1 is given twice/],
      [['route', 'nosuch', '--weights', 'v1=100'], /no Service named "nosuch" in etcd/],
      [['promote', 'reviews', 'v7'], /Service reviews has no subset or version "v7"/],
      // Without a DestinationRule, a service's versions are its subsets.
      [['route', 'productpage', '--weights', 'v1=50,v2=50'], /Service productpage has no subset v2 .*known subsets: v1/],
    ];
    for (const [args, message] of cases) {
      const res = await cli(prefix, ...args);
      assert.equal(res.code, 2, `${args.join(' ')}: ${res.err}`);
      assert.match(res.err, message);
    }
    assert.deepEqual(await listing(env.client, prefix), before);
  });

  test('a change to the route between read and write is a conflict; nothing of ours is written', async () => {
    const prefix = await bookinfo();
    let winner = '';
    await assert.rejects(
      routeCommand({ service: 'reviews', weights: 'v1=10,v2=90', etcd: env.etcd.url, prefix }, () => {}, () => {}, {
        beforeCommit: async () => {
          const other = await cli(prefix, 'route', 'reviews', '--weights', 'v1=30,v3=70');
          assert.equal(other.code, 0, other.err);
          winner = (await stored(prefix, 'reviews')).raw;
        },
      }),
      (err) => err instanceof ConflictError && err.message === 'someone else changed VirtualService reviews (or its rollback history) while meshlet route ran; nothing was written. Check it with meshlet get routes reviews and retry',
    );
    assert.equal((await stored(prefix, 'reviews')).raw, winner);
    assert.deepEqual((await stored(prefix, 'reviews')).vs.spec.http[1]!.route, [dest('v1', 30), dest('v3', 70)]);
    assert.equal((await history(prefix, 'reviews') as unknown[]).length, 1);
  });

  test('racing invocations: each exits 0 or 3, the route holds a winner\'s weights and the history one step per winner', async () => {
    let losers = 0;
    for (let round = 0; round < 5 && losers === 0; round++) {
      const prefix = await bookinfo();
      const weights = ['v1=10,v2=90', 'v1=20,v2=80', 'v1=30,v2=70', 'v1=40,v2=60', 'v1=60,v2=40'];
      const results = await Promise.all(weights.map((w) => cli(prefix, 'route', 'reviews', '--weights', w)));
      for (const r of results) assert.ok(r.code === 0 || r.code === 3, r.err);
      const won = weights.filter((_, i) => results[i]!.code === 0);
      losers += results.filter((r) => r.code === 3).length;
      for (const r of results.filter((x) => x.code === 3)) assert.match(r.err, /^error: someone else changed VirtualService reviews .*retry$/);
      assert.ok(won.length >= 1);
      const now = (await stored(prefix, 'reviews')).vs.spec.http[1]!.route as { destination: { subset: string }; weight: number }[];
      assert.ok(won.includes(now.map((d) => `${d.destination.subset}=${d.weight}`).join(',')));
      assert.equal((await history(prefix, 'reviews') as unknown[]).length, won.length);
    }
    assert.ok(losers > 0, 'no race was lost in 5 rounds');
  });

  test('racing creations of the same VirtualService: Create == 0 lets exactly one win', async () => {
    const prefix = await bookinfo();
    const results = await Promise.all(['v1=100', 'v1=100'].map((w) => cli(prefix, 'route', 'productpage', '--weights', w)));
    const codes = results.map((r) => r.code).sort();
    // Both may run one after the other (then the second finds nothing to change); never two creations.
    assert.ok(codes.every((c) => c === 0 || c === 3), JSON.stringify(results));
    assert.deepEqual(await history(prefix, 'productpage'), [{ created: true }]);
  });
});
