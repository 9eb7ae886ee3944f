// The agent on a private etcd and the dev environment's Docker: put → compose file on disk, compose's own time,
// an idle agent's etcd writes and compose runs per minute, and its resident memory.
// Needs `scripts/dev-env.sh up` (DOCKER_HOST and the test images) and etcd-server installed.
import { spawn } from 'node:child_process';
import { readFileSync, watch } from 'node:fs';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import { startAgent } from '../../agent/agent.js';
import { systemClock } from '../../agent/core/clock.js';
import { silentLogger } from '../../agent/core/logger.js';
import { keys } from '../../agent/core/model/keys.js';
import { projectName } from '../../agent/core/model/ids.js';
import { startEtcd, freePort } from '../../test/helpers/etcd.js';
import { ROOT, tempDir } from '../../test/helpers/paths.js';
import { localMesh, putDocs, randomPortBase } from '../../test/helpers/local-mesh.js';
import { waitFor } from '../../test/helpers/wait.js';
import { report } from './stats.js';
import { execFileSync } from 'node:child_process';

// Each test file gets its own xDS port, so a running agent or demo on 15010 is never in the way.
const xdsPort = await freePort();

const CHANGES = Number(process.env.BENCH_CHANGES ?? 50);
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 60);
const SIDECAR = process.env.MESHLET_TEST_SIDECAR_IMAGE ?? 'meshlet-test/envoy-standin:1';

const etcdServer = await startEtcd();
const etcd = new Etcd3({ hosts: etcdServer.url });
const node = `bench-${Math.random().toString(36).slice(2, 6)}`;
const prefix = '/bench';
const base = randomPortBase();
const stateDir = tempDir('meshlet-bench-agent-');
const composeFile = join(stateDir, 'compose/docker-compose.yml');
const opts = {
  node, etcd: { endpoints: [etcdServer.url], prefix, retries: 0 }, stateDir, advertiseAddress: '127.0.0.1', xdsPort, compose: 'auto' as const,
  sidecarImage: SIDECAR, leaseTtl: 10, adminPorts: { from: base + 10, to: base + 19 }, resyncInterval: 30,
};
const abort = new AbortController();
const agent = await startAgent(opts, systemClock, silentLogger, abort.signal);
const mesh = localMesh(base, node);
const lastRev = await putDocs(etcd, prefix, mesh);
// The documents land one by one: wait until the whole mesh is applied, not just the first document.
await waitFor('first apply', () => (agent.reconciler.state.appliedRevision ?? 0) >= lastRev, 120_000);

// put → file on disk; then wait for compose to finish before the next change.
const toFile: number[] = [];
const composeMs: number[] = [];
for (let i = 0; i < CHANGES; i++) {
  const marker = `bench-${i}`;
  let seen = 0;
  const w = watch(join(stateDir, 'compose'), () => {
    if (!seen && readFileSync(composeFile, 'utf8').includes(marker)) seen = performance.now();
  });
  const runs = agent.reconciler.stats.composeRuns;
  const t0 = performance.now();
  await putDocs(etcd, prefix, mesh.replace('GREETING: hello', `GREETING: ${marker}`));
  await waitFor('the new file', () => seen || (readFileSync(composeFile, 'utf8').includes(marker) && (seen = performance.now())), 30_000, 1);
  w.close();
  toFile.push(seen - t0);
  await waitFor('compose to finish', () => agent.reconciler.stats.composeRuns > runs && agent.reconciler.triggers, 60_000, 5);
  await waitFor('the apply', () => (agent.reconciler.state.appliedRevision ?? 0) >= agent.source.current()!.revision, 60_000, 5);
  composeMs.push(agent.reconciler.stats.lastComposeMs);
}
report('agent_put_to_compose_file', 'ms', toFile);
report('agent_compose_up_one_change', 'ms', composeMs, { compose: 'docker-compose v1' });
await agent.stop();

// An idle agent as a real process: etcd revisions (every write bumps it) and compose runs over a period, and its RSS.
const child = spawn(process.execPath, [join(ROOT, 'dist/agent/bin.js'), 'agent', '--node', node, '--etcd', etcdServer.url, '--prefix', prefix, '--state-dir', stateDir, '--advertise-address', '127.0.0.1', '--sidecar-image', SIDECAR, '--xds-port', String(xdsPort), '--admin-ports', `${base + 10}-${base + 19}`], { stdio: ['ignore', 'ignore', 'pipe'] });
let childErr = '';
child.stderr!.on('data', (b: Buffer) => (childErr = (childErr + b.toString()).slice(-4000)));
child.once('exit', (code) => { if (code !== null && code !== 0) console.error(`agent exited with ${code}: ${childErr}`); });
const k = keys(prefix);
await waitFor('the agent to report', async () => JSON.parse((await etcd.get(k.nodeStatus(node)).string()) ?? '{}').pid === child.pid, 60_000);
await new Promise((r) => setTimeout(r, 3_000));
const rev0 = Number((await etcd.get('/none').exec()).header.revision);
const runs0 = JSON.parse((await etcd.get(k.nodeStatus(node)).string())!).composeRuns as number;
const rss: number[] = [];
for (let s = 0; s < IDLE_SECONDS; s += 5) {
  await new Promise((r) => setTimeout(r, 5_000));
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
  rss.push(Number(m![1]) / 1024);
}
const rev1 = Number((await etcd.get('/none').exec()).header.revision);
const runs1 = JSON.parse((await etcd.get(k.nodeStatus(node)).string())!).composeRuns as number;
const perMinute = (x: number) => (x * 60) / IDLE_SECONDS;
report('agent_idle_etcd_writes_per_minute', 'writes/min', [perMinute(rev1 - rev0)], { seconds: IDLE_SECONDS });
report('agent_idle_compose_runs_per_minute', 'runs/min', [perMinute(runs1 - runs0)], { seconds: IDLE_SECONDS });
report('agent_idle_rss', 'MiB', rss, { workloads: 3 });
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
execFileSync('docker-compose', ['-p', projectName(node), '-f', composeFile, 'down', '-t', '1'], { stdio: 'pipe' });
etcd.close();
await etcdServer.stop();
