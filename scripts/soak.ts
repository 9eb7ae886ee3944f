// Soak run of one meshlet agent and its mesh under random faults (not in CI; scripts/soak.sh runs it):
//   node dist/scripts/soak.js --dev-dir /tmp/meshlet-soak [--minutes 30] [--seed N] [--base 28400]
// For --minutes it plays a seeded, reproducible sequence of faults (etcd cut through a proxy, etcd frozen,
// the private dockerd restarted, the agent SIGKILLed and started again, route weights and env changes pushed),
// and after each one waits until every invariant holds again (scripts/soak/checks.ts), with light traffic through
// web's sidecar all along. At the end it checks once more, at rest, and prints one JSON line per figure.
// Exit 1 when an invariant did not hold (what differed is printed), 2 on bad flags or environment.
import { mkdirSync, mkdtempSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { projectName } from '../agent/core/model/ids.js';
import { createEtcd } from '../agent/adapters/etcd/etcd-client.js';
import { createDocker } from '../agent/adapters/docker/docker.js';
import { loadTemplates } from '../agent/adapters/files/templates.js';
import { startEtcd, freePort } from '../test/helpers/etcd.js';
import { TcpProxy } from '../test/helpers/tcp-proxy.js';
import { putDocs } from '../test/helpers/local-mesh.js';
import { SIDECAR, composeDown, startLoad, trafficMesh, type Load } from '../test/helpers/agent-traffic.js';
import { Rng, describe, faultLabel, nextFault, type Fault } from './soak/plan.js';
import type { Observed, Target } from './soak/observe.js';
import { atRest, converge, idsOf } from './soak/converge.js';
import { play, type Rig } from './soak/faults.js';
import { PrivateDocker, SoakAgent, type AgentExit } from './soak/harness.js';
import { Tally } from './soak/report.js';

const LEASE_TTL_MS = 10_000; // spawnAgentProcess passes --lease-ttl 10
const WORKLOADS = ['api-v1', 'api-v2', 'web-v1'];
const t0 = performance.now();
const say = (line: string) => {
  const s = Math.round((performance.now() - t0) / 1000);
  process.stderr.write(`[soak ${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}] ${line}\n`);
};
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface Options {
  minutes: number;
  seed: number;
  devDir: string;
  devEtcdPort: string;
  base: number;
  recoveryMs: number;
  runDir: string;
}

interface Soak extends Rig {
  target: Target;
  /** Started once the mesh is up. */
  load?: Load;
  stateDir: string;
  node: string;
  base: number;
}

const opts = options();
say(`seed ${opts.seed}, ${opts.minutes} min, ports ${opts.base}-${opts.base + 19}, run dir ${opts.runDir} (replay: scripts/soak.sh --minutes ${opts.minutes} --seed ${opts.seed})`);
const tally = new Tally();
const rng = new Rng(opts.seed);
let rig: Soak | undefined;
let stopAsked = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (stopAsked) {
      rig?.agent.killNow(); // etcd goes with this process (startEtcd's exit hook); the project stays, and the next run removes it
      process.exit(130);
    }
    stopAsked = true;
    say(`${sig}: ending after this fault, then the final check and cleanup (again to abort)`);
  });
}
rig = await setUp(opts);
let shutdown = { ms: 0, code: null as number | null, signal: null as NodeJS.Signals | null };
try {
  await bringUp(rig);
  await soak(rig, opts);
  await finalCheck(rig, opts);
} catch (err) {
  tally.problem(`the soak itself failed: ${(err as Error).stack ?? String(err)}`);
} finally {
  shutdown = await tearDown(rig);
}
for (const l of tally.lines({ seed: opts.seed, minutes: opts.minutes, agentStarts: rig.agent.starts })) process.stdout.write(`${l}\n`);
process.stdout.write(`${JSON.stringify({ name: 'soak agent SIGTERM → exit at the end', unit: 'ms', value: shutdown.ms, code: shutdown.code, signal: shutdown.signal })}\n`);
if (!tally.ok) {
  process.stderr.write(`\nsoak: ${tally.problems.length} invariant(s) did not hold (seed ${opts.seed}; agent log ${join(opts.runDir, 'agent.log')}):\n`);
  for (const p of tally.problems) process.stderr.write(`- ${p}\n`);
}
process.exit(tally.ok ? 0 : 1);

function options(): Options {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: process.env.SOAK_MINUTES ?? '30' },
      seed: { type: 'string', default: process.env.SOAK_SEED },
      'dev-dir': { type: 'string', default: process.env.SOAK_DEV_DIR },
      'dev-etcd-port': { type: 'string', default: process.env.SOAK_DEV_ETCD_PORT ?? '23890' },
      base: { type: 'string', default: process.env.SOAK_BASE ?? '28400' },
      'recovery-timeout': { type: 'string', default: '120' },
      'run-dir': { type: 'string' },
    },
  });
  const fail = (msg: string): never => {
    process.stderr.write(`soak: ${msg}\n`);
    process.exit(2);
  };
  const minutes = Number(values.minutes);
  if (!(minutes > 0)) fail(`--minutes: expected a positive number, got ${values.minutes}`);
  const devDir = values['dev-dir'] ?? fail('--dev-dir (SOAK_DEV_DIR) is required: the soak restarts that dev env\'s dockerd');
  // Restarting a dockerd that other people's tests use would break them: only a private one, and only through DOCKER_HOST.
  if (devDir.replace(/\/+$/, '') === '/tmp/meshlet-dev') fail('--dev-dir must not be the shared dev env /tmp/meshlet-dev');
  if (process.env.DOCKER_HOST !== `unix://${devDir}/docker.sock`) fail(`DOCKER_HOST is ${process.env.DOCKER_HOST ?? 'unset'}, expected unix://${devDir}/docker.sock (eval "$(MESHLET_DEV_DIR=${devDir} scripts/dev-env.sh env)")`);
  const seed = values.seed !== undefined ? Number(values.seed) : Date.now() % 2 ** 31;
  if (!Number.isInteger(seed)) fail(`--seed: expected an integer, got ${values.seed}`);
  return {
    minutes, seed, devDir, devEtcdPort: values['dev-etcd-port']!, base: Number(values.base),
    recoveryMs: Number(values['recovery-timeout']) * 1000, runDir: values['run-dir'] ?? runDir(devDir, seed),
  };
}

/** `<dev dir>/runs/seed-<seed>-XXXXXX`: the agent's log and state dir, kept after the run (SOAK_CLEAN=1 removes the dev dir). */
function runDir(devDir: string, seed: number): string {
  mkdirSync(join(devDir, 'runs'), { recursive: true });
  return mkdtempSync(join(devDir, 'runs', `seed-${seed}-`));
}

async function setUp(o: Options): Promise<Soak> {
  const node = 'soak';
  const prefix = `/soak-${o.seed}`;
  const stateDir = join(o.runDir, 'state');
  const etcdServer = await startEtcd();
  const proxy = await TcpProxy.forUrl(etcdServer.url);
  const etcd = createEtcd({ endpoints: [etcdServer.url], prefix, retries: 1 });
  const xdsPort = await freePort();
  const setup = { node, etcdUrl: proxy.url, prefix, stateDir, xdsPort, base: o.base };
  const target: Target = {
    etcd, docker: createDocker(), node, prefix, stateDir, advertiseAddress: '127.0.0.1', sidecarImage: SIDECAR, xdsPort,
    adminPorts: { from: o.base + 10, to: o.base + 19 }, templates: await loadTemplates(),
  };
  await removeLeftovers(target);
  await putDocs(etcd, prefix, trafficMesh(o.base, node, { weights: { v1: 50, v2: 50 } }));
  const agent = new SoakAgent(setup, join(o.runDir, 'agent.log'));
  agent.start();
  say(`etcd ${etcdServer.url} (pid ${etcdServer.pid}) behind proxy ${proxy.url}; agent pid ${agent.pid}, xDS port ${xdsPort}, project ${projectName(node)}`);
  return {
    etcdServer, etcd, proxy, agent, docker: new PrivateDocker(o.devDir, o.devEtcdPort, say), prefix, expect: { v1: 50, recreating: new Map() }, ids: {},
    envGeneration: 0, log: say, target, stateDir, node, base: o.base,
  };
}

/** A project left in the private dockerd by an interrupted run: restart policies bring it back with dockerd. */
async function removeLeftovers(t: Target): Promise<void> {
  const list = await t.docker.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${projectName(t.node)}`] } });
  if (list.length > 0) say(`removing ${list.length} container(s) an earlier run left in ${projectName(t.node)}`);
  await Promise.all(list.map((c) => t.docker.getContainer(c.Id).remove({ force: true })));
}

/** Waits for the first convergence, then takes the container ids as the baseline and starts the load. */
async function bringUp(r: Soak): Promise<void> {
  const first = await converge(r, tally, 180_000);
  if (!first.ok) throw new Error(`the mesh did not come up within 180 s:\n    ${first.diffs.join('\n    ')}`);
  r.ids = idsOf(first.observed!);
  say(`mesh up after ${Math.round(first.at - t0)} ms: ${Object.keys(r.ids).length} containers; load through web's sidecar on 127.0.0.1:${r.base + 3}`);
  r.load = startLoad(r.base + 3, { workers: 2, pauseMs: 50 });
}

/** Compares container ids with the last accepted ones: a change is expected only where a desired change asked for it. */
function countRecreates(r: Soak, o: Observed, what: string): void {
  for (const [svc, id] of Object.entries(idsOf(o))) {
    const before = r.ids[svc];
    r.ids[svc] = id;
    if (!before || before === id) continue;
    if (r.expect.recreating.get(svc) === before) {
      r.expect.recreating.delete(svc);
      tally.recreates.expected++;
      say(`  ${svc} recreated by its env change (${before.slice(0, 12)} → ${id.slice(0, 12)})`);
    } else {
      tally.recreates.unexpected++;
      tally.problem(`${what}: ${svc} was recreated (${before.slice(0, 12)} → ${id.slice(0, 12)}) without a desired change asking for it`);
    }
  }
}

async function soak(r: Soak, o: Options): Promise<void> {
  const end = performance.now() + o.minutes * 60_000;
  for (let i = 1; performance.now() < end && !stopAsked; i++) {
    const { fault, settleMs } = nextFault(rng, { leaseTtlMs: LEASE_TTL_MS, workloads: WORKLOADS });
    await faultAndRecovery(r, `#${i} ${describe(fault)}`, fault, o);
    const quiet = { total: r.load!.tally.total, failed: r.load!.tally.failures.length };
    await sleep(settleMs);
    const t = r.load!.tally;
    tally.traffic('no fault (between faults)', t.total - quiet.total, t.failures.length - quiet.failed, t.failures.slice(quiet.failed));
  }
}

/** Plays one fault, waits for every invariant to hold again, and counts: recovery time, requests, recreates, exits. */
async function faultAndRecovery(r: Soak, what: string, fault: Fault, o: Options): Promise<void> {
  const t = r.load!.tally;
  const label = faultLabel(fault);
  tally.fault(label);
  const before = { total: t.total, failed: t.failures.length, exits: r.agent.unexpectedExits.length };
  say(what);
  let endedAt = performance.now();
  try {
    endedAt = await play(fault, r);
  } catch (err) {
    tally.problem(`${what}: the fault could not be played: ${(err as Error).message}`);
  }
  const c = await converge(r, tally, o.recoveryMs);
  const failed = t.failures.slice(before.failed);
  tally.traffic(label, t.total - before.total, failed.length, failed);
  if (c.ok) {
    tally.checks.passed++;
    tally.recovered(label, Math.round(c.at - endedAt));
  } else {
    tally.checks.failed++;
    tally.problem(`${what}: not recovered within ${o.recoveryMs / 1000} s:\n    ${c.diffs.join('\n    ')}`);
    say(`  NOT recovered: ${c.diffs.join('; ')}`);
  }
  if (c.observed) countRecreates(r, c.observed, what);
  judgeExits(r.agent.unexpectedExits.slice(before.exits), what);
  const first = failed[0] ? ` (first: ${failed[0].status} ${JSON.stringify(failed[0].body.slice(0, 80))})` : '';
  say(`  ${c.ok ? `recovered in ${Math.round(c.at - endedAt)} ms` : 'failed'}; requests failed ${failed.length} of ${t.total - before.total}${first}`);
  if (c.ok && c.at - endedAt > 5_000 && c.before) say(`  until then: ${c.before.join('; ')}`);
}

/** Exit 4 at start (etcd or Docker unreachable) is documented and systemd's Restart=always starts it again, as the harness does; any other exit is a failure. */
function judgeExits(exits: AgentExit[], what: string): void {
  for (const x of exits) {
    if (x.code === 4 && x.tail.includes('the agent cannot start')) {
      tally.startExits++;
      say(`  the agent (pid ${x.pid}) could not start and exited 4: ${x.tail.split('\n').filter((l) => l.startsWith('error:')).join(' ')}`);
    } else {
      tally.problem(`${what}: the agent (pid ${x.pid}) exited by itself, code ${x.code} signal ${x.signal}; its last lines:\n${x.tail}`);
    }
  }
}

/** Converged, then 10 observations over 10 s at rest: every invariant holds in each, no container changes, no etcd write. */
async function finalCheck(r: Soak, o: Options): Promise<void> {
  say('final check: converged, then 10 observations over 10 s at rest');
  const c = await converge(r, tally, o.recoveryMs);
  if (c.observed) countRecreates(r, c.observed, 'final');
  const diffs = c.ok ? await atRest(r, tally, c.observed!) : [`not converged within ${o.recoveryMs / 1000} s:`, ...c.diffs];
  if (diffs.length > 0) {
    tally.checks.failed++;
    tally.problem(`final: ${diffs.join('\n    ')}`);
  } else {
    tally.checks.passed++;
    say('final check passed');
  }
}

/** Stops the load and the agent (SIGTERM, timed), removes the project, stops etcd and the proxy. */
async function tearDown(r: Soak): Promise<{ ms: number; code: number | null; signal: NodeJS.Signals | null }> {
  await r.load?.stop();
  const s = await r.agent.stop();
  composeDown(r.node, r.stateDir);
  await r.proxy.close();
  r.etcd.close();
  await r.etcdServer.stop();
  await r.agent.close();
  say(`agent stopped in ${s.ms} ms (code ${s.code}, signal ${s.signal}); project removed, etcd stopped`);
  return s;
}
