// Registration latency (health verdict → key visible in etcd, and back), and an idle node's etcd writes
// per minute with 200 registered instances (target: keepalives only, which are not writes).
import { Etcd3 } from 'etcd3';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import { keys } from '../../agent/core/model/keys.js';
import { createEtcd } from '../../agent/adapters/etcd/etcd-client.js';
import { NodeLease } from '../../agent/adapters/etcd/etcd-lease.js';
import { Registry } from '../../agent/adapters/etcd/etcd-registry.js';
import { startEtcd } from '../../test/helpers/etcd.js';
import { report } from './stats.js';

const FLIPS = Number(process.env.BENCH_FLIPS ?? 100);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
const server = await startEtcd();
const prefix = '/bench';
const k = keys(prefix);
const agentEtcd = createEtcd({ endpoints: [server.url], prefix, retries: 0 });
const observer = new Etcd3({ hosts: server.url });
const lease = new NodeLease(agentEtcd, 10, systemClock, silentLogger);
const { id } = await lease.start();
const registry = new Registry({ etcd: agentEtcd, prefix, node: 'node-a', lease: id, clock: systemClock, log: silentLogger });

// A watcher on the registry sees each key appear and vanish; the time is taken from the verdict (the call).
const seen = new Map<string, (t: number) => void>();
const watcher = await observer.watch().prefix(k.registry).create();
watcher.on('put', (kv) => seen.get(`put ${kv.key.toString()}`)?.(performance.now()));
watcher.on('delete', (kv) => seen.get(`delete ${kv.key.toString()}`)?.(performance.now()));
const until = (what: string) => new Promise<number>((resolve) => seen.set(what, resolve));

const up: number[] = [];
const down: number[] = [];
const key = k.instance('svc', 'v1', 'node-a');
for (let i = 0; i < FLIPS; i++) {
  const visible = until(`put ${key}`);
  const t0 = performance.now();
  void registry.register({ service: 'svc', version: 'v1', address: '127.0.0.1', port: 9000, healthySince: new Date().toISOString() });
  up.push((await visible) - t0);
  const gone = until(`delete ${key}`);
  const t1 = performance.now();
  void registry.deregister('svc', 'v1');
  down.push((await gone) - t1);
}
report('registry_healthy_to_key_visible', 'ms', up);
report('registry_unhealthy_to_key_gone', 'ms', down);

// 200 instances registered, then an idle period: every write bumps etcd's revision, keepalives do not.
await registry.setAll(Array.from({ length: 200 }, (_, i) => ({ service: `svc-${Math.floor(i / 2)}`, version: `v${i % 2}`, address: `127.0.1.${1 + (i % 200)}`, port: 10000 + i })));
await new Promise((r) => setTimeout(r, 1_000));
const rev0 = Number((await observer.get('/none').exec()).header.revision);
await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
const rev1 = Number((await observer.get('/none').exec()).header.revision);
report('registry_idle_writes_per_minute_200_instances', 'writes/min', [((rev1 - rev0) * 60) / IDLE_SECONDS], { seconds: IDLE_SECONDS, keys: (await observer.getAll().prefix(k.registry).keys()).length });

await watcher.cancel();
registry.stop();
await lease.stop();
agentEtcd.close();
observer.close();
await server.stop();
