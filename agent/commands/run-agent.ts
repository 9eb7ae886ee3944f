// meshlet agent: runs the node agent until SIGTERM/SIGINT, then leaves containers and registrations in place.
import { networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import { startAgent } from '../agent.js';
import { systemClock } from '../core/clock.js';
import { jsonLogger } from '../core/logger.js';
import { ValidationError } from '../core/errors.js';
import type { Issue } from '../core/model/issues.js';
import { NODE_NAME } from '../core/model/model.js';
import type { PortRange } from '../core/render/admin-ports.js';
import type { ComposeMode } from '../adapters/docker/compose-runner.js';
import { connectionOf, type EtcdFlags } from './etcd-options.js';

export interface AgentFlags extends EtcdFlags {
  node: string;
  stateDir: string;
  advertiseAddress?: string;
  xdsPort: number;
  compose: ComposeMode;
  sidecarImage: string;
  templates?: string;
  leaseTtl: number;
  adminPorts: PortRange;
  resyncInterval: number;
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
  const onSignal = (sig: string) => {
    log.info(`received ${sig}; stopping (containers keep running)`);
    abort.abort();
    stopRequested();
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
  let agent;
  try {
    agent = await startAgent(
    {
      node: flags.node,
      etcd: { ...etcd, retries: 0 },
      stateDir: flags.stateDir,
      advertiseAddress: advertise,
      xdsPort: flags.xdsPort,
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
