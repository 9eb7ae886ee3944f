// Loads the base documents of templates/ that renderers merge their output over.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import type { Templates } from '../../core/render/render-node.js';
import { ValidationError } from '../../core/errors.js';
import { packageRoot } from '../../version.js';

export const DEFAULT_TEMPLATES_DIR = join(packageRoot(), 'templates');

const FILES: Record<keyof Templates, string> = {
  composeApp: 'compose-app.yaml',
  composeSidecar: 'compose-sidecar.yaml',
  envoyBootstrap: 'envoy-bootstrap.yaml',
};

export async function loadTemplates(dir = DEFAULT_TEMPLATES_DIR): Promise<Templates> {
  const out: Partial<Templates> = {};
  for (const [key, file] of Object.entries(FILES) as [keyof Templates, string][]) {
    const path = join(dir, file);
    let doc: unknown;
    try {
      doc = parse(await readFile(path, 'utf8'), { uniqueKeys: true, maxAliasCount: 100 }) ?? {};
    } catch (err) {
      throw new ValidationError([{ doc: { source: path, index: 0 }, path: '', message: `cannot read template: ${(err as Error).message.split('\n')[0]}` }]);
    }
    if (typeof doc !== 'object' || Array.isArray(doc)) {
      throw new ValidationError([{ doc: { source: path, index: 0 }, path: '', message: 'expected a mapping' }]);
    }
    out[key] = doc as Record<string, unknown>;
  }
  return out as Templates;
}

/** The templates, read once and again after `invalidate()` (the file watcher calls it); a failed read is not kept. */
export function cachedTemplates(dir = DEFAULT_TEMPLATES_DIR): { get(): Promise<Templates>; invalidate(): void } {
  let cached: Promise<Templates> | undefined;
  return {
    get: () => (cached ??= loadTemplates(dir).catch((err) => {
      cached = undefined;
      throw err;
    })),
    invalidate: () => {
      cached = undefined;
    },
  };
}
