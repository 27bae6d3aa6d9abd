// `npm run sim -- load`: where the throughput ratio against random comes from. Shared prefix on
// 8 engines (the target workload) at offered loads from half the oracle's capacity to
// a burst (every request at once: each policy's own capacity), then the same at shorter
// outputs. Throughput is output tokens over first arrival to last answer, so below a policy's
// capacity it is the offered load: the best ratio any router can show at a load L (in units of
// the oracle's capacity) is about L x capacity / random's capacity.

import { GSP_DEFAULTS, sharedPrefix } from '../../src/bench/workloads.js';
import { PRODUCT_KNOBS, type PolicySpec } from './policies.js';
import { GSP_KV_TOKENS } from './scenarios.js';
import { ENGINE_DEFAULTS, simulate } from './simulate.js';

const WORKERS = 8;

export interface LoadRow {
  outputLen: number;
  load: number | 'burst';
  policy: string;
  throughput: number;
  vsRandom: number;
  hitRate: number;
  ttftP50: number;
}

export function runLoadSweep(seed: number, eventDelayMs: number): LoadRow[] {
  const policies: PolicySpec[] = [
    { kind: 'oracle' },
    { kind: 'kv-pending', ...PRODUCT_KNOBS, eventDelayMs },
    { kind: 'kv-pending', ...PRODUCT_KNOBS, ownQueueWeight: 0, eventDelayMs },
    { kind: 'kv-pending', ...PRODUCT_KNOBS, ownWeight: 0, eventDelayMs },
    { kind: 'kv', overlapWeight: 1, eventDelayMs },
    { kind: 'least-loaded' },
    { kind: 'round-robin' },
    { kind: 'random' },
  ];
  const engine = { ...ENGINE_DEFAULTS, maxTotalTokens: GSP_KV_TOKENS };
  const rows: LoadRow[] = [];
  console.log(`\n### Throughput against random: shared prefix, ${WORKERS} engines, by offered load\n`);
  console.log("Offered load in units of the oracle's capacity at that output length (its requests/s in the burst).\n");
  console.log('| output tokens | offered load | policy | output tok/s | vs random | hit rate | TTFT p50 ms |');
  console.log('|---|---|---|---|---|---|---|');
  for (const [outputLen, loads] of [
    [GSP_DEFAULTS.outputLen, [0.5, 0.7, 1, 1.5]],
    [64, [0.7, 1]],
  ] as const) {
    let capacity = 0; // req/s, from the burst (run first)
    for (const load of ['burst' as const, ...loads]) {
      const ratePerSec = load === 'burst' ? Infinity : load * capacity;
      const results = policies.map((spec) => simulate(sharedPrefix({ ...GSP_DEFAULTS, outputLen, ratePerSec, seed }), { workers: WORKERS, engine, policy: { ...spec, seed }, seed }));
      if (load === 'burst') capacity = results[0]!.requests / (results[0]!.makespanMs / 1000);
      const random = results.find((r) => r.policy === 'random')!;
      for (const r of results) {
        const row = { outputLen, load, policy: r.policy, throughput: r.throughput, vsRandom: r.throughput / random.throughput, hitRate: r.hitRate, ttftP50: r.ttftP50 };
        rows.push(row);
        console.log(`| ${outputLen} | ${load} | ${row.policy} | ${row.throughput.toFixed(0)} | ${row.vsRandom.toFixed(2)}x | ${(100 * row.hitRate).toFixed(1)} % | ${row.ttftP50.toFixed(0)} |`);
      }
    }
  }
  return rows;
}
