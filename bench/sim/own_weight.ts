// `npm run sim -- own`: the kv cost (kv-pending) without the weight on the prompt's own uncached
// blocks (own 0, the cost before it) and with the router's native term (own 8, the product's
// default), beside kv-pressure, the TypeScript prototype of that term (policies.ts:
// KvPressurePolicy), and the oracle, on the prefill-heavy shared prefix (64 output tokens)
// where the cost without it falls behind and on the default scenarios it must not lose.
// Averages over seeds: near the fleet's capacity one seed can tip any policy, the oracle
// included, into a queue that never drains (bench/README.md).

import { GSP_DEFAULTS, sharedPrefix } from '../../src/bench/workloads.js';
import { ROUTING_DEFAULTS } from '../../src/router/routing_defaults.js';
import { policyLabel, PRODUCT_KNOBS, type PolicySpec } from './policies.js';
import { GSP_KV_TOKENS, scenario, type Scenario } from './scenarios.js';
import { ENGINE_DEFAULTS, simulate, type SimResult } from './simulate.js';

// The own weights kv-pending runs with besides 0 (SIM_OWN_WEIGHTS), and those of the prototype
// (SIM_PROTOTYPE_WEIGHTS; empty: no prototype rows); SIM_PRESSURE_WEIGHT adds a prototype row
// with own weight 8 and that KV-capacity weight.
const weights = (k: string, d: string) => (process.env[k] ?? d).split(',').filter((s) => s.trim() !== '').map(Number);
export const OWN_WEIGHTS = weights('SIM_OWN_WEIGHTS', String(ROUTING_DEFAULTS.ownWeight));
export const PROTOTYPE_WEIGHTS = weights('SIM_PROTOTYPE_WEIGHTS', '8');
export const PRESSURE_WEIGHT = process.env.SIM_PRESSURE_WEIGHT ? Number(process.env.SIM_PRESSURE_WEIGHT) : null;

interface Case {
  name: string;
  make(seed: number): Pick<Scenario, 'workers' | 'engine' | 'make'>;
}

// Shared prefix at `outputLen` on `workers` engines (the scenario's shape: 64 groups x 16 at 8,
// 8 groups per engine x 4 beyond), Poisson at `load` x the oracle's burst rate at that output
// length, fleet and seed (bench/README.md "Throughput against random, by offered load").
function prefillHeavy(outputLen: number, load: number, workers = 8): Case {
  return {
    name: `shared prefix, ${outputLen} out, ${workers} engines, load ${load}`,
    make(seed) {
      const engine = { ...ENGINE_DEFAULTS, maxTotalTokens: GSP_KV_TOKENS };
      const [groups, promptsPerGroup] = workers <= 8 ? [64, 16] : [8 * workers, 4];
      const base = { ...GSP_DEFAULTS, groups, promptsPerGroup, outputLen, seed };
      const b = simulate(sharedPrefix({ ...base, ratePerSec: Infinity }), { workers, engine, policy: { kind: 'oracle', seed }, seed });
      const rate = (load * b.requests) / (b.makespanMs / 1000);
      return { workers, engine, make: () => sharedPrefix({ ...base, ratePerSec: rate }) };
    },
  };
}

const named = (name: string, w: Parameters<typeof scenario>[0], n: number): Case => ({ name, make: (seed) => scenario(w, n, seed) });

export const OWN_CASES: Record<string, Case> = {
  'gsp64-0.5': prefillHeavy(64, 0.5),
  'gsp64-0.7': prefillHeavy(64, 0.7),
  'gsp64-1.0': prefillHeavy(64, 1),
  'gsp64-64': prefillHeavy(64, 0.7, 64),
  'gsp256-1.0': prefillHeavy(256, 1),
  'gsp256-8': named('shared prefix, 256 out, 8 engines (scenario)', 'shared-prefix', 8),
  'gsp256-64': named('shared prefix, 256 out, 64 engines (scenario)', 'shared-prefix', 64),
  'mt-8': named('multi-turn, 8 engines (scenario)', 'multi-turn', 8),
  'mt-64': named('multi-turn, 64 engines (scenario)', 'multi-turn', 64),
  'mooncake-8': named('Mooncake, 8 engines (scenario)', 'mooncake', 8),
};

export function ownPolicies(eventDelayMs: number): PolicySpec[] {
  const w = ROUTING_DEFAULTS.overlapWeight;
  return [
    { kind: 'oracle' },
    { kind: 'kv-pending', overlapWeight: w, ownWeight: 0, eventDelayMs },
    ...OWN_WEIGHTS.map((ownWeight): PolicySpec => ({ kind: 'kv-pending', overlapWeight: w, ownWeight, eventDelayMs })),
    // The product as kvgate serve runs it (the defaults and the wait for a shared prefill):
    // before the own weight, with a fixed one, and with the own weight grown by the fleet's
    // prefill queue (the defaults now).
    ...[0, ROUTING_DEFAULTS.ownWeight].map((ownWeight): PolicySpec => ({ kind: 'kv-pending', overlapWeight: w, ownWeight, holdSharedPrefill: ROUTING_DEFAULTS.prefillWaitShare < 1, eventDelayMs })),
    { kind: 'kv-pending', ...PRODUCT_KNOBS, eventDelayMs },
    ...PROTOTYPE_WEIGHTS.map((ownWeight): PolicySpec => ({ kind: 'kv-pressure', overlapWeight: w, ownWeight, eventDelayMs })),
    ...(PRESSURE_WEIGHT !== null ? [{ kind: 'kv-pressure', overlapWeight: w, ownWeight: 8, pressureWeight: PRESSURE_WEIGHT, eventDelayMs } satisfies PolicySpec] : []),
    { kind: 'random' },
  ];
}

export interface OwnRow {
  case: string;
  policy: string;
  seeds: number[];
  hitRate: number; // means over seeds
  ttftP50: number;
  ttftP99: number;
  throughput: number;
  vsRandom: number; // throughput over random's in the same seed
  imbalance: number;
  worstP50: number; // the worst seed's TTFT p50
}

export function runOwnWeight(seeds: number[], eventDelayMs: number, cases: string[]): OwnRow[] {
  const rows: OwnRow[] = [];
  console.log(`\n### kv cost with the prompt's own uncached blocks weighted apart (kv-pending own, native; kv-pressure, the prototype), seeds ${seeds.join(', ')}\n`);
  console.log('Means over the seeds; the last column is the worst seed\'s TTFT p50.\n');
  console.log('| case | policy | hit rate | TTFT p50 ms | TTFT p99 ms | output tok/s | vs random | imbalance | worst seed p50 ms |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const key of cases) {
    const c = OWN_CASES[key];
    if (!c) throw new Error(`unknown case '${key}' (${Object.keys(OWN_CASES).join(', ')})`);
    const policies = ownPolicies(eventDelayMs);
    const runs: SimResult[][] = policies.map(() => []);
    for (const seed of seeds) {
      const sc = c.make(seed);
      policies.forEach((p, i) => runs[i]!.push(simulate(sc.make(), { workers: sc.workers, engine: sc.engine, policy: { ...p, seed }, seed })));
    }
    const random = runs[policies.length - 1]!;
    policies.forEach((p, i) => {
      const rs = runs[i]!;
      const mean = (f: (r: SimResult) => number) => rs.reduce((s, r) => s + f(r), 0) / rs.length;
      const row: OwnRow = {
        case: c.name,
        policy: policyLabel(p),
        seeds,
        hitRate: mean((r) => r.hitRate),
        ttftP50: mean((r) => r.ttftP50),
        ttftP99: mean((r) => r.ttftP99),
        throughput: mean((r) => r.throughput),
        vsRandom: rs.reduce((s, r, k) => s + r.throughput / random[k]!.throughput, 0) / rs.length,
        imbalance: mean((r) => r.imbalance),
        worstP50: Math.max(...rs.map((r) => r.ttftP50)),
      };
      rows.push(row);
      console.log(`| ${row.case} | ${row.policy} | ${(100 * row.hitRate).toFixed(1)} % | ${row.ttftP50.toFixed(0)} | ${row.ttftP99.toFixed(0)} | ${row.throughput.toFixed(0)} | ${row.vsRandom.toFixed(2)}x | ${row.imbalance.toFixed(2)} | ${row.worstP50.toFixed(0)} |`);
    });
  }
  return rows;
}
