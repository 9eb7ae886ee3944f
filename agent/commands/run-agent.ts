// meshlet agent: runs the node agent until SIGTERM/SIGINT, then leaves containers and registrations in place.
import { networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import { startAgent } from '../agent.js';
import { systemClock } from '../core/clock.js';
import { jsonLogger } from '../core/logger.js';
import { ValidationError } from '../core/errors.js';
import type { Issue } from '../core/model/issues.js';
import { LOCALITY_NAME, NODE_NAME } from '../core/model/model.js';
import type { PortRange } from '../core/render/admin-ports.js';
import type { ComposeMode } from '../adapters/docker/compose-runner.js';
import { connectionOf, type EtcdFlags } from './etcd-options.js';

export interface AgentFlags extends EtcdFlags {
  node: string;
  stateDir: string;
  advertiseAddress?: string;
  region?: string;
  zone?: string;
  xdsPort: number;
  clusterDomain?: string;
  compose: ComposeMode;
  sidecarImage: string;
  templates?: string;
  leaseTtl: number;
  adminPorts: PortRange;
  resyncInterval: number;
  /** Seconds a stop may take before the process exits anyway (etcd or Docker not answering). */
  shutdownTimeout: number;
  logLevel: 'info' | 'debug';
}

/** The host's first non-loopback IPv4 address, else 127.0.0.1. */
export function defaultAdvertiseAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

export async function agentCommand(flags: AgentFlags): Promise<void> {
  const issues: Issue[] = [];
  const bad = (source: string, message: string) => issues.push({ doc: { source, index: 0, whole: true }, path: '', message });
  if (!NODE_NAME.test(flags.node)) bad('--node', `expected a node name (lower-case letters, digits, "." and "-"), got ${JSON.stringify(flags.node)}`);
  const advertise = flags.advertiseAddress ?? defaultAdvertiseAddress();
  if (isIP(advertise) === 0) bad('--advertise-address', `expected an IP address, got ${JSON.stringify(advertise)}`);
  for (const [flag, v] of [['--region', flags.region], ['--zone', flags.zone]] as const) {
    if (v !== undefined && !LOCALITY_NAME.test(v)) bad(flag, `expected a name (letters, digits, ".", "_" and "-"), got ${JSON.stringify(v)}`);
  }
  if (flags.compose !== 'auto' && flags.compose !== 'v1' && flags.compose !== 'v2') bad('--compose', `expected auto, v1 or v2, got ${JSON.stringify(flags.compose)}`);
  let etcd;
  try {
    etcd = connectionOf(flags);
  } catch (err) {
    if (err instanceof ValidationError) issues.push(...err.issues);
    else throw err;
  }
  if (issues.length > 0 || !etcd) throw new ValidationError(issues, 'bad agent flags');
  const log = jsonLogger(flags.logLevel);
  const abort = new AbortController();
  let stopRequested!: () => void;
  const stopped = new Promise<void>((resolve) => (stopRequested = resolve));
  let signals = 0;
  const onSignal = (sig: 'SIGTERM' | 'SIGINT') => {
    if (++signals > 1) {
      // A second signal: the operator does not want to wait for the orderly stop.
      log.warn(`received ${sig} again; exiting now`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }
    log.info(`received ${sig}; stopping (containers keep running)`);
    // Bounded, in start-up as in a stop: past the timeout the process ends anyway (a frozen etcd keeps calls and
    // sockets open). unref'd: a stop that finishes in time lets the process end by itself.
    setTimeout(() => {
      log.warn(`the stop did not finish within ${flags.shutdownTimeout} s (etcd or Docker not answering); exiting anyway`);
      process.exit(process.exitCode ?? 0);
    }, flags.shutdownTimeout * 1000).unref();
    abort.abort();
    stopRequested();
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  let agent;
  try {
    agent = await startAgent(
    {
      node: flags.node,
      etcd: { ...etcd, retries: 0 },
      stateDir: flags.stateDir,
      advertiseAddress: advertise,
      ...(flags.region !== undefined ? { region: flags.region } : {}),
      ...(flags.zone !== undefined ? { zone: flags.zone } : {}),
      xdsPort: flags.xdsPort,
      ...(flags.clusterDomain ? { clusterDomain: flags.clusterDomain } : {}),
      compose: flags.compose,
      sidecarImage: flags.sidecarImage,
      ...(flags.templates ? { templatesDir: flags.templates } : {}),
      leaseTtl: flags.leaseTtl,
      adminPorts: flags.adminPorts,
      resyncInterval: flags.resyncInterval,
    },
    systemClock,
    log,
    abort.signal,
  );
  } catch (err) {
    if (abort.signal.aborted) return; // stopped while still waiting for etcd
    throw err;
  }
  await stopped;
  await agent.stop();
}

