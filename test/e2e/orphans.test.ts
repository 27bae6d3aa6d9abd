// A parent killed hard (SIGKILL: no handler runs) leaves no orphans: `kvgate serve`'s workers
// and their engines, and a `kvgate worker`'s mocker engine, notice their parent is gone and
// shut down on their own (src/worker/parent_watch.ts).

import { spawn, type ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { alive, KVGATE, waitFor, workerEnginePids } from './stack.js';

const started: ChildProcess[] = [];
// Worker and engine PIDs (engines lead their own process group) to kill if the test fails.
const strays: number[] = [];
afterEach(async () => {
  for (const p of started.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGKILL');
      await new Promise((r) => p.once('exit', r));
    }
  }
  for (const pid of strays.splice(0)) {
    for (const target of [pid, -pid]) {
      try {
        process.kill(target, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }
});

interface Proc {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
}

function run(args: string[]): Proc {
  const proc = spawn(KVGATE[0]!, [...KVGATE.slice(1), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(proc);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  return { proc, stdout: () => out, stderr: () => err };
}

async function sigkill(p: ChildProcess): Promise<void> {
  const exited = new Promise((r) => p.once('exit', r));
  p.kill('SIGKILL');
  await exited;
}

describe('a parent killed with SIGKILL leaves no orphans', () => {
  it('kvgate serve: both workers and both engines exit', { timeout: 90_000 }, async () => {
    const serve = run(['serve', '--workers', '2', '--port', '0']);
    await waitFor(() => /listening on http:\/\//.test(serve.stdout()) || serve.proc.exitCode !== null, 'kvgate serve to listen', 60_000);
    expect(serve.stdout(), serve.stderr().slice(-3000)).toMatch(/listening on http:\/\//);
    const agents = [.../workers: 2 x mocker \(pids (\d+), (\d+)\)/.exec(serve.stdout())!.slice(1)].map(Number);
    const engines = workerEnginePids(serve.stderr());
    expect(engines).toHaveLength(2);
    strays.push(...agents, ...engines);
    const tree = [...agents, ...engines];
    expect(tree.every(alive)).toBe(true);

    await sigkill(serve.proc);
    await waitFor(() => tree.every((pid) => !alive(pid)), 'the workers and engines of a SIGKILLed serve to exit', 20_000);
  });

  it('kvgate worker --engine mocker: the mocker exits', { timeout: 60_000 }, async () => {
    const worker = run(['worker', '--engine', 'mocker', '--port', '0', '--', '--model-path', 'Qwen/Qwen3-0.6B', '--page-size', '16']);
    const ready = /kvgate worker ready: ws:\/\/\S+ .*engine_pid=(\d+)/;
    await waitFor(() => ready.test(worker.stdout()) || worker.proc.exitCode !== null, 'the worker to be ready', 45_000);
    const m = ready.exec(worker.stdout());
    expect(m, worker.stderr().slice(-3000)).not.toBeNull();
    const engine = Number(m![1]);
    strays.push(engine);
    expect(alive(engine)).toBe(true);

    await sigkill(worker.proc);
    await waitFor(() => !alive(engine), 'the mocker of a SIGKILLed worker to exit', 15_000);
  });
});
