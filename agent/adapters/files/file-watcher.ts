// Watches the templates folder and the compose folder (chokidar): template edits and hand edits of the
// compose file both start a pass (a hand edit is then overwritten).
import { resolve } from 'node:path';
import chokidar from 'chokidar';
import type { Logger } from '../../core/logger.js';

export interface FileChange {
  /** Which folder changed: templates must be read again; compose only needs a pass. */
  folder: 'templates' | 'compose';
  /** chokidar's event name: add, change, unlink, addDir, unlinkDir. */
  event: string;
  path: string;
}

export interface FileWatcher {
  close(): Promise<void>;
}

/** Calls `onChange` for every change under either folder (one level deep); dot files are ignored (editors' temp files). */
export function watchFolders(folders: { templates: string; compose: string }, onChange: (c: FileChange) => void, log: Logger): FileWatcher {
  const templates = resolve(folders.templates);
  const files = chokidar.watch([folders.templates, folders.compose], { ignoreInitial: true, depth: 1 });
  files.on('all', (event, path) => {
    if (typeof path !== 'string' || path.includes('/.')) return;
    onChange({ folder: resolve(path).startsWith(templates) ? 'templates' : 'compose', event, path });
  });
  files.on('error', (err) => log.warn('file watcher error', { error: String(err) }));
  return { close: () => files.close() };
}
