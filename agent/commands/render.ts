// meshlet render: desired-state files → one node's compose project, bootstraps and xDS resources. No etcd, no Docker.
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { parse } from 'yaml';
import type { Issue } from '../core/model/issues.js';
import { IssueSink } from '../core/model/issues.js';
import type { Instance } from '../core/model/model.js';
import { LOCALITY_NAME, NODE_NAME } from '../core/model/model.js';
import { loadDesired } from '../core/documents/desired.js';
import { renderNode } from '../core/render/render-node.js';
import { renderFiles } from '../core/render/render-files.js';
import { readInstance } from '../core/documents/instances.js';
import { contentHash } from '../core/model/canonical.js';
import { ValidationError } from '../core/errors.js';
import type { PortRange } from '../core/render/admin-ports.js';
import { checkNodeEnvoy } from '../envoy-proto/check-envoy.js';
import { loadTemplates } from '../adapters/files/templates.js';
import { syncFiles } from '../adapters/files/file-store.js';
import { readSources } from './inputs.js';

export interface RenderArgs {
  file: string[];
  node: string;
  out: string;
  instances?: string;
  templates?: string;
  xdsPort: number;
  clusterDomain?: string;
  adminPorts: PortRange;
  advertiseAddress: string;
  region?: string;
  zone?: string;
  prefix: string;
  sidecarImage: string;
  strict: boolean;
}

/** Renders into memory, checks everything, and only then writes; on any problem nothing is written. */
export async function renderCommand(args: RenderArgs, log: (line: string) => void): Promise<void> {
  const issues: Issue[] = [];
  if (!NODE_NAME.test(args.node)) issues.push({ doc: { source: '--node', index: 0, whole: true }, path: '', message: `expected a node name (lower-case letters, digits, "." and "-"), got ${JSON.stringify(args.node)}` });
  for (const [flag, v] of [['--region', args.region], ['--zone', args.zone]] as const) {
    if (v !== undefined && !LOCALITY_NAME.test(v)) issues.push({ doc: { source: flag, index: 0, whole: true }, path: '', message: `expected a name (letters, digits, ".", "_" and "-"), got ${JSON.stringify(v)}` });
  }
  const sources = await readSources(args.file, issues);
  const instances = args.instances ? await readInstancesFile(args.instances, issues) : [];
  if (issues.length > 0) throw new ValidationError(issues);
  const { desired, issues: docIssues } = loadDesired(sources, { xdsPort: args.xdsPort, nodes: [args.node], ...(args.clusterDomain ? { clusterDomain: args.clusterDomain } : {}) });
  if (docIssues.length > 0) throw new ValidationError(docIssues);
  const templates = await loadTemplates(args.templates);
  const render = renderNode(desired, instances, templates, {
    node: args.node,
    advertiseAddress: args.advertiseAddress,
    prefix: args.prefix,
    sidecarImage: args.sidecarImage,
    paths: { envoyDir: './envoy', xdsDir: './xds' },
    xdsPort: args.xdsPort,
    adminPorts: args.adminPorts,
    previousAdminPorts: {},
    ...(args.region !== undefined ? { region: args.region } : {}),
    ...(args.zone !== undefined ? { zone: args.zone } : {}),
  });
  if (render.issues.length > 0) throw new ValidationError(render.issues);
  if (args.strict) {
    const envoyIssues = checkNodeEnvoy(render);
    if (envoyIssues.length > 0) throw new ValidationError(envoyIssues, 'meshlet rendered Envoy documents that fail the strict check (a meshlet bug)');
  }
  for (const w of render.warnings) log(`warning: instance ${w.instance.service}/${w.instance.version}/${w.instance.node}: ${w.message}`);
  const header = `${sources.map((s) => s.source).join(', ')} (sha256 ${contentHash(sources.map((s) => s.text).join('\0'))}) for node ${args.node}`;
  const files = renderFiles(render, header);
  await writeOut(resolve(args.out), files);
  log(`wrote ${files.size} files to ${args.out}:`);
  for (const name of files.keys()) log(`  ${name}`);
}

async function readInstancesFile(path: string, issues: Issue[]): Promise<Instance[]> {
  const [src] = await readSources([path], issues);
  if (!src) return [];
  const sink = new IssueSink({ source: path, index: 0, kind: 'instances' }, issues);
  let list: unknown;
  try {
    list = parse(src.text, { uniqueKeys: true, maxAliasCount: 100 });
  } catch (err) {
    sink.add('', `invalid YAML/JSON: ${(err as Error).message.split('\n')[0]}`);
    return [];
  }
  if (!Array.isArray(list)) {
    sink.add('', 'expected a list of instances ({service, version, node, address, port})');
    return [];
  }
  return list.map((item, i) => readInstance(sink, item, `[${i}]`)).filter((x): x is Instance => !!x);
}

/** A new folder is staged whole beside its target and renamed; an existing one is updated file by file. */
async function writeOut(out: string, files: Map<string, string>): Promise<void> {
  const existing = await stat(out).catch(() => undefined);
  if (existing && !existing.isDirectory()) throw new ValidationError([{ doc: { source: '--out', index: 0, whole: true }, path: '', message: `${out} exists and is not a folder` }]);
  if (existing) {
    await syncFiles(out, files, ['envoy', 'xds']);
    return;
  }
  await mkdir(dirname(out), { recursive: true });
  const staged = join(dirname(out), `.${basename(out)}.${process.pid}.staging`);
  await rm(staged, { recursive: true, force: true });
  try {
    await syncFiles(staged, files);
    await rename(staged, out);
  } catch (err) {
    await rm(staged, { recursive: true, force: true });
    throw err;
  }
}
