// An open-loop HTTP load generator in its own process (so it never shares an event loop with the agent or
// the app): GET http://127.0.0.1:<port>/ at a fixed rate, each request sent at its scheduled time whatever
// the previous ones are doing (as wrk2 does), keep-alive connections. Config is one JSON argument; prints
// {"event":"measuring"} when the measured part starts and one {"event":"done",…} line at the end.
// Two latencies per request: from the moment it was sent, and from the moment it was due (coordinated
// omission corrected: includes any wait for a free connection or a late timer).
import { Agent, request } from 'node:http';

interface Config {
  port: number;
  rate: number;
  seconds: number;
  /** Unrecorded run at the same rate first (connections opened, JIT warm). */
  warmupSeconds?: number;
  connections?: number;
  timeoutMs?: number;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as Config;
const agent = new Agent({ keepAlive: true, maxSockets: cfg.connections ?? 16 });
const timeoutMs = cfg.timeoutMs ?? 2_000;

interface Run {
  sent: number;
  ok: number;
  failed: number;
  byStatus: Record<string, number>;
  byVersion: Record<string, number>;
  errors: Record<string, number>;
  /** Sends more than 2 ms behind schedule (the generator itself could not keep up). */
  lateSends: number;
  latency: number[];
  latencyFromDue: number[];
}

function one(due: number, run: Run, record: boolean): Promise<void> {
  const sentAt = performance.now();
  if (sentAt - due > 2) run.lateSends++;
  run.sent++;
  return new Promise((resolve) => {
    const fail = (why: string) => {
      run.failed++;
      run.errors[why] = (run.errors[why] ?? 0) + 1;
      resolve();
    };
    const req = request({ host: '127.0.0.1', port: cfg.port, path: '/', agent, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => {
        const end = performance.now();
        const status = res.statusCode ?? 0;
        run.byStatus[status] = (run.byStatus[status] ?? 0) + 1;
        const v = res.headers['x-version'];
        if (typeof v === 'string') run.byVersion[v] = (run.byVersion[v] ?? 0) + 1;
        if (status === 200) run.ok++;
        else {
          run.failed++;
          run.errors[`status ${status}`] = (run.errors[`status ${status}`] ?? 0) + 1;
        }
        if (record) {
          run.latency.push(Math.round((end - sentAt) * 1000) / 1000);
          run.latencyFromDue.push(Math.round((end - due) * 1000) / 1000);
        }
        resolve();
      });
      res.on('error', (err) => fail(err.message));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err) => fail(err.message));
    req.end();
  });
}

/** Sends rate × seconds requests on schedule; resolves when every one has answered or failed. */
async function schedule(seconds: number, record: boolean): Promise<Run> {
  const run: Run = { sent: 0, ok: 0, failed: 0, byStatus: {}, byVersion: {}, errors: {}, lateSends: 0, latency: [], latencyFromDue: [] };
  const total = Math.round(cfg.rate * seconds);
  const every = 1000 / cfg.rate;
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    let i = 0;
    const tick = () => {
      const now = performance.now();
      while (i < total && t0 + i * every <= now) pending.push(one(t0 + i * every, run, record)), i++;
      if (i >= total) {
        clearInterval(timer);
        resolve();
      }
    };
    // setInterval fires about every millisecond; each tick sends every request that has come due.
    const timer = setInterval(tick, 1);
  });
  await Promise.all(pending);
  return run;
}

if (cfg.warmupSeconds) await schedule(cfg.warmupSeconds, false);
process.stdout.write(`${JSON.stringify({ event: 'measuring' })}\n`);
const run = await schedule(cfg.seconds, true);
process.stdout.write(`${JSON.stringify({ event: 'done', rate: cfg.rate, seconds: cfg.seconds, ...run })}\n`);
agent.destroy();
process.exit(0);
