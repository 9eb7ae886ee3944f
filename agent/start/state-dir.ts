// Start step 1b: the state dir, made once the node is this agent's (after the claim), so a refused start leaves
// nothing behind; a start that fails later removes the folders it made, as long as they are still empty.
import { chmod, mkdir, rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Stoppable } from './shutdown.js';

export async function makeStateDir(stateDir: string): Promise<Stoppable> {
  const compose = join(stateDir, 'compose');
  const first = await mkdir(compose, { recursive: true }); // the top folder it made, or undefined
  // 0700: only the agent (root) reads state.json; dockerd, also root, bind-mounts the bootstraps from here.
  await chmod(stateDir, 0o700);
  const made: string[] = [];
  for (let p = compose; first !== undefined; p = dirname(p)) {
    made.push(p);
    if (p === first || p === dirname(p)) break;
  }
  return {
    stop: () => {},
    abandon: async () => {
      // Deepest first; a folder that holds anything (another start wrote into it) stays, and so do its parents.
      for (const dir of made) {
        try {
          await rmdir(dir);
        } catch {
          return;
        }
      }
    },
  };
}
