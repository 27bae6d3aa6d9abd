// Processes the gateway bench starts, and the CPU time of their trees.
//
// Every server and client the bench starts is spawned in its own process group and recorded
// here; `stopAll` (called on normal exit, on an error, and on SIGINT/SIGTERM) ends each of
// them by its PID and group id: SIGTERM, a grace period, then SIGKILL for whatever is left.
// Nothing else on the machine is touched.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';

export interface Started {
  name: string;
  child: ChildProcess;
  pid: number;
  logPath: string;
  // Resolves with the exit code (or signal name) once the process is gone.
  exited: Promise<string>;
  done: boolean;
}

const started: Started[] = [];
let shuttingDown = false;

// After this, `start` refuses new processes: a run being torn down starts nothing more.
export function shutdown(): void {
  shuttingDown = true;
}
export const isShuttingDown = () => shuttingDown;

export function start(name: string, cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; logPath: string }): Started {
  if (shuttingDown) throw new Error(`${name}: not started, the bench is stopping`);
  const log = createWriteStream(opts.logPath);
  log.write(`$ ${cmd} ${args.join(' ')}\n`);
  const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  if (child.pid === undefined) {
    child.on('error', () => {}); // reported by the throw below
    log.end();
    throw new Error(`${name}: could not start ${cmd} (not found or not executable?)`);
  }
  child.stdout!.pipe(log, { end: false });
  child.stderr!.pipe(log, { end: false });
  const s: Started = { name, child, pid: child.pid, logPath: opts.logPath, done: false, exited: Promise.resolve('') };
  // Settles once the output is in the log file (the pipes close, or 2 s after the exit if a
  // leftover grandchild holds them), so a failure message can quote the log's tail.
  s.exited = new Promise((resolve) => {
    let outcome = '';
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      log.end(() => resolve(outcome));
    };
    child.on('error', (err) => {
      s.done = true;
      outcome = `spawn error: ${err.message}`;
      settle();
    });
    child.on('exit', (code, signal) => {
      s.done = true;
      outcome = signal ?? `exit code ${code}`;
      setTimeout(settle, 2000).unref();
    });
    child.on('close', settle);
  });
  started.push(s);
  return s;
}

// Each process group we created, signalled by id (the group id is the leader's PID), and the
// leader itself in case it left the group.
function signalTree(s: Started, sig: NodeJS.Signals): void {
  for (const id of [-s.pid, s.pid]) {
    try {
      process.kill(id, sig);
    } catch {
      // already gone
    }
  }
}

// A group is gone when no process is left in it (the leader may exit before its children).
function groupAlive(s: Started): boolean {
  try {
    process.kill(-s.pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function stop(s: Started, graceMs = 10_000): Promise<void> {
  if (!groupAlive(s)) return;
  signalTree(s, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && groupAlive(s)) await sleep(100);
  if (groupAlive(s)) signalTree(s, 'SIGKILL');
  await Promise.race([s.exited, sleep(2000)]);
}

export async function stopAll(graceMs = 10_000): Promise<void> {
  await Promise.all(started.map((s) => stop(s, graceMs)));
}

// Last resort on process exit: no time to wait, SIGKILL every group still there.
export function killAllNow(): void {
  for (const s of started) if (groupAlive(s)) signalTree(s, 'SIGKILL');
}

export function logTail(s: Started, lines = 15): string {
  try {
    return readFileSync(s.logPath, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// A free TCP port on 127.0.0.1 (the OS picks it; the bench hands it to a server right after).
export { freePort } from '../../src/worker/ports.js';

// Polls `ready` until it returns true; fails early with the log tail when any of `procs` exits.
export async function waitReady(what: string, procs: Started[], ready: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const dead = procs.find((p) => p.done);
    if (dead) throw new Error(`${what}: ${dead.name} exited during start-up (${await dead.exited}); log ${dead.logPath}:\n${logTail(dead)}`);
    try {
      if (await ready()) return;
    } catch {
      // not listening yet
    }
    await sleep(250);
  }
  throw new Error(`${what}: not ready after ${timeoutMs / 1000} s; logs: ${procs.map((p) => p.logPath).join(', ')}\n${procs.map((p) => `[${p.name}]\n${logTail(p, 8)}`).join('\n')}`);
}

// ---- CPU time per role, from /proc ----

const TICKS_PER_SECOND = 100; // USER_HZ: the unit of utime/stime in /proc/<pid>/stat on Linux

interface ProcStat {
  ppid: number;
  ticks: number; // utime + stime of the process (all its threads), not of its reaped children
}

function readStat(pid: number): ProcStat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
  } catch {
    return null;
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

// Classifies a process of a tree by its command line; null = the role of its parent.
export type Classify = (cmdline: string) => string | null;

export interface CpuSample {
  t: number; // ms since the epoch
  pids: Map<number, { role: string; ticks: number }>;
}

// Samples the CPU time of every process in the trees under `roots` every `intervalMs`, so the
// time of any window (an aiperf run's measured phase) can be read off afterwards.
export class CpuSampler {
  readonly samples: CpuSample[] = [];
  private timer: NodeJS.Timeout | null = null;
  private roles = new Map<number, string>();

  constructor(
    private readonly roots: number[],
    private readonly classify: Classify,
    private readonly intervalMs = 200,
  ) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sample();
  }

  sample(): CpuSample {
    const stats = new Map<number, ProcStat>();
    for (const name of readdirSync('/proc')) {
      const pid = Number(name);
      if (!Number.isInteger(pid)) continue;
      const st = readStat(pid);
      if (st) stats.set(pid, st);
    }
    const pids = new Map<number, { role: string; ticks: number }>();
    for (const [pid, st] of stats) if (this.isDescendant(pid, stats)) pids.set(pid, { role: this.roleOf(pid, stats), ticks: st.ticks });
    const s = { t: Date.now(), pids };
    this.samples.push(s);
    return s;
  }

  // The role of the process's command line, else of its nearest classified ancestor in the tree.
  private roleOf(pid: number, stats: Map<number, ProcStat>): string {
    let role = this.roles.get(pid);
    if (role !== undefined) return role;
    role = 'other';
    for (let p = pid, i = 0; p > 1 && i < 64; i++) {
      const c = this.roles.get(p) ?? this.classify(cmdline(p));
      if (c !== null) {
        role = c;
        break;
      }
      if (this.roots.includes(p)) break;
      p = stats.get(p)?.ppid ?? 1;
    }
    this.roles.set(pid, role);
    return role;
  }

  private isDescendant(pid: number, stats: Map<number, ProcStat>): boolean {
    for (let p = pid, i = 0; p > 1 && i < 64; i++) {
      if (this.roots.includes(p)) return true;
      const st = stats.get(p);
      if (!st) return false;
      p = st.ppid;
    }
    return false;
  }

  // CPU ms per role between two times (ms since the epoch), each process's ticks interpolated
  // linearly between the samples around the time. `changed` lists processes that appeared or
  // vanished inside the window (a crash or restart: the window's numbers are then incomplete).
  window(from: number, to: number): { ms: Record<string, number>; changed: string[] } {
    const ms: Record<string, number> = {};
    const changed: string[] = [];
    const at = (t: number) => {
      let i = this.samples.findIndex((s) => s.t >= t);
      if (i < 0) i = this.samples.length - 1;
      return { before: this.samples[Math.max(0, i - 1)]!, after: this.samples[i]! };
    };
    const ticksAt = (pid: number, t: number): number | null => {
      const { before, after } = at(t);
      const a = before.pids.get(pid)?.ticks;
      const b = after.pids.get(pid)?.ticks;
      if (a === undefined || b === undefined) return b ?? a ?? null;
      if (after.t === before.t) return b;
      const f = Math.min(1, Math.max(0, (t - before.t) / (after.t - before.t)));
      return a + f * (b - a);
    };
    const all = new Map<number, string>();
    for (const s of this.samples) if (s.t >= from - 1000 && s.t <= to + 1000) for (const [pid, v] of s.pids) all.set(pid, v.role);
    for (const [pid, role] of all) {
      const a = ticksAt(pid, from);
      const b = ticksAt(pid, to);
      if (a === null || b === null) {
        changed.push(`${role} pid ${pid}`);
        continue;
      }
      ms[role] = (ms[role] ?? 0) + ((b - a) * 1000) / TICKS_PER_SECOND;
    }
    return { ms, changed };
  }
}
