// The embedded cluster of `kvgate serve --workers N`: N worker agents (`kvgate worker
// --engine mocker|sglang --port 0 -- <engine args>`) as child processes of the frontend,
// each supervising its own engine. Their log lines are forwarded into the frontend's log as
// records tagged `worker: i` (src/observability/log.ts); each prints one ready line with its
// request-plane URL and engine PID, which is how the frontend finds them. A worker that dies
// after it was ready is started again with backoff (--port 0: fresh ports), and the frontend
// is told of both (onWorkerDown, onWorkerUp) to route around it meanwhile. stop() sends
// SIGTERM to each agent by PID (it drains and stops its engine) and SIGKILLs agent and
// engine group if that takes longer than the grace.

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { KvgateError } from '../errors.js';
import type { Logger } from '../observability/log.js';
import type { EngineKind, WorkerRole } from '../engine/model_card.js';
import { PARENT_PID_ENV } from '../worker/parent_watch.js';

// What the mocker runs with when the user gives no engine arguments of their own: the
// page size of SGLang's common GPU setups, the Qwen3 model whose tokenizer the frontend
// ships, and a timing model 10x faster than the GPU it models, so the demo is snappy.
export const MOCKER_DEMO_ARGS: readonly (readonly [string, string])[] = [
  ['--model-path', 'Qwen/Qwen3-0.6B'],
  ['--page-size', '16'],
  ['--speedup-ratio', '10'],
];

const hasFlag = (args: readonly string[], flag: string) => args.some((a) => a === flag || a.startsWith(`${flag}=`));

// The engine arguments every worker gets: the user's, plus the mocker demo defaults the
// user did not set. SGLang needs a model.
export function clusterEngineArgs(engine: EngineKind, userArgs: readonly string[]): string[] {
  if (engine === 'sglang') {
    if (!hasFlag(userArgs, '--model-path') && !hasFlag(userArgs, '--model')) {
      throw new KvgateError('invalid_config', '--engine sglang needs a model: kvgate serve --engine sglang -- --model-path <hub id or directory> [sglang args]');
    }
    return [...userArgs];
  }
  const args = [...userArgs];
  for (const [flag, value] of MOCKER_DEMO_ARGS) if (!hasFlag(args, flag)) args.push(flag, value);
  return args;
}

export interface RespawnPolicy {
  // Delay before the first respawn of a worker; doubles per failed attempt up to maxMs.
  backoffMs: number;
  maxMs: number;
  // A worker up this long before it died starts again from backoffMs.
  stableMs: number;
}

export const DEFAULT_RESPAWN: RespawnPolicy = { backoffMs: 1000, maxMs: 30_000, stableMs: 60_000 };

export interface LocalClusterOptions {
  workers: number;
  // Role of each worker index (kvgate worker --role); default agg. Disaggregated fleets
  // give prefill and decode roles.
  roles?: readonly WorkerRole[];
  engine: EngineKind;
  // Complete engine arguments (see clusterEngineArgs).
  engineArgs: string[];
  // Extra `kvgate worker` flags (log level, startup timeout, ...).
  workerArgs?: string[];
  // How to run kvgate: [executable, ...args before the subcommand].
  kvgate: string[];
  // Deadline for every worker's ready line (also for each respawn).
  startupTimeoutMs: number;
  env?: NodeJS.ProcessEnv;
  // The workers' log lines are forwarded here, tagged with their index.
  log: Logger;
  // Workers that die after start-up are started again (default DEFAULT_RESPAWN; false: never).
  respawn?: RespawnPolicy | false;
}

export interface SpawnedWorker {
  index: number;
  pid: number;
  url: string;
  enginePid: number;
  exited: Promise<string>;
}

interface Child {
  index: number;
  proc: ChildProcess;
  // Known once the worker printed its ready line.
  enginePid?: number;
  exited: Promise<string>;
  ready: Promise<{ url: string; enginePid: number }>;
}

// One worker index: its current process, and its respawn state.
interface Slot {
  index: number;
  child: Child;
  worker: SpawnedWorker | null;
  upSince: number;
  failures: number;
  timer: NodeJS.Timeout | null;
  // Why the worker is not serving now (null while it is).
  down: string | null;
}

const READY = /^kvgate worker ready: (ws:\/\/\S+) .*engine_pid=(\d+)/;

export class LocalCluster {
  private readonly slots: Slot[];
  private stopping: Promise<void> | null = null;
  private readonly downListeners: ((w: SpawnedWorker, how: string) => void)[] = [];
  private readonly upListeners: ((w: SpawnedWorker) => void)[] = [];

  // Starts every worker now; ready() waits for them, stop() stops them (also while starting).
  constructor(private readonly opts: LocalClusterOptions) {
    this.slots = Array.from({ length: opts.workers }, (_, i) => ({ index: i, child: spawnWorker(i, opts), worker: null, upSince: 0, failures: 0, timer: null, down: 'starting' }));
  }

  // The workers serving now (after ready(): one per index, except those being respawned).
  get workers(): SpawnedWorker[] {
    return this.slots.flatMap((s) => (s.worker && s.down === null ? [s.worker] : []));
  }

  // Workers not serving now, with the reason (dead and waiting for a respawn, starting again).
  get unavailable(): { index: number; reason: string }[] {
    return this.slots.flatMap((s) => (s.down === null ? [] : [{ index: s.index, reason: s.down }]));
  }

  // Resolves when every worker printed its ready line; throws when one exits first, when
  // the cluster is stopped, or after startupTimeoutMs (the caller then stops the cluster).
  async ready(): Promise<SpawnedWorker[]> {
    const ready = await withDeadline(Promise.all(this.slots.map((s) => s.child.ready)), this.opts.startupTimeoutMs, 'the workers were');
    const now = Date.now();
    for (const s of this.slots) {
      const r = ready[s.index]!;
      s.worker = { index: s.index, pid: s.child.proc.pid!, url: r.url, enginePid: r.enginePid, exited: s.child.exited };
      s.upSince = now;
      s.down = null;
      this.watch(s, s.worker);
    }
    return this.workers;
  }

  // A worker died after it was ready (it is started again unless respawn is off).
  onWorkerDown(listener: (w: SpawnedWorker, how: string) => void): void {
    this.downListeners.push(listener);
  }

  // A respawned worker printed its ready line.
  onWorkerUp(listener: (w: SpawnedWorker) => void): void {
    this.upListeners.push(listener);
  }

  // PIDs of the current worker agents (running or not).
  get pids(): number[] {
    return this.slots.flatMap((s) => (s.child.proc.pid === undefined ? [] : [s.child.proc.pid]));
  }

  // SIGTERM to every agent (they drain, then stop their engines); after graceMs, SIGKILL to
  // what is left, engine process groups included. No respawn after this.
  stop(graceMs = 30_000): Promise<void> {
    this.stopping ??= (async () => {
      for (const s of this.slots) if (s.timer) clearTimeout(s.timer);
      await stopChildren(this.slots.map((s) => s.child), graceMs);
      this.opts.log.info('workers stopped');
    })();
    return this.stopping;
  }

  private watch(s: Slot, w: SpawnedWorker): void {
    void w.exited.then((how) => {
      if (this.stopping) return;
      s.down = `worker ${w.index} (pid ${w.pid}) ${how}`;
      // An agent killed hard leaves its engine (own process group) behind: an SGLang engine
      // would keep its GPU from the respawned one.
      killGroup(w.enginePid);
      const p = this.policy();
      if (p && Date.now() - s.upSince >= p.stableMs) s.failures = 0;
      const delay = this.nextDelay(s);
      this.opts.log.error(`worker ${w.index} (pid ${w.pid}, ${w.url}) ${how}; serving with the others${delay === null ? '' : `, starting it again in ${delay / 1000} s`}`, { worker: w.index });
      for (const l of this.downListeners) l(w, how);
      if (delay !== null) this.scheduleRespawn(s, delay);
    });
  }

  private policy(): RespawnPolicy | null {
    return this.opts.respawn === false ? null : (this.opts.respawn ?? DEFAULT_RESPAWN);
  }

  private nextDelay(s: Slot): number | null {
    const p = this.policy();
    return p ? Math.min(p.backoffMs * 2 ** s.failures, p.maxMs) : null;
  }

  private scheduleRespawn(s: Slot, delayMs: number): void {
    s.down += `; starting again in ${delayMs / 1000} s`;
    s.timer = setTimeout(() => void this.respawn(s), delayMs);
  }

  private async respawn(s: Slot): Promise<void> {
    s.timer = null;
    if (this.stopping) return;
    s.failures++;
    s.down = `worker ${s.index} starting again (attempt ${s.failures})`;
    s.child = spawnWorker(s.index, this.opts);
    try {
      const r = await withDeadline(s.child.ready, this.opts.startupTimeoutMs, `worker ${s.index} was`);
      if (this.stopping) return;
      const w: SpawnedWorker = { index: s.index, pid: s.child.proc.pid!, url: r.url, enginePid: r.enginePid, exited: s.child.exited };
      s.worker = w;
      s.upSince = Date.now();
      s.down = null;
      this.opts.log.info(`worker ${s.index} started again (pid ${w.pid}, ${w.url})`, { worker: s.index });
      this.watch(s, w);
      for (const l of this.upListeners) l(w);
    } catch (err) {
      if (this.stopping) return;
      await stopChildren([s.child], 5000);
      if (this.stopping) return;
      const delay = this.nextDelay(s)!;
      s.down = (err as Error).message;
      this.opts.log.error(`${(err as Error).message}; trying again in ${delay / 1000} s`, { worker: s.index });
      this.scheduleRespawn(s, delay);
    }
  }
}

async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new KvgateError('engine_timeout', `${what} not ready within ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

async function stopChildren(children: Child[], graceMs: number): Promise<void> {
  await Promise.all(
    children.map(async (c) => {
      const alive = () => c.proc.exitCode === null && c.proc.signalCode === null;
      if (!alive()) return;
      c.proc.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([c.exited.then(() => false), new Promise<boolean>((r) => (timer = setTimeout(() => r(true), graceMs)))]);
      clearTimeout(timer);
      if (!timedOut) return;
      c.proc.kill('SIGKILL');
      // A killed agent cannot stop its engine (its own process group) any more.
      if (c.enginePid) killGroup(c.enginePid);
      await c.exited;
    }),
  );
}

function spawnWorker(index: number, opts: LocalClusterOptions): Child {
  const [command, ...pre] = opts.kvgate;
  // JSON logs whatever the frontend's format: they are parsed and re-emitted in it.
  const role = opts.roles?.[index] ?? 'agg';
  const args = [...pre, 'worker', '--engine', opts.engine, '--role', role, '--port', '0', ...(opts.workerArgs ?? []), '--log-format', 'json', '--', ...opts.engineArgs];
  // The worker shuts down when this process is gone, even SIGKILLed (src/worker/parent_watch.ts).
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env, [PARENT_PID_ENV]: String(process.pid) };
  // One GPU per SGLang engine unless the user chose the devices.
  if (opts.engine === 'sglang' && env['CUDA_VISIBLE_DEVICES'] === undefined) env['CUDA_VISIBLE_DEVICES'] = String(index);
  opts.log.info(`starting worker ${index}: ${[command, ...args].join(' ')}`);
  // Its own process group: a Ctrl-C in the terminal reaches serve only, which drains first
  // and then stops the workers in order (they would otherwise start draining at once, and
  // exit hard on serve's SIGTERM as a second signal).
  const proc = spawn(command!, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const tag = { worker: index };
  const child: Child = { index, proc, exited: null!, ready: null! };
  let onReady: (r: { url: string; enginePid: number }) => void = () => undefined;
  const ready = new Promise<{ url: string; enginePid: number }>((resolve) => (onReady = resolve));
  createInterface({ input: proc.stdout!, crlfDelay: Infinity }).on('line', (line) => {
    const m = READY.exec(line);
    if (m) {
      child.enginePid = Number(m[2]);
      onReady({ url: m[1]!, enginePid: child.enginePid });
    }
    opts.log.forward(line, tag);
  });
  createInterface({ input: proc.stderr!, crlfDelay: Infinity }).on('line', (line) => opts.log.forward(line, tag));
  const exited = new Promise<string>((resolve) => {
    proc.once('exit', (code, signal) => resolve(signal ? `was killed by ${signal}` : `exited with code ${code}`));
    proc.once('error', (err) => resolve(`could not start: ${err.message}`));
  });
  const failed = exited.then((how) => {
    throw new KvgateError('engine_error', `worker ${index} ${how} before it was ready`);
  });
  failed.catch(() => undefined);
  child.exited = exited;
  child.ready = Promise.race([ready, failed]);
  return child;
}
