// meshlet validate: checks documents offline, every file and every node, and prints what they hold.
import type { Issue } from '../core/model/issues.js';
import { loadDesired } from '../core/documents/desired.js';
import { ValidationError } from '../core/errors.js';
import { readSources } from './inputs.js';

export async function validateCommand(args: { file: string[]; xdsPort: number; clusterDomain?: string }, log: (line: string) => void): Promise<void> {
  const issues: Issue[] = [];
  const sources = await readSources(args.file, issues);
  if (issues.length > 0) throw new ValidationError(issues);
  const { desired, issues: docIssues } = loadDesired(sources, { xdsPort: args.xdsPort, ...(args.clusterDomain ? { clusterDomain: args.clusterDomain } : {}) });
  if (docIssues.length > 0) throw new ValidationError(docIssues);
  const versions = desired.services.reduce((n, s) => n + s.versions.length, 0);
  const n = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`;
  log(`ok: ${n(desired.services.length, 'service')} (${n(versions, 'version')}), ${n(desired.routes.length, 'VirtualService')}, ${n(desired.subsets.length, 'DestinationRule')}`);
}
