// The embedded cluster of `kvgate serve --workers N`: N worker agents (`kvgate worker
// --engine mocker|sglang --port 0 -- <engine args>`) as child processes of the frontend,
// each supervising its own engine. Their output is passed through line by line, prefixed
// `[worker i]`; each prints one ready line with its request-plane URL and engine PID, which
// is how the frontend finds them. stop() sends SIGTERM to each agent by PID (it drains and
// stops its engine) and SIGKILLs agent and engine group if that takes longer than the grace.

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { KvgateError } from '../errors.js';
import type { Logger } from '../observability/log.js';
import type { EngineKind } from '../worker/engine_args.js';
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

export interface LocalClusterOptions {
  workers: number;
  engine: EngineKind;
  // Complete engine arguments (see clusterEngineArgs).
  engineArgs: string[];
  // Extra `kvgate worker` flags (log level, startup timeout, ...).
  workerArgs?: string[];
  // How to run kvgate: [executable, ...args before the subcommand].
  kvgate: string[];
  // Deadline for every worker's ready line.
  startupTimeoutMs: number;
  env?: NodeJS.ProcessEnv;
  // Receives each prefixed output line of the workers (default: stderr).
  output?: (line: string) => void;
  log: Logger;
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

const READY = /^kvgate worker ready: (ws:\/\/\S+) .*engine_pid=(\d+)/;

export class LocalCluster {
  // Filled by ready().
  workers: SpawnedWorker[] = [];
  private readonly children: Child[];
  private stopping: Promise<void> | null = null;

  // Starts every worker now; ready() waits for them, stop() stops them (also while starting).
  constructor(private readonly opts: LocalClusterOptions) {
    this.children = Array.from({ length: opts.workers }, (_, i) => spawnWorker(i, opts));
  }

  // Resolves when every worker printed its ready line; throws when one exits first, when
  // the cluster is stopped, or after startupTimeoutMs (the caller then stops the cluster).
  async ready(): Promise<SpawnedWorker[]> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      const s = this.opts.startupTimeoutMs / 1000;
      timer = setTimeout(() => reject(new KvgateError('engine_timeout', `the workers were not ready within ${s} s`)), this.opts.startupTimeoutMs);
    });
    try {
      const ready = await Promise.race([Promise.all(this.children.map((c) => c.ready)), deadline]);
      this.workers = this.children.map((c, i) => ({ index: i, pid: c.proc.pid!, url: ready[i]!.url, enginePid: ready[i]!.enginePid, exited: c.exited }));
    } finally {
      clearTimeout(timer);
    }
    for (const w of this.workers) {
      void w.exited.then((how) => {
        if (!this.stopping) this.opts.log.error(`worker ${w.index} (pid ${w.pid}, ${w.url}) ${how}; serving with the others`);
      });
    }
    return this.workers;
  }

  // PIDs of the worker agents (running or not).
  get pids(): number[] {
    return this.children.flatMap((c) => (c.proc.pid === undefined ? [] : [c.proc.pid]));
  }

  // SIGTERM to every agent (they drain, then stop their engines); after graceMs, SIGKILL to
  // what is left, engine process groups included.
  stop(graceMs = 30_000): Promise<void> {
    this.stopping ??= stopChildren(this.children, graceMs).then(() => this.opts.log.info('workers stopped'));
    return this.stopping;
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
      if (c.enginePid) {
        try {
          process.kill(-c.enginePid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      await c.exited;
    }),
  );
}

function spawnWorker(index: number, opts: LocalClusterOptions): Child {
  const [command, ...pre] = opts.kvgate;
  const args = [...pre, 'worker', '--engine', opts.engine, '--port', '0', ...(opts.workerArgs ?? []), '--', ...opts.engineArgs];
  // The worker shuts down when this process is gone, even SIGKILLed (src/worker/parent_watch.ts).
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env, [PARENT_PID_ENV]: String(process.pid) };
  // One GPU per SGLang engine unless the user chose the devices.
  if (opts.engine === 'sglang' && env['CUDA_VISIBLE_DEVICES'] === undefined) env['CUDA_VISIBLE_DEVICES'] = String(index);
  opts.log.info(`starting worker ${index}: ${[command, ...args].join(' ')}`);
  // Its own process group: a Ctrl-C in the terminal reaches serve only, which drains first
  // and then stops the workers in order (they would otherwise start draining at once, and
  // exit hard on serve's SIGTERM as a second signal).
  const proc = spawn(command!, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const output = opts.output ?? ((line: string) => process.stderr.write(line + '\n'));
  const prefix = `[worker ${index}] `;
  const child: Child = { index, proc, exited: null!, ready: null! };
  let onReady: (r: { url: string; enginePid: number }) => void = () => undefined;
  const ready = new Promise<{ url: string; enginePid: number }>((resolve) => (onReady = resolve));
  createInterface({ input: proc.stdout!, crlfDelay: Infinity }).on('line', (line) => {
    const m = READY.exec(line);
    if (m) {
      child.enginePid = Number(m[2]);
      onReady({ url: m[1]!, enginePid: child.enginePid });
    }
    output(prefix + line);
  });
  createInterface({ input: proc.stderr!, crlfDelay: Infinity }).on('line', (line) => output(prefix + line));
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
