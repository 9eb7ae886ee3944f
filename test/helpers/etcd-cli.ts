// One private etcd for a test file, a client on it, and the CLI run against it under a given prefix.
import { after, before } from 'node:test';
import { Etcd3 } from 'etcd3';
import { runCli, type CliResult } from './cli.js';
import { startEtcd, type TestEtcd } from './etcd.js';

export interface EtcdEnv {
  etcd: TestEtcd;
  client: Etcd3;
}

/** Registers before/after hooks that start and stop the etcd; `env` is filled in by the time tests run. */
export function etcdForFile(): { env: EtcdEnv; cli: (prefix: string, ...args: string[]) => Promise<CliResult> } {
  const env = {} as EtcdEnv;
  before(async () => {
    env.etcd = await startEtcd();
    env.client = new Etcd3({ hosts: env.etcd.url });
  });
  after(async () => {
    env.client?.close();
    await env.etcd?.stop();
  });
  return { env, cli: (prefix, ...args) => runCli([...args, '--etcd', env.etcd.url, '--prefix', prefix]) };
}
