// Reading operator files for the CLI: size checked before reading, missing files reported like any bad input.
import { readFile, stat } from 'node:fs/promises';
import type { SourceText } from '../core/documents/documents.js';
import type { Issue } from '../core/model/issues.js';
import { MAX_FILE_BYTES, tooLargeMessage } from '../core/documents/parse-yaml.js';

export async function readSources(paths: string[], issues: Issue[]): Promise<SourceText[]> {
  const out: SourceText[] = [];
  for (const source of paths) {
    const doc = { source, index: 0, whole: true };
    try {
      const info = source === '-' ? undefined : await stat(source);
      if (info && !info.isFile()) { issues.push({ doc, path: '', message: 'expected a file' }); continue; }
      if (info && info.size > MAX_FILE_BYTES) {
        issues.push({ doc, path: '', message: tooLargeMessage(info.size) });
        continue;
      }
      out.push({ source, text: source === '-' ? await readStdin() : await readFile(source, 'utf8') });
    } catch (err) {
      issues.push({ doc, path: '', message: `cannot read: ${readError(err as NodeJS.ErrnoException)}` });
    }
  }
  return out;
}

function readError(err: NodeJS.ErrnoException): string {
  const words: Record<string, string> = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'is a folder', ENOTDIR: 'a part of the path is not a folder' };
  return err.code ? `${words[err.code] ?? err.message} (${err.code})` : err.message;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    size += (chunk as Buffer).length;
    if (size > MAX_FILE_BYTES) throw new Error(`standard input is over ${MAX_FILE_BYTES} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
