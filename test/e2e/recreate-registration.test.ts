// A desired change that makes compose recreate an app container (one env var changed): the instance's registration
// changes only as it really does — deleted once when the old container stops, put once when the new one is healthy
// — with no write for the states in between (stopped → starting → healthy). Counted by a watch on the keys.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3, type IKeyValue } from 'etcd3';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { systemClock } from '../../agent/core/clock.js';
import { keys } from '../../agent/core/model/keys.js';
import { startEtcd, type TestEtcd, freePort } from '../helpers/etcd.js';
import { tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { putDocs, randomPortBase } from '../helpers/local-mesh.js';
import { composeDown, containerIds } from '../helpers/agent-traffic.js';
import { RecordingLogger } from '../helpers/recording-logger.js';

const xdsPort = await freePort();
const BUSYBOX = process.env.MESHLET_TEST_BUSYBOX_IMAGE ?? 'meshlet-test/busybox:1';
const SIDECAR = process.env.MESHLET_TEST_SIDECAR_IMAGE ?? 'meshlet-test/envoy-standin:1';
const node = `recr-${Math.random().toString(36).slice(2, 8)}`;
const prefix = `/rc-${node}`;
const k = keys(prefix);
const base = randomPortBase();
const stateDir = tempDir('meshlet-agent-recreate-');
const log = new RecordingLogger();
let etcdServer: TestEtcd;
let etcd: Etcd3;
let agent: RunningAgent;

const HTTPD = 'mkdir -p /tmp/www && echo ok > /tmp/www/health && exec httpd -f -p 127.0.0.1:$PORT -h /tmp/www';
// One version per kind of health: probed by the agent (http), Docker's own (exec), none (healthy when running).
const mesh = (greeting: string) => `
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: web }
spec:
  port: ${base}
  versions:
    probed:
      image: ${BUSYBOX}
      command: ["sh", "-c", ${JSON.stringify(HTTPD)}]
      env: { GREETING: ${greeting} }
      nodes: [${node}]
      health: { http: /health, interval: 500ms, timeout: 400ms, retries: 2 }
    docker:
      image: ${BUSYBOX}
      port: ${base + 1}
      command: ["sh", "-c", ${JSON.stringify(HTTPD)}]
      env: { GREETING: ${greeting} }
      nodes: [${node}]
      health: { exec: ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:${base + 1}/health"], interval: 1s, timeout: 1s, retries: 2 }
    plain:
      image: ${BUSYBOX}
      port: ${base + 2}
      command: ["sh", "-c", ${JSON.stringify(HTTPD)}]
      env: { GREETING: ${greeting} }
      nodes: [${node}]
`;
const VERSIONS = ['docker', 'plain', 'probed'];

before(async () => {
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
  agent = await startAgent({
    node, etcd: { endpoints: [etcdServer.url], prefix, retries: 0 }, stateDir, advertiseAddress: '127.0.0.1', xdsPort, compose: 'auto', sidecarImage: SIDECAR,
    leaseTtl: 10, adminPorts: { from: base + 10, to: base + 19 }, resyncInterval: 2,
  }, systemClock, log, new AbortController().signal);
});

after(async () => {
  await agent?.stop();
  composeDown(node, stateDir);
  etcd?.close();
  await etcdServer?.stop();
});

const registeredContainer = async (version: string) => {
  const v = await etcd.get(k.instance('web', version, node)).string();
  return v ? (JSON.parse(v) as { container?: string }).container : undefined;
};

test('one env var changed recreates every version\'s container: per instance one delete when it stops, one put when healthy, nothing in between', async () => {
  await putDocs(etcd, prefix, mesh('hello'));
  const before = await waitFor('all three registered', async () => {
    const ids = await containerIds(node);
    for (const v of VERSIONS) if (!ids[`web-${v}`] || (await registeredContainer(v)) !== ids[`web-${v}`]) return undefined;
    return ids;
  }, 60_000);

  // Every write to an instance's keys, one entry per revision: "put" / "delete" (registry and naming go together).
  const ports: Record<string, number> = { probed: base, docker: base + 1, plain: base + 2 };
  const versionOf = new Map(VERSIONS.flatMap((v) => [[k.instance('web', v, node), v], [k.namingEndpoint('web', `127.0.0.1:${ports[v]}`), v]] as const));
  const writes = new Map<string, Map<string, string[]>>(VERSIONS.map((v) => [v, new Map()]));
  const record = (op: string) => (kv: IKeyValue) => {
    const key = kv.key.toString();
    const version = versionOf.get(key);
    if (!version) return;
    const byRev = writes.get(version)!;
    const rev = String(kv.mod_revision);
    byRev.set(rev, [...(byRev.get(rev) ?? []), `${op} ${key.startsWith(k.naming) ? 'naming' : 'registry'}`]);
  };
  const watchers = await Promise.all([k.registry, k.naming].map((p) => etcd.watch().prefix(p).create()));
  for (const w of watchers) {
    w.on('put', record('put'));
    w.on('delete', record('delete'));
  }
  const t0 = Date.now();
  await putDocs(etcd, prefix, mesh('bonjour'));
  const after = await waitFor('all three recreated and registered again', async () => {
    const ids = await containerIds(node);
    for (const v of VERSIONS) if (ids[`web-${v}`] === before[`web-${v}`] || (await registeredContainer(v)) !== ids[`web-${v}`]) return undefined;
    return ids;
  }, 60_000);
  // Later writes would show here too: give any straggler (a late probe, the next passes) time to come.
  await new Promise((r) => setTimeout(r, 3_000));
  await Promise.all(watchers.map((w) => w.cancel()));

  const health = log.since(t0, /^instance health changed/).map((l) => `${l.at - t0} ${l.fields.instance}: ${l.fields.from} → ${l.fields.to} (${l.fields.detail})`);
  const seen = Object.fromEntries(VERSIONS.map((v) => [v, [...writes.get(v)!.values()].map((ops) => ops.sort().join(' + '))]));
  console.log(`registry writes per instance during one recreate: ${JSON.stringify(seen)}`);
  console.log(`health changes:\n${health.join('\n')}`);
  const states = (v: string) => log.since(t0, /^instance health changed/).filter((l) => l.fields.instance === `web/${v}`).map((l) => l.fields.to);
  for (const v of VERSIONS) {
    assert.notEqual(after[`web-${v}`], before[`web-${v}`], `web-${v} was recreated`);
    assert.deepEqual(seen[v], ['delete naming + delete registry', 'put naming + put registry'], `web-${v}: one delete, then one put`);
  }
  // Each went through the states it really had, once: the old one stopped, the new one started (checked) and is healthy.
  assert.deepEqual(states('probed'), ['stopped', 'starting', 'healthy']);
  assert.deepEqual(states('docker'), ['stopped', 'starting', 'healthy']);
  assert.deepEqual(states('plain'), ['stopped', 'healthy']);
  assert.deepEqual(log.since(t0, /^(de)?registered$/).map((l) => `${l.msg} ${l.fields.instance}`).sort(), VERSIONS.flatMap((v) => [`deregistered web/${v}`, `registered web/${v}`]).sort(), 'one line per etcd write');
});
