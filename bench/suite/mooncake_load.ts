// `npm run bench:mooncake-load`: the simulator's Mooncake-at-load study (`npm run sim --
// mooncake-load`) on real processes. The trace's first N requests replayed open loop at their
// timestamps divided by each speed-up, through kvgate's router modes and, with --peers,
// SGLang's routers (cache_aware), each on a fresh fleet of mocker engines with the simulator's
// settings (8 engines, page 64, 262,144 KV tokens, the mocker's own timing: speedup 1, so model
// time is real time). Beside each row, the simulator's number for the same policy at the same
// point (kv: the product's kv-pending; sglang-router/smg: its cache_aware), and the oracle's hit
// rate, which the issue's hit-rate target is over. The last table is the issue's three ratios.
//
//   npm run bench:mooncake-load -- [--speedups 2.5,2.79,3] [--requests 1000] [--kv-tokens 262144]
//                                  [--modes kv,round-robin,random] [--peers sglang-router,smg]
//                                  [--repeats 1] [--no-sim]
//
// Every row is engine-bound only while the 2-core machine keeps up: each runs the trace's
// 13.7k-token prompts as token-id bodies through serve, 8 worker agents and 8 mockers; the load
// average is in every row.

import { loadavg, tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { mooncake, MOONCAKE_PATH } from '../../src/bench/workloads.js';
import { killAllNow, stopAll } from '../gateway/procs.js';
import type { EngineSettings } from '../gateway/systems.js';
import { PRODUCT_KNOBS, type PolicySpec } from '../sim/policies.js';
import { readTrace, traceCeiling } from '../sim/mooncake_load.js';
import { ENGINE_DEFAULTS, simulate, type SimResult } from '../sim/simulate.js';
import { at, cached, med, servePoints, sp, ttftP50, type Metric, type ServePoint } from './serve_points.js';
import { formatSpread, isPeer, spread } from './summary.js';

const { values: a } = parseArgs({
  args: process.argv.slice(2),
  options: {
    speedups: { type: 'string', default: '2.5,2.79,3' },
    requests: { type: 'string', default: '1000' },
    'kv-tokens': { type: 'string', default: '262144' },
    modes: { type: 'string', default: 'kv,round-robin,random' },
    peers: { type: 'string', default: '' },
    repeats: { type: 'string', default: '1' },
    sim: { type: 'boolean', default: true },
  },
  allowNegative: true,
});
const positive = (name: string, v: string, int: boolean): number => {
  const x = Number(v);
  if (!(x > 0) || (int && !Number.isInteger(x))) throw new Error(`--${name} wants a positive ${int ? 'integer' : 'number'}, got '${v}'`);
  return x;
};
const speedups = a.speedups.split(',').map((s) => positive('speedups', s.trim(), false));
const requests = positive('requests', a.requests, true);
const repeats = positive('repeats', a.repeats, true);
const modes = a.modes.split(',').map((s) => s.trim()).filter(Boolean);
const peerNames = a.peers.split(',').map((s) => s.trim()).filter(Boolean);
for (const p of peerNames) if (!isPeer(p) || p === 'dynamo') throw new Error(`--peers: '${p}' is not one of sglang-router, smg (Dynamo's mocker takes other flags)`);
for (const m of ['kv', 'round-robin', 'random']) if (!modes.includes(m)) throw new Error(`--modes must include ${m} (the ratios are over kv, round-robin and random)`);

const log = (s: string) => console.error(`[bench:mooncake-load] ${s}`);
process.on('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => process.exit(128 + (sig === 'SIGINT' ? 2 : 15)));

// The simulator's fleet (bench/sim/mooncake_load.ts): 8 engines, page 64, the mocker's defaults
// otherwise, at speedup 1. The context is widened so the trace's longest prompts (up to 121,924
// tokens; 63 of the first 1,000 exceed the mocker's default 40,960) run as in the simulator.
const engine: EngineSettings = { workers: 8, pageSize: 64, kvTokens: positive('kv-tokens', a['kv-tokens'], true), maxRunning: ENGINE_DEFAULTS.maxRunningRequests, speedup: 1, contextLength: 131_072 };
const tracePath = fileURLToPath(MOONCAKE_PATH);
const span = traceCeiling(readTrace(tracePath), requests).spanSec;
const runner = { engine, repeats, scratch: join(tmpdir(), `kvgate-mooncake-load-${process.pid}`), peers: null, log };
const systems = [...modes, ...peerNames];

// The simulator's policy for each real row.
const simPolicy = (system: string): PolicySpec | null =>
  system === 'kv' ? { kind: 'kv-pending', ...PRODUCT_KNOBS, eventDelayMs: 5 }
    : system === 'round-robin' || system === 'random' ? { kind: system }
      : isPeer(system) ? { kind: 'sglang-cache-aware' } : null;
function simulateAt(spec: PolicySpec, speed: number): SimResult {
  const t0 = Date.now();
  const r = simulate(mooncake({ path: tracePath, limit: requests, speed, seed: 1 }), { workers: engine.workers, engine: { ...ENGINE_DEFAULTS, pageSize: engine.pageSize, maxTotalTokens: engine.kvTokens }, policy: { ...spec, seed: 1 }, seed: 1 });
  log(`sim ${speed}x ${r.policy}: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  return r;
}

const f = (v: number | null | undefined, d = 0) => (v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(d));
const x = (v: number, over: number) => (Number.isFinite(v / over) ? `${(v / over).toFixed(2)}x` : '-');
const outTok: Metric = (r) => r.outputTokensPerS;
const reqs: Metric = (r) => r.requestsPerS;
const cell = (p: ServePoint, m: Metric, d = 0, suffix = '') => formatSpread(sp(p, m), d, suffix);

interface SpeedPoint {
  speed: number;
  offered: number; // req/s
  points: ServePoint[];
  sim: Map<string, SimResult>; // by system, plus 'oracle'
  load0: number;
}
const done: SpeedPoint[] = [];
const load0 = loadavg()[0]!;

function speedTable(s: SpeedPoint): string[] {
  return [
    `#### ${requests} requests at ${s.speed}x speed: ${f(s.offered, 2)} req/s offered (load average ${f(s.load0, 1)} before)`,
    '',
    '| system | cached prompt tokens (sim) | TTFT p50 ms (sim) | TTFT p99 ms (sim) | output tok/s (sim) | req/s | failed | load avg at end |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...s.points.map((p) => {
      const m = s.sim.get(p.system);
      if (p.problem) return `| ${p.system} | no result: ${p.problem.replace(/\|/g, '/')} |||||||`;
      return `| ${p.system} | ${cell(p, cached, 1, '%')} (${f(m && 100 * m.hitRate, 1)}%) | ${cell(p, ttftP50)} (${f(m?.ttftP50)}) | ${cell(p, (r) => r.ttftMs?.p99)} (${f(m?.ttftP99)}) | ${cell(p, outTok)} (${f(m?.throughput)}) | ${cell(p, reqs, 2)} | ${p.runs.reduce((n, r) => n + r.requests.failed, 0)} | ${formatSpread(spread(p.loadAverage), 1)} |`;
    }),
    ...(s.sim.has('oracle') ? ['', `The simulator's oracle at this point: ${f(100 * s.sim.get('oracle')!.hitRate, 1)}% cached, TTFT p50 ${f(s.sim.get('oracle')!.ttftP50)} ms.`] : []),
  ];
}

// The issue's three ratios per speed-up, real and (simulated).
function targetsTable(): string[] {
  const peer = peerNames[0];
  return [
    `| speed-up | req/s offered | kv cached vs the sim's oracle (sim's kv) | round-robin / kv TTFT p50 (sim) | kv / random output throughput (sim) |${peer ? ` ${peer} / kv TTFT p50 (sim) |` : ''}`,
    `|---|---:|---:|---:|---:|${peer ? '---:|' : ''}`,
    ...done.map((s) => {
      const kv = at(s.points, 'kv');
      const rr = at(s.points, 'round-robin');
      const rnd = at(s.points, 'random');
      const sim = (k: string) => s.sim.get(k);
      const oracle = sim('oracle')?.hitRate ?? NaN;
      const hit = `${x(med(kv, cached) / 100, oracle)} (${x(sim('kv')?.hitRate ?? NaN, oracle)})`;
      const ttft = `**${x(med(rr, ttftP50), med(kv, ttftP50))}** (${x(sim('round-robin')?.ttftP50 ?? NaN, sim('kv')?.ttftP50 ?? NaN)})`;
      const thr = `**${x(med(kv, outTok), med(rnd, outTok))}** (${x(sim('kv')?.throughput ?? NaN, sim('random')?.throughput ?? NaN)})`;
      const pp = peer ? ` ${x(med(at(s.points, peer), ttftP50), med(kv, ttftP50))} (${x(sim(peer)?.ttftP50 ?? NaN, sim('kv')?.ttftP50 ?? NaN)}) |` : '';
      return `| ${s.speed}x | ${f(s.offered, 2)} | ${hit} | ${ttft} | ${thr} |${pp}`;
    }),
  ];
}

const trace = ['--workload', 'trace', '--requests', String(requests)];
log(`${systems.join(', ')} at ${speedups.join(', ')}x; ${engine.workers} engines of ${engine.kvTokens} KV tokens, page ${engine.pageSize}; load average ${f(load0, 1)}`);
for (const speed of speedups) {
  const l0 = loadavg()[0]!;
  const points = await servePoints(runner, systems, { replay: true }, `s${speed}`, [...trace, '--trace-speedup', String(speed)]);
  const sim = new Map<string, SimResult>();
  if (a.sim) {
    for (const system of ['oracle', ...systems]) {
      const spec = system === 'oracle' ? { kind: 'oracle' as const } : simPolicy(system);
      if (spec) sim.set(system, simulateAt(spec, speed));
    }
  }
  const s: SpeedPoint = { speed, offered: (requests * speed) / span, points, sim, load0: l0 };
  done.push(s);
  console.log(['', ...speedTable(s)].join('\n'));
}
await stopAll();

console.log([
  '',
  `### Against the issue's targets (${requests} requests, ${engine.workers} mocker engines of ${engine.kvTokens} KV tokens, page ${engine.pageSize}, speedup 1; ${repeats > 1 ? `median of ${repeats} runs` : 'one run'} per row; load average ${f(load0, 1)} at the start, ${f(loadavg()[0], 1)} at the end)`,
  '',
  ...targetsTable(),
].join('\n'));
