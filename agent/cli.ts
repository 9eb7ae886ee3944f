// The meshlet command line; the one place where errors become exit codes.
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { MeshletError, ValidationError, ConflictError } from './core/errors.js';
import { DEFAULT_ADMIN_PORTS, type PortRange } from './core/admin-ports.js';
import { meshletVersion } from './version.js';

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

export function buildProgram(log: (line: string) => void): Command {
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
    .option('--admin-ports <range>', 'sidecar admin port range', rangeOption, DEFAULT_ADMIN_PORTS)
    .option('--advertise-address <ip>', 'the host address injected as MESHLET_ADDRESS', '127.0.0.1')
    .option('--prefix <prefix>', 'etcd key prefix (for naming-mode targets)', '/meshlet')
    .option('--sidecar-image <image>', 'default sidecar image', 'envoyproxy/envoy:v1.32.3')
    .option('--no-strict', 'skip the strict check of Envoy documents against Envoy\'s protos')
    .action(async (opts) => {
      const { renderCommand } = await import('./commands/render.js');
      await renderCommand({ ...opts, strict: opts.strict !== false }, log);
    });

  program
    .command('validate')
    .description('check desired-state documents offline, alone and as a set')
    .requiredOption('-f, --file <file>', 'desired-state YAML (repeatable; - for standard input)', collect)
    .option('--xds-port <port>', 'the agents\' xDS port', intOption(1, 65535), 15010)
    .action(async (opts) => {
      const { validateCommand } = await import('./commands/validate.js');
      await validateCommand(opts, log);
    });

  return program;
}

/** Runs the program and returns the exit code; errors are printed here and nowhere else. */
export async function main(argv: string[], out: (l: string) => void = (l) => process.stdout.write(`${l}\n`), err: (l: string) => void = (l) => process.stderr.write(`${l}\n`)): Promise<number> {
  const program = buildProgram(out);
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
