// `npm run sim -- sglang`: the product's kv routing beside SGLang's cache_aware (the policy of
// sglang-router and smg) and the oracle on bench:sgl-router's workload in the simulator: its
// shared-prefix prompts in a closed loop of 16 and 64 clients over 4 engines of 8,192 KV tokens
// (hold.ts closedLoop), the "above SGLang's cache_aware at concurrency 16 and 64".
// The Poisson workloads at every fleet size have a sglang-cache-aware row in the report.

import { PRODUCT_KNOBS, type PolicySpec } from './policies.js';
import { CLOSED_LOOP_ENGINE, closedLoop } from './hold.js';
import { simulate, type SimResult } from './simulate.js';

const f = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');

export function runBesideSglang(seed: number, eventDelayMs: number): unknown[] {
  const specs: PolicySpec[] = [
    { kind: 'oracle', seed },
    { kind: 'kv-pending', ...PRODUCT_KNOBS, eventDelayMs, seed },
    { kind: 'sglang-cache-aware', seed },
  ];
  console.log("\n### Beside SGLang's cache_aware: bench:sgl-router's workload, 4 engines, closed loop\n");
  console.log(`KV events land ${eventDelayMs} ms after the engine emits them.\n`);
  console.log('| concurrency | policy | hit rate | TTFT p50 ms | TTFT p99 ms | output tok/s | imbalance max/mean |');
  console.log('|---|---|---|---|---|---|---|');
  const rows: unknown[] = [];
  for (const c of [16, 64]) {
    for (const policy of specs) {
      const { perRequest: _, ...r }: SimResult = simulate(closedLoop(c), { workers: 4, engine: CLOSED_LOOP_ENGINE, policy, seed });
      console.log(`| ${c} | ${r.policy} | ${f(100 * r.hitRate, 1)} % | ${f(r.ttftP50)} | ${f(r.ttftP99)} | ${f(r.throughput)} | ${f(r.imbalance, 2)} |`);
      rows.push({ concurrency: c, ...r });
    }
  }
  return rows;
}
