// The meshlet command line; the one place where errors become exit codes.
import { Argument, Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { MeshletError, ValidationError, ConflictError } from './core/errors.js';
import { DEFAULT_ADMIN_PORTS, type PortRange } from './core/render/admin-ports.js';
import { meshletVersion } from './version.js';
import { addEtcdOptions } from './commands/etcd-options.js';

export const EXIT = { ok: 0, failure: 1, invalid: 2, conflict: 3, unavailable: 4 } as const;

function intOption(min: number, max: number) {
  return (text: string): number => {
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < min || n > max) throw new InvalidArgumentError(`expected an integer from ${min} to ${max}`);
    return n;
  };
}

function rangeOption(text: string): PortRange {
  const m = /^(\d+)-(\d+)$/.exec(text);
  const from = Number(m?.[1]);
  const to = Number(m?.[2]);
  if (!m || from < 1 || to > 65535 || from > to) throw new InvalidArgumentError('expected FROM-TO, e.g. 15100-15999');
  return { from, to };
}

const collect = (value: string, prev: string[] = []) => [...prev, value];

/** A cluster domain such as cluster.local: DNS labels separated by ".". */
function domainOption(text: string): string {
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/.test(text)) throw new InvalidArgumentError('expected a DNS domain such as cluster.local');
  return text;
}
const CLUSTER_DOMAIN_HELP = 'the domain of hosts written <service>.<namespace>.svc.<domain>';

/** `log` gets results (stdout), `warn` warnings (stderr). */
export function buildProgram(log: (line: string) => void, warn: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): Command {
  const program = new Command('meshlet')
    .description('A lightweight service mesh for VM fleets: etcd desired state, docker-compose pods, Envoy sidecars, xDS on loopback.')
    .version(meshletVersion())
    .showHelpAfterError()
    .exitOverride();

  program
    .command('render')
    .description('render one node\'s compose project, Envoy bootstraps and xDS resources from files (no etcd, no Docker)')
    .requiredOption('-f, --file <file>', 'desired-state YAML (repeatable)', collect)
    .requiredOption('--node <name>', 'the node to render for')
    .requiredOption('--out <dir>', 'output folder (created; nothing is written on error)')
    .option('--instances <file>', 'registered instances (YAML/JSON list) for the endpoints')
    .option('--templates <dir>', 'base templates folder')
    .option('--xds-port <port>', 'the agent\'s xDS port', intOption(1, 65535), 15010)
    .option('--cluster-domain <domain>', CLUSTER_DOMAIN_HELP, domainOption, 'cluster.local')
    .option('--admin-ports <range>', 'sidecar admin port range', rangeOption, DEFAULT_ADMIN_PORTS)
    .option('--advertise-address <ip>', 'the host address injected as MESHLET_ADDRESS', '127.0.0.1')
    .option('--region <name>', 'the node\'s region (as its agent\'s --region), for localityLbSetting')
    .option('--zone <name>', 'the node\'s zone (as its agent\'s --zone)')
    .option('--prefix <prefix>', 'etcd key prefix (for naming-mode targets)', '/meshlet')
    .option('--sidecar-image <image>', 'default sidecar image', 'envoyproxy/envoy:v1.40.0')
    .option('--no-strict', 'skip the strict check of Envoy documents against Envoy\'s protos')
    .action(async (opts) => {
      const { renderCommand } = await import('./commands/render.js');
      await renderCommand({ ...opts, strict: opts.strict !== false }, log);
    });

  addEtcdOptions(
    program
      .command('agent')
      .description('run the node agent: watch etcd, render and apply the compose project, serve xDS, register healthy instances')
      .requiredOption('--node <name>', 'this node\'s name, as used in placements')
      .option('--state-dir <dir>', 'where the compose project, bootstraps and state.json live', '/var/lib/meshlet')
      .option('--advertise-address <ip>', 'this host\'s address for registrations and MESHLET_ADDRESS (default: first non-loopback IPv4)')
      .option('--region <name>', 'this node\'s region, for DestinationRule localityLbSetting (default: meshlet)')
      .option('--zone <name>', 'this node\'s zone within the region (default: the node name); the node is then the subzone')
      .option('--xds-port <port>', 'xDS server port on 127.0.0.1', intOption(1, 65535), 15010)
      .option('--cluster-domain <domain>', CLUSTER_DOMAIN_HELP, domainOption, 'cluster.local')
      .option('--compose <mode>', 'auto | v2 | v1 (auto prefers `docker compose`, else docker-compose)', 'auto')
      .option('--sidecar-image <image>', 'sidecar image when a Service names none', 'envoyproxy/envoy:v1.40.0')
      .option('--templates <dir>', 'base templates folder (watched for changes)')
      .option('--lease-ttl <seconds>', 'TTL of the node lease that binds registrations and status', intOption(2, 3600), 10)
      .option('--admin-ports <range>', 'sidecar admin port range', rangeOption, DEFAULT_ADMIN_PORTS)
      .option('--resync-interval <seconds>', 'drift check period', intOption(1, 86400), 30)
      .option('--shutdown-timeout <seconds>', 'how long SIGTERM/SIGINT may take before the agent exits anyway (a second signal exits at once)', intOption(1, 3600), 10)
      .option('--log-level <level>', 'info | debug', 'info'),
  ).action(async (opts) => {
    const { agentCommand } = await import('./commands/run-agent.js');
    await agentCommand(opts);
  });

  program
    .command('validate')
    .description('check desired-state documents offline, alone and as a set')
    .requiredOption('-f, --file <file>', 'desired-state YAML (repeatable; - for standard input)', collect)
    .option('--xds-port <port>', 'the agents\' xDS port', intOption(1, 65535), 15010)
    .option('--cluster-domain <domain>', CLUSTER_DOMAIN_HELP, domainOption, 'cluster.local')
    .action(async (opts) => {
      const { validateCommand } = await import('./commands/validate.js');
      await validateCommand(opts, log);
    });

  addEtcdOptions(program
    .command('apply')
    .description('check documents against each other and against the desired state in etcd, then write them all in one transaction')
    .requiredOption('-f, --file <file>', 'desired-state YAML (repeatable; - for standard input)', collect)
    .option('--dry-run', 'show what would be added and changed; write nothing')
    .option('--xds-port <port>', 'the agents\' xDS port', intOption(1, 65535), 15010)
    .option('--cluster-domain <domain>', CLUSTER_DOMAIN_HELP, domainOption, 'cluster.local'))
    .action(async (opts) => {
      const { applyCommand } = await import('./commands/apply.js');
      await applyCommand(opts, log, warn);
    });

  addEtcdOptions(program
    .command('get')
    .description('show the desired state, registered instances or node status held in etcd')
    .addArgument(new Argument('<what>', 'what to show').choices(['services', 'routes', 'subsets', 'nodes', 'instances']))
    .argument('[name]', 'only this one (for instances: the service)')
    .addOption(new Option('-o, --output <format>', 'output format; yaml and json print the stored documents (json: a list)').choices(['table', 'yaml', 'json']).default('table')))
    .action(async (what, name, opts) => {
      const { getCommand } = await import('./commands/get.js');
      await getCommand({ ...opts, what, name }, log, warn);
    });

  addEtcdOptions(program
    .command('delete')
    .description('delete one desired document; refused while other documents refer to it')
    .addArgument(new Argument('<kind>', 'what to delete').choices(['service', 'route', 'subset']))
    .argument('<name>', 'its name')
    .option('--force', 'delete even when other documents refer to it (agents then reject those)'))
    .action(async (kind, name, opts) => {
      const { deleteCommand } = await import('./commands/delete.js');
      await deleteCommand({ ...opts, kind, name }, log, warn);
    });

  addEtcdOptions(program
    .command('route')
    .description('set the weights of a service\'s catch-all route (creating its VirtualService if it has none)')
    .argument('<service>', 'the Service')
    .requiredOption('--weights <weights>', 'SUBSET=WEIGHT pairs adding up to 100, e.g. v1=90,v2=10'))
    .action(async (service, opts) => {
      const { routeCommand } = await import('./commands/canary.js');
      await routeCommand({ ...opts, service }, log, warn);
    });

  addEtcdOptions(program
    .command('promote')
    .description('send all of a service\'s catch-all traffic to one version')
    .argument('<service>', 'the Service')
    .argument('<version>', 'the subset (or the version) to send 100% to'))
    .action(async (service, version, opts) => {
      const { promoteCommand } = await import('./commands/canary.js');
      await promoteCommand({ ...opts, service, version }, log, warn);
    });

  addEtcdOptions(program
    .command('rollback')
    .description('restore the weights that the last meshlet route or promote replaced')
    .argument('<service>', 'the Service'))
    .action(async (service, opts) => {
      const { rollbackCommand } = await import('./commands/canary.js');
      await rollbackCommand({ ...opts, service }, log, warn);
    });

  addEtcdOptions(program
    .command('status')
    .description('nodes (agent, lease, drain, revisions, last apply, sidecars) and instances (healthy/placed)')
    .option('--node <name>', 'only this node')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'yaml', 'json']).default('table')))
    .action(async (opts) => {
      const { statusCommand } = await import('./commands/status.js');
      await statusCommand(opts, log, warn);
    });

  for (const [name, undo] of [['drain', false], ['undrain', true]] as const) {
    addEtcdOptions(program
      .command(name)
      .description(undo ? 'let a drained node register its healthy instances again' : 'deregister every instance of a node now and register none until undrained (containers keep running)')
      .requiredOption('--node <name>', 'the node'))
      .action(async (opts) => {
        const { drainCommand } = await import('./commands/drain.js');
        await drainCommand({ ...opts, undo }, log);
      });
  }

  return program;
}

/** Runs the program and returns the exit code; errors are printed here and nowhere else. */
export async function main(argv: string[], out: (l: string) => void = (l) => process.stdout.write(`${l}\n`), err: (l: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<number> {
  const program = buildProgram(out, err);
  program.configureOutput({ writeOut: (s) => process.stdout.write(s), writeErr: (s) => process.stderr.write(s) });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.ok : EXIT.invalid;
    if (e instanceof ValidationError) { err(`error: ${e.message}`); return EXIT.invalid; }
    if (e instanceof ConflictError) { err(`error: ${e.message}`); return EXIT.conflict; }
    if (e instanceof MeshletError) { err(`error: ${e.message}${e.cause ? ` (${String((e.cause as Error).message ?? e.cause)})` : ''}`); return e.recoverable ? EXIT.unavailable : EXIT.failure; }
    err(`error: ${(e as Error).stack ?? String(e)}`);
    return EXIT.failure;
  }
}
