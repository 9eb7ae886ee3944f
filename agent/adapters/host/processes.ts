// Whether a process recorded in a node claim still runs on this host. A pid alone is not enough: pids are
// reused (an agent in a container is pid 1 on every start), so the claim also records when the process
// started, as the kernel counts it for this boot (Linux /proc); elsewhere only the pid is checked.
import { readFileSync } from 'node:fs';

/** `<boot id>/<start time in clock ticks>` of `pid`, or undefined where /proc cannot tell. */
export function processStart(pid: number): string | undefined {
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 2 (comm) is in parentheses and may hold spaces or ')': count fields from the last ')'.
    // After it come field 3 (state) onwards; field 22 is the start time.
    const starttime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return boot && starttime ? `${boot}/${starttime}` : undefined;
  } catch {
    return undefined;
  }
}

/** True unless `pid` surely is not the process that recorded `started` (gone, or a new process with its pid). */
export function processAlive(pid: number, started?: string): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    // EPERM: it exists but belongs to another user; only ESRCH says it is gone.
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  if (started === undefined) return true;
  const now = processStart(pid);
  return now === undefined || now === started;
}
