// One engine process: spawned in its own process group (SGLang starts scheduler and
// detokenizer children; stopping the group stops them too), its stdout and stderr passed
// line by line into the worker's log as messages prefixed `[engine] `, stopped with
// SIGTERM and, after a grace period, SIGKILL.

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from '../observability/log.js';
import type { EngineLaunch } from './engine_args.js';

export interface EngineExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  // Set when the process could not be started at all (e.g. python3 not on PATH).
  error?: Error;
}

export const describeExit = (e: EngineExit) =>
  e.error ? `could not start: ${e.error.message}` : e.signal ? `killed by ${e.signal}` : `exited with code ${e.code}`;

export class EngineProcess {
  private readonly child: ChildProcess;
  readonly exited: Promise<EngineExit>;
  readonly startedAt = Date.now();
  exit: EngineExit | null = null;

  constructor(launch: EngineLaunch, log: Logger) {
    this.child = spawn(launch.command, launch.args, { env: launch.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => log.info(`[engine] ${line}`));
    }
    this.exited = new Promise((resolve) => {
      const done = (e: EngineExit) => {
        if (this.exit) return;
        this.exit = e;
        process.removeListener('exit', this.killOnExit);
        resolve(e);
      };
      this.child.once('exit', (code, signal) => done({ code, signal }));
      this.child.once('error', (error) => done({ code: null, signal: null, error }));
    });
    // A worker that exits for any reason must not leave its engine behind.
    process.once('exit', this.killOnExit);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exit === null;
  }

  // SIGTERM to the engine's process group; SIGKILL if it is still there after `graceMs`.
  async stop(graceMs: number): Promise<EngineExit> {
    if (this.running) {
      this.signal('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const graceOver = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), graceMs)));
      const exited = await Promise.race([this.exited, graceOver]);
      clearTimeout(timer);
      if (!exited) this.signal('SIGKILL');
    }
    return this.exited;
  }

  private signal(sig: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, sig);
    } catch {
      // The group is gone already; the leader may still be reaped.
      try {
        process.kill(pid, sig);
      } catch {
        /* gone */
      }
    }
  }

  private readonly killOnExit = () => {
    if (this.running) this.signal('SIGKILL');
  };
}
