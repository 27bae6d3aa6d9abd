// A parent killed hard (SIGKILL: no handler runs) leaves no orphans: `kvgate serve`'s workers
// and their engines, and a `kvgate worker`'s mocker engine, notice their parent is gone and
// shut down on their own (src/worker/parent_watch.ts).

import { afterEach, describe, expect, it } from 'vitest';
import { kill, Processes } from '../fixtures/processes.js';
import { alive, waitFor, workerEnginePids } from './stack.js';

// Worker and engine PIDs (engines lead their own process group) are reaped if a test fails.
const procs = new Processes();
afterEach(() => procs.reap());

describe('a parent killed with SIGKILL leaves no orphans', () => {
  it('kvgate serve: both workers and both engines exit', { timeout: 90_000 }, async () => {
    const serve = procs.kvgate(['serve', '--workers', '2', '--port', '0']);
    await waitFor(() => /listening on http:\/\//.test(serve.stdout()) || serve.proc.exitCode !== null, 'kvgate serve to listen', 60_000);
    expect(serve.stdout(), serve.stderr().slice(-3000)).toMatch(/listening on http:\/\//);
    const agents = [.../workers: 2 x mocker \(pids (\d+), (\d+)\)/.exec(serve.stdout())!.slice(1)].map(Number);
    const engines = workerEnginePids(serve.stderr());
    expect(engines).toHaveLength(2);
    procs.stray(...agents, ...engines);
    const tree = [...agents, ...engines];
    expect(tree.every(alive)).toBe(true);

    await kill(serve.proc);
    await waitFor(() => tree.every((pid) => !alive(pid)), 'the workers and engines of a SIGKILLed serve to exit', 20_000);
  });

  it('kvgate worker --engine mocker: the mocker exits', { timeout: 60_000 }, async () => {
    const worker = procs.kvgate(['worker', '--engine', 'mocker', '--port', '0', '--', '--model-path', 'Qwen/Qwen3-0.6B', '--page-size', '16']);
    const ready = /kvgate worker ready: ws:\/\/\S+ .*engine_pid=(\d+)/;
    await waitFor(() => ready.test(worker.stdout()) || worker.proc.exitCode !== null, 'the worker to be ready', 45_000);
    const m = ready.exec(worker.stdout());
    expect(m, worker.stderr().slice(-3000)).not.toBeNull();
    const engine = Number(m![1]);
    procs.stray(engine);
    expect(alive(engine)).toBe(true);

    await kill(worker.proc);
    await waitFor(() => !alive(engine), 'the mocker of a SIGKILLed worker to exit', 15_000);
  });
});
