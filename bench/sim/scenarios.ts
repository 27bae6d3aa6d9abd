// The default scenarios of `npm run sim`: each workload at each fleet size, sized so the whole
// run takes minutes. Shared prefix follows SGLang's defaults at 8 engines and keeps the same
// shape per engine at 64 (8 groups per engine; KV sized so the prefixes fill 73% of the fleet's
// KV, as llm-d sizes its runs). At 1,000 and 10,000 engines the request count stays modest
// (500 groups x 4 prompts at the same per-engine arrival rate), so those runs measure placement
// over a short stretch of arrivals (a burst at fleet scale), not a steady state; their
// throughput is output tokens over the time to the last answer.

import { fileURLToPath } from 'node:url';
import { ENGINE_DEFAULTS, simulate, type EngineSpec } from './simulate.js';
import { GSP_DEFAULTS, mooncake, MOONCAKE_PATH, multiTurn, MULTI_TURN_DEFAULTS, sharedPrefix, type Workload } from '../../src/bench/workloads.js';

export interface Scenario {
  workload: string;
  workers: number;
  engine: EngineSpec;
  make(): Workload;
  note: string;
}

export const WORKLOADS = ['shared-prefix', 'multi-turn', 'mooncake'] as const;
export type WorkloadName = (typeof WORKLOADS)[number];

// KV per engine for shared prefix: 8 system prompts of 2,048 tokens at 73% of it.
export const GSP_KV_TOKENS = 22_400;
// Multi-turn: 8 conversations of ~3.7 K tokens (grown over 6 turns) at 73%.
export const MT_KV_TOKENS = 40_000;
// The load: 70% of the requests/s the oracle sustains on the same workload in a burst.
export const LOAD = 0.7;

// Requests/s one engine sustains on shared prefix (oracle, burst, 8 engines): the unit of the
// arrival rates below, measured once per run.
let gspCapacity = 0;
export function gspCapacityPerEngine(): number {
  if (gspCapacity === 0) {
    const r = simulate(sharedPrefix(GSP_DEFAULTS), { workers: 8, engine: { ...ENGINE_DEFAULTS, maxTotalTokens: GSP_KV_TOKENS }, policy: { kind: 'oracle' } });
    gspCapacity = r.requests / (r.makespanMs / 1000) / 8;
  }
  return gspCapacity;
}

export function scenario(workload: WorkloadName, workers: number, seed = 1): Scenario {
  switch (workload) {
    case 'shared-prefix': {
      const [groups, per] = workers <= 8 ? [64, 16] : workers <= 64 ? [8 * workers, 4] : [500, 4];
      const rate = LOAD * gspCapacityPerEngine() * workers;
      return {
        workload,
        workers,
        engine: { ...ENGINE_DEFAULTS, maxTotalTokens: GSP_KV_TOKENS },
        make: () => sharedPrefix({ ...GSP_DEFAULTS, groups, promptsPerGroup: per, ratePerSec: rate, seed }),
        note: `${groups} groups x ${per} prompts, system 2048, question 128, output 256; Poisson ${rate.toFixed(0)} req/s; KV ${GSP_KV_TOKENS} tokens/engine`,
      };
    }
    case 'multi-turn': {
      const sessions = workers <= 8 ? 8 * workers : 4 * workers;
      const rate = 2 * workers;
      return {
        workload,
        workers,
        engine: { ...ENGINE_DEFAULTS, maxTotalTokens: MT_KV_TOKENS },
        make: () => multiTurn({ ...MULTI_TURN_DEFAULTS, sessions, ratePerSec: rate, seed }),
        note: `${sessions} conversations x ${MULTI_TURN_DEFAULTS.turns} turns, shared system 1000, own history 2000, question 64, answer 100, think 2 s; ${rate} conversations/s; KV ${MT_KV_TOKENS} tokens/engine`,
      };
    }
    case 'mooncake': {
      // 1,000 requests (the first 300 share almost nothing beyond block 0) at 3x speed per 8
      // engines: round-robin saturates (its TTFT p50 is seconds), the kv router does not yet.
      const limit = 1000;
      const speed = (3 * workers) / 8;
      return {
        workload,
        workers,
        // Page size 64: 12 K-token prompts would cost 750 pages each at 16.
        engine: { ...ENGINE_DEFAULTS, pageSize: 64 },
        make: () => mooncake({ path: fileURLToPath(MOONCAKE_PATH), limit, speed, seed }),
        note: `first ${limit} requests of conversation_trace.jsonl at ${speed}x speed; page size 64, KV ${ENGINE_DEFAULTS.maxTotalTokens} tokens/engine`,
      };
    }
  }
}
