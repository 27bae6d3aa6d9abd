// The simulator's kv-pressure prototype (bench/sim/policies.ts): the product's kv cost read off
// the native router's score(), plus a weight on the prompt's own uncached blocks, routed
// through the real router, and the router's own term that replaced it (ownWeight). On a small
// prefill-heavy shared-prefix workload the own weight is what keeps each group on one engine.

import { describe, expect, it } from 'vitest';
import type { PolicySpec } from '../../bench/sim/policies.js';
import { ENGINE_DEFAULTS, simulate } from '../../bench/sim/simulate.js';
import { GSP_DEFAULTS, sharedPrefix } from '../../src/bench/workloads.js';
import { ROUTING_DEFAULTS } from '../../src/router/routing_defaults.js';

const engine = { ...ENGINE_DEFAULTS, maxTotalTokens: 4096 };
// 8 groups x 6 prompts of a 512-token system prompt, 16 output tokens, on 4 engines.
const run = (policy: PolicySpec, seed: number, ratePerSec = 160) =>
  simulate(sharedPrefix({ ...GSP_DEFAULTS, groups: 8, promptsPerGroup: 6, systemPromptLen: 512, questionLen: 32, outputLen: 16, ratePerSec, seed }), {
    workers: 4,
    engine,
    policy: { eventDelayMs: 5, seed, ...policy },
    seed,
  });
// Every prompt but its group's first finds the system prompt cached.
const BEST = (5 / 6) * (512 / 544);

describe('kv-pressure (simulator prototype)', () => {
  it('routes every request through the router to the engine it picked, the same way for a seed', () => {
    const spec: PolicySpec = { kind: 'kv-pressure', overlapWeight: 8, ownWeight: 8, pressureWeight: 16 };
    const a = run(spec, 1);
    expect(a.requests).toBe(48);
    for (const q of a.perRequest) expect(Number.isFinite(q.ttft)).toBe(true);
    expect(run(spec, 1).perRequest).toEqual(a.perRequest);
  });

  it("weighing the prompt's own uncached blocks keeps every group on one engine where the cost without it splits one", () => {
    const hits = (ownWeight: number) => [1, 2, 3].map((seed) => run({ kind: 'kv-pressure', overlapWeight: 8, ownWeight }, seed).hitRate);
    for (const h of hits(8)) expect(h).toBeCloseTo(BEST, 6);
    // Own weight 0 is the product's cost (kv-pending's): a group's prompt meets an engine busy
    // with another group's prefill and recomputes its prefix on an idle one.
    expect(Math.min(...hits(0))).toBeLessThan(BEST - 0.01);
  });

  it("the router's native own weight (the product's default) does what the prototype does", () => {
    const hits = (ownWeight: number) => [1, 2, 3].map((seed) => run({ kind: 'kv-pending', overlapWeight: 8, ownWeight }, seed).hitRate);
    for (const h of hits(ROUTING_DEFAULTS.ownWeight)) expect(h).toBeCloseTo(BEST, 6);
    expect(Math.min(...hits(0))).toBeLessThan(BEST - 0.01);
  });
});
