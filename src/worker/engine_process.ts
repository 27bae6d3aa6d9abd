// One engine process: spawned in its own process group (SGLang starts scheduler and
// detokenizer children; stopping the group stops them too), its stdout and stderr passed
// line by line into the worker's log as records tagged `source: engine` (a mocker's JSON
// lines merged as they are, SGLang's text lines as messages), stopped (group and all) with
// SIGTERM and, after a grace period, SIGKILL.

import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
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
      createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => log.forward(line, { source: 'engine' }));
    }
    this.exited = new Promise((resolve) => {
      const done = (e: EngineExit) => {
        if (this.exit) return;
        this.exit = e;
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

  // SIGTERM to the engine's process group, then SIGKILL to whatever of the group is left
  // after `graceMs`: the engine's children too, which matters after a crash (SGLang's
  // scheduler processes would keep holding the GPU).
  async stop(graceMs: number): Promise<EngineExit> {
    if (this.groupAlive()) {
      this.signalGroup('SIGTERM');
      const deadline = Date.now() + graceMs;
      while (this.groupAlive() && Date.now() < deadline) await sleep(50);
      if (this.groupAlive()) this.signalGroup('SIGKILL');
    }
    const exit = await this.exited;
    // What SIGKILL hit is gone a moment later (under load, a moment can be long): stop()
    // returns once the group is, so nothing of the engine outlives its worker.
    const until = Date.now() + 2000;
    while (this.groupAlive() && Date.now() < until) await sleep(20);
    process.removeListener('exit', this.killOnExit);
    return exit;
  }

  // Any process of the group (the leader included, until it is reaped) still there.
  private groupAlive(): boolean {
    const pid = this.child.pid;
    if (pid === undefined) return false;
    try {
      process.kill(-pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  private signalGroup(sig: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, sig);
    } catch {
      /* the group is gone */
    }
  }

  private readonly killOnExit = () => {
    if (this.groupAlive()) this.signalGroup('SIGKILL');
  };
}
