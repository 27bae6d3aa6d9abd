// `npm run sim -- own-queue`: the product (kv-pending with its defaults) at own queue weights 0
// (a fixed own weight, as before), 1, 2 (the default) and 4, beside SGLang's cache_aware and
// round-robin, where the own weight's growth with the fleet's prefill queue matters: the
// Mooncake trace at the report's KV (262,144 tokens per engine, in the TTFT window), with
// plentiful KV (2,097,152 tokens) and on 3,000 requests with 4,194,304 tokens, loads in units
// of round-robin's capacity (mooncake_load.ts); then the workloads it must not cost (own_weight.ts's
// cases: prefill-heavy shared prefix, the issue's scenario, multi-turn), means over seeds.
// Each cell: hit rate % / TTFT p50 ms. Env: SIM_OWN_QUEUE_WEIGHTS (0,1,2,4), SIM_SEEDS (1,2),
// SIM_OWN_QUEUE_MOONCAKE (1: run the Mooncake points; 0: skip), SIM_CASES (own_weight.ts keys).

import { fileURLToPath } from 'node:url';
import { mooncake, MOONCAKE_PATH } from '../../src/bench/workloads.js';
import { readTrace, traceCeiling } from './mooncake_load.js';
import { OWN_CASES } from './own_weight.js';
import { PRODUCT_KNOBS, type PolicySpec } from './policies.js';
import { ENGINE_DEFAULTS, simulate, type SimResult } from './simulate.js';

const list = (k: string, d: string) => (process.env[k] ?? d).split(',').filter((s) => s.trim() !== '');

// Mooncake points: requests, KV tokens per engine, loads (x round-robin's capacity; Infinity:
// every request at once).
const MOONCAKE_POINTS: { requests: number; kv: number; loads: number[] }[] = [
  { requests: 1000, kv: 262_144, loads: [1.35, 1.4] },
  { requests: 1000, kv: 2_097_152, loads: [Infinity, 1, 1.4, 1.75] },
  { requests: 3000, kv: 4_194_304, loads: [Infinity, 1.25, 1.5, 1.75] },
];
// The workloads it must not cost (own_weight.ts's cases), SIM_CASES' default.
const OTHER_CASES = ['gsp64-0.7', 'gsp64-1.0', 'gsp256-8', 'gsp256-64', 'mt-8', 'mt-64'];

export interface OwnQueueRow {
  point: string;
  policy: string;
  hitRate: number;
  ttftP50: number;
  ttftP99: number;
  throughput: number;
}

export function runOwnQueue(eventDelayMs: number): OwnQueueRow[] {
  const weights = list('SIM_OWN_QUEUE_WEIGHTS', '0,1,2,4').map(Number);
  const seeds = list('SIM_SEEDS', '1,2').map(Number);
  const product = (q: number): PolicySpec => ({ kind: 'kv-pending', ...PRODUCT_KNOBS, ownQueueWeight: q, eventDelayMs });
  const label = (s: PolicySpec) => (s.kind === 'kv-pending' ? `product, own queue weight ${s.ownQueueWeight}` : s.kind);
  const rows: OwnQueueRow[] = [];
  const cell = (r: OwnQueueRow) => `${(100 * r.hitRate).toFixed(1)} / ${r.ttftP50.toFixed(0)}`;
  const table = (title: string, points: string[], policies: string[]) => {
    console.log(`\n### ${title}\n\nEach cell: hit rate % / TTFT p50 ms.\n`);
    console.log(`| policy | ${points.join(' | ')} |`);
    console.log(`|---|${points.map(() => '---|').join('')}`);
    for (const p of policies) console.log(`| ${p} | ${points.map((pt) => { const r = rows.find((x) => x.point === pt && x.policy === p); return r ? cell(r) : '-'; }).join(' | ')} |`);
  };
  const add = (point: string, policy: string, rs: SimResult[]) => {
    const mean = (f: (r: SimResult) => number) => rs.reduce((s, r) => s + f(r), 0) / rs.length;
    rows.push({ point, policy, hitRate: mean((r) => r.hitRate), ttftP50: mean((r) => r.ttftP50), ttftP99: mean((r) => r.ttftP99), throughput: mean((r) => r.throughput) });
  };

  if (process.env.SIM_OWN_QUEUE_MOONCAKE !== '0') {
    const path = fileURLToPath(MOONCAKE_PATH);
    const trace = readTrace(path);
    const specs: PolicySpec[] = [...weights.map(product), { kind: 'sglang-cache-aware' }, { kind: 'round-robin' }];
    const points: string[] = [];
    for (const m of MOONCAKE_POINTS) {
      const engine = { ...ENGINE_DEFAULTS, pageSize: 64, maxTotalTokens: m.kv };
      const span = traceCeiling(trace, m.requests).spanSec;
      const run = (spec: PolicySpec, speed: number) => simulate(mooncake({ path, limit: m.requests, speed, seed: 1 }), { workers: 8, engine, policy: { ...spec, seed: 1 }, seed: 1 });
      const rr = run({ kind: 'round-robin' }, Infinity);
      const rrCap = rr.requests / (rr.makespanMs / 1000);
      for (const load of m.loads) {
        const point = `${m.requests} req, KV ${m.kv / 1024}K, ${load === Infinity ? 'burst' : `${load}x`}`;
        points.push(point);
        const speed = load === Infinity ? Infinity : (load * rrCap * span) / m.requests;
        for (const spec of specs) {
          add(point, label(spec), [load === Infinity && spec.kind === 'round-robin' ? rr : run(spec, speed)]);
          process.stderr.write(`own-queue ${point} ${label(spec)}\n`);
        }
      }
    }
    table('Mooncake (8 engines, page 64; loads x round-robin\'s capacity at that KV)', points, specs.map(label));
    console.log('\nCapacity (burst) rows: requests/s = requests over the makespan; output tok/s:\n');
    console.log('| point | policy | output tok/s | TTFT p99 ms |\n|---|---|---|---|');
    for (const r of rows.filter((x) => x.point.endsWith('burst'))) console.log(`| ${r.point} | ${r.policy} | ${r.throughput.toFixed(0)} | ${r.ttftP99.toFixed(0)} |`);
  }

  const cases = list('SIM_CASES', OTHER_CASES.join(','));
  const specs: PolicySpec[] = [...weights.map(product), { kind: 'oracle' }];
  const names: string[] = [];
  for (const key of cases) {
    const c = OWN_CASES[key];
    if (!c) throw new Error(`unknown case '${key}' (${Object.keys(OWN_CASES).join(', ')})`);
    names.push(c.name);
    const runs: SimResult[][] = specs.map(() => []);
    for (const seed of seeds) {
      const sc = c.make(seed);
      specs.forEach((p, i) => runs[i]!.push(simulate(sc.make(), { workers: sc.workers, engine: sc.engine, policy: { ...p, seed }, seed })));
    }
    specs.forEach((p, i) => add(c.name, label(p), runs[i]!));
    process.stderr.write(`own-queue ${c.name}\n`);
  }
  table(`Other workloads (means over seeds ${seeds.join(', ')})`, names, specs.map(label));
  return rows;
}
