// Paths the tests share: the repo root (tests run from any cwd) and fresh temp folders.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../../agent/version.js';

export const ROOT = packageRoot();
export const fixture = (...parts: string[]) => join(ROOT, 'fixtures', ...parts);
export const tempDir = (tag = 'meshlet-test-') => mkdtempSync(join(tmpdir(), tag));
