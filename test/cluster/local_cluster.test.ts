// The embedded cluster as processes: `kvgate worker --engine mocker` children, their log
// lines forwarded as tagged JSON records, their ready lines parsed, a failing worker reported, and stop() leaving nothing
// behind (also when it comes while the workers are still starting).

import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { clusterEngineArgs, LocalCluster, type RespawnPolicy, type SpawnedWorker } from '../../src/cluster/local_cluster.js';
import { createLogger, parseLogRecord } from '../../src/observability/log.js';
import { RequestPlaneClient } from '../../src/transport/request_plane_client.js';
import { KVGATE } from '../e2e/stack.js';

const clusters: LocalCluster[] = [];
afterEach(async () => {
  await Promise.all(clusters.splice(0).map((c) => c.stop(5000)));
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0] !== 'Z';
  } catch {
    return false;
  }
};

function cluster(workers: number, engineArgs: string[], lines: string[], respawn?: RespawnPolicy | false): LocalCluster {
  const log = createLogger({ level: 'debug', write: (l) => lines.push(l) });
  const c = new LocalCluster({ workers, engine: 'mocker', engineArgs, kvgate: KVGATE, startupTimeoutMs: 30_000, log, respawn });
  clusters.push(c);
  return c;
}

describe('clusterEngineArgs', () => {
  it('gives the mocker demo defaults the user did not set, and SGLang nothing but a required model', () => {
    expect(clusterEngineArgs('mocker', [])).toEqual(['--model-path', 'Qwen/Qwen3-0.6B', '--page-size', '16', '--speedup-ratio', '10']);
    expect(clusterEngineArgs('mocker', ['--page-size=32', '--max-total-tokens', '4096'])).toEqual([
      '--page-size=32', '--max-total-tokens', '4096', '--model-path', 'Qwen/Qwen3-0.6B', '--speedup-ratio', '10',
    ]);
    expect(clusterEngineArgs('sglang', ['--model-path', 'Qwen/Qwen3-8B', '--tp', '2'])).toEqual(['--model-path', 'Qwen/Qwen3-8B', '--tp', '2']);
    expect(() => clusterEngineArgs('sglang', ['--tp', '2'])).toThrow(/--engine sglang needs a model/);
  });
});

describe('LocalCluster', () => {
  it('starts the workers, reports their request planes and engine PIDs, and stops them all', { timeout: 60_000 }, async () => {
    const lines: string[] = [];
    const c = cluster(2, clusterEngineArgs('mocker', []), lines);
    const workers = await c.ready();
    expect(workers.map((w) => w.index)).toEqual([0, 1]);
    for (const w of workers) {
      expect(w.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
      expect(alive(w.pid) && alive(w.enginePid)).toBe(true);
      const client = new RequestPlaneClient({ url: w.url });
      const hello = await client.connect();
      expect(hello.card).toMatchObject({ servedModelName: 'Qwen/Qwen3-0.6B', pageSize: 16, engine: 'mocker' });
      await client.close();
    }
    // One JSON object per line: the workers' records tagged with their index, the engines'
    // (mocker) records merged into them rather than quoted inside.
    const records = lines.map((l) => parseLogRecord(l));
    expect(records.every((r) => r !== null)).toBe(true);
    expect(records.some((r) => r!['worker'] === 0 && String(r!['msg']).startsWith('kvgate worker ready: '))).toBe(true);
    expect(records.some((r) => r!['worker'] === 1 && r!['source'] === 'engine' && r!['role'] === 'mocker' && r!['msg'] === 'serving')).toBe(true);
    await c.stop();
    expect(workers.flatMap((w) => [w.pid, w.enginePid]).filter(alive)).toEqual([]);
  });

  it('reports a worker that exits before it is ready, and stops the others', { timeout: 60_000 }, async () => {
    const lines: string[] = [];
    const c = cluster(2, ['--page-size', '0'], lines);
    await expect(c.ready()).rejects.toThrow(/worker \d exited with code 1 before it was ready/);
    await c.stop();
    expect(c.pids.filter(alive)).toEqual([]);
    expect(lines.join('\n')).toMatch(/--page-size must be >= 1/);
  });

  it('starts a worker killed hard again on fresh ports, after the backoff, and stops the new one too', { timeout: 60_000 }, async () => {
    const lines: string[] = [];
    const c = cluster(2, clusterEngineArgs('mocker', []), lines, { backoffMs: 300, maxMs: 1000, stableMs: 60_000 });
    const [first] = await c.ready();
    const down: string[] = [];
    c.onWorkerDown((w, how) => down.push(`${w.index} ${how}`));
    const up = new Promise<SpawnedWorker>((r) => c.onWorkerUp(r));
    process.kill(first!.pid, 'SIGKILL');
    await expect.poll(() => c.unavailable, { timeout: 10_000 }).toEqual([{ index: 0, reason: expect.stringMatching(/worker 0 \(pid \d+\) was killed by SIGKILL; starting again in 0.3 s|worker 0 starting again/) }]);
    expect(c.workers.map((w) => w.index)).toEqual([1]);
    const again = await up;
    expect(down).toEqual(['0 was killed by SIGKILL']);
    expect(again.index).toBe(0);
    expect(again.url).not.toBe(first!.url);
    expect(again.pid).not.toBe(first!.pid);
    // The dead agent's engine went with it; the new one serves.
    await expect.poll(() => alive(first!.enginePid), { timeout: 10_000 }).toBe(false);
    const client = new RequestPlaneClient({ url: again.url });
    expect((await client.connect()).card).toMatchObject({ servedModelName: 'Qwen/Qwen3-0.6B' });
    await client.close();
    expect(c.unavailable).toEqual([]);
    expect(c.workers.map((w) => w.index)).toEqual([0, 1]);
    await c.stop();
    expect([again.pid, again.enginePid].filter(alive)).toEqual([]);
  });

  it('with respawn off, a dead worker stays down', { timeout: 60_000 }, async () => {
    const c = cluster(1, clusterEngineArgs('mocker', []), [], false);
    const [w] = await c.ready();
    process.kill(w!.pid, 'SIGKILL');
    await expect.poll(() => c.unavailable.length, { timeout: 10_000 }).toBe(1);
    await new Promise((r) => setTimeout(r, 1500));
    expect(c.unavailable[0]!.reason).toBe(`worker 0 (pid ${w!.pid}) was killed by SIGKILL`);
    expect(c.pids).toEqual([w!.pid]);
  });

  it('stops workers that are still starting', { timeout: 60_000 }, async () => {
    const c = cluster(2, clusterEngineArgs('mocker', ['--startup-delay', '30']), []);
    const ready = c.ready();
    ready.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 1000));
    await c.stop(10_000);
    await expect(ready).rejects.toThrow(/before it was ready/);
    expect(c.pids.filter(alive)).toEqual([]);
  });
});
