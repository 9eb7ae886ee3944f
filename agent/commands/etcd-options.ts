// The etcd connection flags every etcd command takes, and their check. Light on purpose: cli.ts imports
// this while building the program, so nothing here may load etcd3 or gRPC (CLI cold start).
import { Option, type Command } from 'commander';
import type { EtcdConnection } from '../adapters/etcd/etcd-client.js';
import { ValidationError } from '../core/errors.js';
import type { Issue } from '../core/model/issues.js';

export const DEFAULT_ETCD = 'http://127.0.0.1:2379';
export const DEFAULT_PREFIX = '/meshlet';

/** What commander hands the action for the flags below. */
export interface EtcdFlags {
  etcd: string;
  prefix: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPassword?: string;
}

export function addEtcdOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--etcd <urls>', 'etcd endpoints, comma separated').env('MESHLET_ETCD').default(DEFAULT_ETCD))
    .addOption(new Option('--prefix <prefix>', 'etcd key prefix').env('MESHLET_PREFIX').default(DEFAULT_PREFIX))
    .addOption(new Option('--etcd-ca <file>', 'CA certificate (PEM) to verify etcd\'s TLS certificate'))
    .addOption(new Option('--etcd-cert <file>', 'client certificate (PEM) for etcd TLS client authentication'))
    .addOption(new Option('--etcd-key <file>', 'client private key (PEM) for --etcd-cert'))
    .addOption(new Option('--etcd-user <name>', 'etcd user name').env('MESHLET_ETCD_USER'))
    // The password is never printed: not in help (no default shown), not in any message.
    .addOption(new Option('--etcd-password <password>', 'etcd password (prefer the environment variable)').env('MESHLET_ETCD_PASSWORD'));
}

/** Checks the flags and turns them into a connection; every problem is reported at once (exit 2). */
export function connectionOf(flags: EtcdFlags): EtcdConnection {
  const issues: Issue[] = [];
  const bad = (source: string, message: string) => issues.push({ doc: { source, index: 0, whole: true }, path: '', message });
  const endpoints = flags.etcd.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (endpoints.length === 0) bad('--etcd', 'expected one or more etcd URLs, e.g. http://127.0.0.1:2379');
  for (const e of endpoints) {
    let url: URL | undefined;
    try {
      url = new URL(e);
    } catch {
      // reported below
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname || (url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) {
      bad('--etcd', `expected an http:// or https:// URL with a host and port, e.g. http://127.0.0.1:2379, got ${JSON.stringify(redactUrl(e))}`);
    } else if (url.username || url.password) {
      bad('--etcd', `${redactUrl(e)}: give credentials with --etcd-user and --etcd-password (or MESHLET_ETCD_USER / MESHLET_ETCD_PASSWORD), not in the URL`);
    }
  }
  if (flags.etcdPassword !== undefined && !flags.etcdUser) bad('--etcd-password', 'needs --etcd-user (or MESHLET_ETCD_USER)');
  if ((flags.etcdCert === undefined) !== (flags.etcdKey === undefined)) bad(flags.etcdCert ? '--etcd-cert' : '--etcd-key', 'expected both --etcd-cert and --etcd-key, or neither');
  if (issues.length > 0) throw new ValidationError(issues, 'bad etcd connection flags');
  return {
    endpoints,
    prefix: flags.prefix,
    ...(flags.etcdCa !== undefined ? { ca: flags.etcdCa } : {}),
    ...(flags.etcdCert !== undefined ? { cert: flags.etcdCert } : {}),
    ...(flags.etcdKey !== undefined ? { key: flags.etcdKey } : {}),
    ...(flags.etcdUser !== undefined ? { user: flags.etcdUser } : {}),
    ...(flags.etcdPassword !== undefined ? { password: flags.etcdPassword } : {}),
  };
}

/** An endpoint as it may be printed: any password in it replaced. */
export function redactUrl(text: string): string {
  return text.replace(/\/\/([^/@:]*):[^/@]*@/, '//$1:***@');
}
