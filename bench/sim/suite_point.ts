// `node --import tsx bench/sim/suite_point.ts`: bench:report's routing-quality point (shared
// prefix 8 groups x 8, 2,048-token system prompts, 128-token questions, 64 output tokens,
// Poisson, 4 mocker engines at their default KV size) in the simulator, so a real-process
// number can be read against what the model alone predicts.
//
// Env: SUITE_SPEEDUP (10, the mocker's under `kvgate serve`), SUITE_RATES (comma-separated
// req/s; default 31 and 7.07, the report's 70 % points at speedup 10 and 0.25), SUITE_SEED (1).

import { ROUTING_DEFAULTS } from '../../src/router/routing_defaults.js';
import { GSP_DEFAULTS, sharedPrefix } from '../../src/bench/workloads.js';
import type { PolicySpec } from './policies.js';
import { ENGINE_DEFAULTS, simulate } from './simulate.js';

const speedup = Number(process.env.SUITE_SPEEDUP ?? 10);
const rates = (process.env.SUITE_RATES ?? '31,7.07').split(',').map(Number);
const seed = Number(process.env.SUITE_SEED ?? 1);
const policies: PolicySpec[] = [
  { kind: 'kv-pending', overlapWeight: ROUTING_DEFAULTS.overlapWeight, eventDelayMs: 2 },
  { kind: 'round-robin' },
  { kind: 'random' },
];

console.log(`speedup ${speedup}`);
console.log('| req/s | policy | hit rate | TTFT p50 ms | TTFT p99 ms |');
console.log('|---|---|---|---|---|');
for (const rate of rates) {
  for (const p of policies) {
    const w = sharedPrefix({ ...GSP_DEFAULTS, groups: 8, promptsPerGroup: 8, systemPromptLen: 2048, questionLen: 128, outputLen: 64, ratePerSec: rate, seed });
    const s = simulate(w, { workers: 4, engine: { ...ENGINE_DEFAULTS, speedupRatio: speedup }, policy: { ...p, seed }, seed });
    console.log(`| ${rate} | ${p.kind} | ${(100 * s.hitRate).toFixed(1)} % | ${s.ttftP50.toFixed(1)} | ${s.ttftP99.toFixed(1)} |`);
  }
}
