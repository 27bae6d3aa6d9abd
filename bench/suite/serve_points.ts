// Serving points of the bench suite: one system (a kvgate router mode or a peer) at one load,
// run `repeats` times, each run on a fresh process set, the systems taking turns in each repeat
// (the shared machine's load drifts; side-by-side runs should share the same moment). A peer
// that cannot start keeps its row with the reason; a kvgate mode that fails throws.

import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { Results } from '../../src/bench/stats.js';
import type { Peers } from '../gateway/peers.js';
import type { EngineSettings } from '../gateway/systems.js';
import { kvgateBench } from './procs.js';
import { spread, type Spread } from './summary.js';
import { isPeer, logDirOf, startTarget } from './targets.js';

export interface ServePoint {
  system: string; // a kvgate router mode or a peer
  api: string; // the kvgate bench --api it took
  concurrency: number | null; // closed loop; null: open loop at `rate`, or a trace at its timestamps
  rate: number | null;
  kvTokens: number;
  loadAverage: number[]; // per run, at its end
  runs: Results[];
  problem: string | null; // why a peer has no result
}

// Closed loop, Poisson arrivals, or a trace replayed at its own timestamps (open loop; the
// args carry --trace-speedup).
export type Load = { concurrency: number } | { rate: number } | { replay: true };

export interface PointRunner {
  engine: EngineSettings;
  repeats: number;
  scratch: string; // per-run output and process logs
  peers: Peers | null | Error; // the bench cache (Dynamo's venv), or why it is missing
  log(s: string): void;
}

export async function servePoints(o: PointRunner, systems: string[], load: Load, tag: string, args: string[], kvTokens = o.engine.kvTokens): Promise<ServePoint[]> {
  const ps: ServePoint[] = systems.map((system) => ({
    system, api: '', kvTokens, loadAverage: [], runs: [], problem: null,
    concurrency: 'concurrency' in load ? load.concurrency : null,
    rate: 'rate' in load ? load.rate : null,
  }));
  for (let r = 0; r < o.repeats; r++) {
    for (const p of ps) {
      if (p.problem) continue;
      try {
        await runOnce(o, p, load, `${tag}-${p.system}-r${r}`, args);
      } catch (err) {
        if (!isPeer(p.system)) throw err;
        p.problem = (err as Error).message.split('\n').slice(0, 2).join(' ').slice(0, 300);
        o.log(`${tag} ${p.system}: no result: ${p.problem}`);
      }
    }
  }
  return ps;
}

async function runOnce(o: PointRunner, p: ServePoint, load: Load, tag: string, args: string[]): Promise<void> {
  if (o.peers instanceof Error && p.system === 'dynamo') throw o.peers;
  const t = await startTarget(p.system, { ...o.engine, kvTokens: p.kvTokens }, logDirOf(o.scratch, tag), o.peers instanceof Error ? null : o.peers);
  try {
    const drive = 'concurrency' in load ? ['--concurrency', String(load.concurrency)] : 'rate' in load ? ['--rate', load.rate.toFixed(2)] : [];
    const result = await kvgateBench(['--url', t.url, ...t.api, ...args, ...drive], join(o.scratch, tag));
    p.api = t.api[1]!;
    p.runs.push(result);
    p.loadAverage.push(loadavg()[0]!);
    o.log(`${tag}: ${result.requestsPerS.toFixed(1)} req/s, TTFT p50 ${result.ttftMs?.p50.toFixed(1)} ms, cached ${(100 * (result.cachedTokenShare ?? NaN)).toFixed(1)}%, failed ${result.requests.failed}, load ${loadavg()[0]!.toFixed(1)}`);
  } finally {
    await t.stop();
  }
}

export type Metric = (r: Results) => number | null | undefined;
export const ttftP50: Metric = (r) => r.ttftMs?.p50;
export const cached: Metric = (r) => (r.cachedTokenShare === null ? null : 100 * r.cachedTokenShare);
export const sp = (p: ServePoint | undefined, f: Metric): Spread => spread(p ? p.runs.map((r) => f(r) ?? NaN) : []);
// A point with failed requests is shown as such and left out of the plots and ratios.
export const clean = (p: ServePoint) => p.runs.length > 0 && p.runs.every((r) => r.requests.failed === 0);
export const med = (p: ServePoint | undefined, f: Metric) => sp(p, f).median;
// System `m`'s point among `ps` (one `pred` accepts), if it ran clean.
export const at = (ps: ServePoint[], m: string, pred: (p: ServePoint) => boolean = () => true) => ps.find((p) => p.system === m && pred(p) && clean(p));

// The KV tokens per engine at which `groups` shared-prefix groups' prompts fill 73% of the
// fleet's KV (the and llm-d's sizing, the simulator's).
export function sizedKv(groups: number, promptTokens: number, e: EngineSettings): number {
  return Math.ceil((groups * promptTokens) / 0.73 / e.workers / e.pageSize) * e.pageSize;
}
