// Plays one fault of the plan against the running mesh and returns when its cause was removed (performance.now()):
// the proxy resumed, etcd thawed, dockerd answering again, the agent started again, or the desired change written.
import type { Etcd3 } from 'etcd3';
import { keys } from '../../agent/core/model/keys.js';
import { canonicalJson } from '../../agent/core/model/canonical.js';
import type { TcpProxy } from '../../test/helpers/tcp-proxy.js';
import type { TestEtcd } from '../../test/helpers/etcd.js';
import { putDocs } from '../../test/helpers/local-mesh.js';
import { runCli } from '../../test/helpers/cli.js';
import type { Fault, RouteChange } from './plan.js';
import type { Expectations } from './checks.js';
import type { PrivateDocker, SoakAgent } from './harness.js';

export interface Rig {
  etcdServer: TestEtcd;
  /** The soak's own client, straight to etcd (not through the proxy the agent uses). */
  etcd: Etcd3;
  proxy: TcpProxy;
  agent: SoakAgent;
  docker: PrivateDocker;
  prefix: string;
  expect: Expectations;
  /** Container id per compose service, as last accepted. */
  ids: Record<string, string>;
  /** The last SOAK_GEN value an env change wrote. */
  envGeneration: number;
  log: (line: string) => void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function play(f: Fault, rig: Rig): Promise<number> {
  switch (f.kind) {
    case 'etcd-cut': {
      await rig.proxy.suspend(f.mode);
      await meanwhile(rig, f.ms, f.change);
      await rig.proxy.resume();
      return performance.now();
    }
    case 'etcd-freeze': {
      process.kill(rig.etcdServer.pid, 'SIGSTOP');
      try {
        await sleep(f.ms);
      } finally {
        process.kill(rig.etcdServer.pid, 'SIGCONT');
      }
      return performance.now();
    }
    case 'dockerd-restart': {
      await rig.docker.stop();
      await meanwhile(rig, f.downMs, f.change);
      await rig.docker.start();
      return performance.now();
    }
    case 'agent-kill': {
      await rig.agent.kill();
      await meanwhile(rig, f.downMs, f.change);
      rig.agent.start();
      return performance.now();
    }
    case 'route-change':
      await pushRoute(rig, f.change);
      return performance.now();
    case 'env-change':
      await pushEnv(rig, f.workload);
      return performance.now();
  }
}

/** Waits `ms`, pushing `change` halfway through when there is one. */
async function meanwhile(rig: Rig, ms: number, change: RouteChange | undefined): Promise<void> {
  if (!change) return sleep(ms);
  await sleep(ms / 2);
  await pushRoute(rig, change);
  await sleep(ms / 2);
}

async function pushRoute(rig: Rig, c: RouteChange): Promise<void> {
  const v2 = 100 - c.v1;
  if (c.via === 'cli') {
    const r = await runCli(['route', 'api', '--weights', `v1=${c.v1},v2=${v2}`, '--etcd', rig.etcdServer.url, '--prefix', rig.prefix]);
    if (r.code !== 0) throw new Error(`meshlet route api --weights v1=${c.v1},v2=${v2}: exit ${r.code}: ${r.err}`);
  } else {
    await putDocs(rig.etcd, rig.prefix, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: api }
spec:
  hosts: [api]
  http:
    - route:
        - { destination: { host: api, subset: v1 }, weight: ${c.v1} }
        - { destination: { host: api, subset: v2 }, weight: ${v2} }
`);
  }
  rig.expect.v1 = c.v1;
}

/** Sets SOAK_GEN in the env of one version (`api-v2` → Service api, version v2): compose recreates that app. */
async function pushEnv(rig: Rig, workload: string): Promise<void> {
  const [service, version] = [workload.slice(0, workload.indexOf('-')), workload.slice(workload.indexOf('-') + 1)];
  const key = keys(rig.prefix).desiredDoc('services', service);
  const raw = await rig.etcd.get(key).string();
  if (!raw) throw new Error(`${key} is missing`);
  const doc = JSON.parse(raw) as { spec: { versions: Record<string, { env?: Record<string, string> }> } };
  const v = doc.spec.versions[version];
  if (!v) throw new Error(`${key} has no version ${version}`);
  v.env = { ...v.env, SOAK_GEN: String(++rig.envGeneration) };
  await rig.etcd.put(key).value(canonicalJson(doc)).exec();
  // The first recreate to be seen wins: an env change pushed before the last one was applied recreates once.
  if (!rig.expect.recreating.has(workload)) rig.expect.recreating.set(workload, rig.ids[workload]!);
}
