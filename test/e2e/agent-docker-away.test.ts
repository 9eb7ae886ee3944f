// Docker away for 30 s (the agent reaches dockerd through a proxy that stops listening) while triggers keep
// coming (a registry write every 50 ms, a drift check every second): the failing passes back off, one error line
// says why, and when Docker is back one line says for how long and how many passes failed; a new change applies.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Etcd3 } from 'etcd3';
import { startAgent, type RunningAgent } from '../../agent/agent.js';
import { systemClock } from '../../agent/core/clock.js';
import { keys } from '../../agent/core/model/keys.js';
import { startEtcd, type TestEtcd, freePort } from '../helpers/etcd.js';
import { TcpProxy } from '../helpers/tcp-proxy.js';
import { tempDir } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { putDocs, randomPortBase } from '../helpers/local-mesh.js';
import { composeDown } from '../helpers/agent-traffic.js';
import { RecordingLogger, type LogLine } from '../helpers/recording-logger.js';

const xdsPort = await freePort();
const BUSYBOX = process.env.MESHLET_TEST_BUSYBOX_IMAGE ?? 'meshlet-test/busybox:1';
const SIDECAR = process.env.MESHLET_TEST_SIDECAR_IMAGE ?? 'meshlet-test/envoy-standin:1';
const DOCKER_SOCKET = (process.env.DOCKER_HOST ?? 'unix:///var/run/docker.sock').replace(/^unix:\/\//, '');
const WINDOW_MS = 30_000;
const node = `away-${Math.random().toString(36).slice(2, 8)}`;
const prefix = `/a-${node}`;
const k = keys(prefix);
const base = randomPortBase();
const stateDir = tempDir('meshlet-agent-docker-away-');
const log = new RecordingLogger();
let etcdServer: TestEtcd;
let etcd: Etcd3;
let docker: TcpProxy;
let agent: RunningAgent;

const mesh = (greeting: string) => `
apiVersion: meshlet.dev/v1
kind: Service
metadata: { name: web }
spec:
  port: ${base}
  versions:
    v1:
      image: ${BUSYBOX}
      command: ["sh", "-c", "mkdir -p /tmp/www && echo ok > /tmp/www/health && exec httpd -f -p 127.0.0.1:$PORT -h /tmp/www"]
      env: { GREETING: ${greeting} }
      nodes: [${node}]
      health: { http: /health, interval: 500ms, timeout: 400ms, retries: 2 }
`;

before(async () => {
  etcdServer = await startEtcd();
  etcd = new Etcd3({ hosts: etcdServer.url });
  docker = await TcpProxy.toUnixSocket(DOCKER_SOCKET);
  agent = await startAgent({
    node, etcd: { endpoints: [etcdServer.url], prefix, retries: 0 }, stateDir, advertiseAddress: '127.0.0.1', xdsPort, compose: 'auto', sidecarImage: SIDECAR,
    leaseTtl: 10, adminPorts: { from: base + 10, to: base + 19 }, resyncInterval: 1, dockerHost: `tcp://127.0.0.1:${docker.port}`,
  }, systemClock, log, new AbortController().signal);
});

after(async () => {
  await docker?.resume();
  await agent?.stop();
  composeDown(node, stateDir);
  etcd?.close();
  await docker?.close();
  await etcdServer?.stop();
});

const brief = (lines: LogLine[]) => lines.map((l) => `${l.level} ${l.msg} ${JSON.stringify(l.fields)}`).join('\n');

test('Docker away for 30 s under a storm of triggers: one error line, passes back off; its return is one line with the count and duration', async () => {
  const rev = await putDocs(etcd, prefix, mesh('hello'));
  await waitFor('applied and registered', async () => (agent.reconciler.state.appliedRevision ?? 0) >= rev && (await etcd.get(k.instance('web', 'v1', node)).string()) !== null, 60_000);

  const passesBefore = agent.reconciler.stats.passes;
  const failedBefore = agent.reconciler.stats.failedPasses;
  const t0 = Date.now();
  await docker.suspend('refuse');
  // Another node's instance rewritten every 50 ms: each write wakes the loop ("registry").
  let n = 0;
  const storm = setInterval(() => void etcd.put(k.instance('other', 'v1', 'node-z')).value(JSON.stringify({ service: 'other', version: 'v1', node: 'node-z', address: '127.0.0.9', port: 9000 + (n++ % 100) })).exec().catch(() => {}), 50);
  await new Promise((r) => setTimeout(r, WINDOW_MS));
  clearInterval(storm);
  const passes = agent.reconciler.stats.passes - passesBefore;
  const window = log.since(t0);
  const failed = window.filter((l) => /^pass failed/.test(l.msg));
  console.log(`Docker away ${WINDOW_MS / 1000} s, ${n} registry writes: ${passes} passes, ${window.length} log lines at info or above (${failed.length} "pass failed")`);
  console.log(brief(window));

  // One line per reason: the refused connection; before it, when the cut caught a request in flight (drift checks
  // every second keep passes coming), one more for that request's own error ("socket hang up").
  assert.ok(failed.length >= 1 && failed.length <= 2, `one "pass failed" line per reason:\n${brief(window)}`);
  for (const f of failed) assert.equal(f.level, 'error');
  assert.match(String(failed.at(-1)!.fields.error), /Docker: could not list the containers of project meshlet-away-.*ECONNREFUSED/);
  if (failed.length === 2) assert.match(String(failed[0]!.fields.error), /socket hang up|ECONNRESET|aborted/, `the first line is a request cut in flight:\n${brief(window)}`);
  assert.ok(window.filter((l) => /docker event feed/.test(l.msg)).length <= 1, `the event feed's loss is logged once:\n${brief(window)}`);
  assert.ok(window.length <= 3 + failed.length, `at most ${3 + failed.length} lines in the window:\n${brief(window)}`);
  // Backoff 0.5 s, 1 s, 2 s … (jittered, capped at 30 s) gives about 7 passes in 30 s; a storm of 600 triggers must not add to them.
  assert.ok(passes >= 3 && passes <= 12, `${passes} passes in the window`);

  const back = Date.now();
  await docker.resume();
  const recovered = await waitFor('the recovery line', () => log.since(back, /^pass recovered/)[0], 60_000);
  console.log(`recovered ${recovered.at - back} ms after Docker came back: ${JSON.stringify(recovered.fields)}`);
  assert.equal(recovered.level, 'info');
  assert.equal(recovered.fields.failures, agent.reconciler.stats.failedPasses - failedBefore, 'the line counts every failed pass');
  assert.ok(Number(recovered.fields.failures) >= passes, 'every pass of the window failed');
  assert.ok(Number(recovered.fields.forMs) >= WINDOW_MS, `failing for ${recovered.fields.forMs} ms`);
  assert.match(String(recovered.fields.lastError), /ECONNREFUSED/);
  await waitFor('the event feed to say it is back', () => log.since(back, /^docker event feed back/)[0], 30_000);

  // The loop is not stuck in a long backoff: a desired change applies (compose recreates web-v1).
  const runs = agent.reconciler.stats.composeRuns;
  const rev2 = await putDocs(etcd, prefix, mesh('bonjour'));
  await waitFor('the change to apply', () => agent.reconciler.stats.composeRuns > runs && (agent.reconciler.state.appliedRevision ?? 0) >= rev2, 30_000);
  assert.deepEqual(log.since(back, /^pass failed/), [], 'no new failure');
});
