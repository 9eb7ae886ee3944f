// Writes rendered files: each staged beside its target, flushed, then renamed into place (never half-written).
import { mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';

export interface SyncResult {
  written: string[];
  removed: string[];
  unchanged: string[];
}

/**
 * Makes `dir` hold `files` (relative path → text). Files whose bytes are unchanged are not touched.
 * Files under `managedDirs` that are not in `files` are removed (a workload that left the node).
 */
export async function syncFiles(dir: string, files: Map<string, string>, managedDirs: string[] = []): Promise<SyncResult> {
  const result: SyncResult = { written: [], removed: [], unchanged: [] };
  for (const [rel, text] of files) {
    const path = join(dir, rel);
    if ((await readIfExists(path)) === text) {
      result.unchanged.push(rel);
      continue;
    }
    await writeAtomic(path, text);
    result.written.push(rel);
  }
  for (const sub of managedDirs) {
    const names = await readdir(join(dir, sub)).catch(() => [] as string[]);
    for (const name of names.sort()) {
      const rel = `${sub}/${name}`;
      if (files.has(rel) || name.startsWith('.')) continue;
      await rm(join(dir, rel), { force: true });
      result.removed.push(rel);
    }
  }
  return result;
}

/**
 * Writes `text` to `path` with exactly `mode` (whatever the umask): 0644 for what operators and containers read
 * (compose file, bootstraps), 0600 for the agent's own state.
 */
export async function writeAtomic(path: string, text: string, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const staged = join(dirname(path), `.${Date.now().toString(36)}-${process.pid}-${Math.random().toString(36).slice(2)}.tmp`);
  const fh = await open(staged, 'w', mode);
  try {
    await fh.chmod(mode);
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(staged, path);
}

export async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}
