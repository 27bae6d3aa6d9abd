// Two known failure modes of Dynamo's KV router (reference/dynamo.md, "known issues"), as
// simulator scenarios:
// - starvation: on single-turn traffic that shares only a short header, 3 of 5 workers got all
//   the traffic (stale overlap and load ties over-valued). Measure: the least-served engine's
//   share of requests over its fair share, and the imbalance.
// - tie alternation: in multi-round chat two workers scored the same and selection alternated,
//   losing the conversation's cache. Measure: the share of later turns that return to the
//   engine of the conversation's previous turn, and the hit rate.

import { PRODUCT_KNOBS, type PolicySpec } from './policies.js';
import { ROUTING_DEFAULTS } from '../../src/router/routing_defaults.js';
import { ENGINE_DEFAULTS, simulate, type SimResult } from './simulate.js';
import { multiTurn, MULTI_TURN_DEFAULTS, singleTurn } from '../../src/bench/workloads.js';

export const FAILURE_POLICIES: PolicySpec[] = [
  { kind: 'oracle' },
  { kind: 'kv' },
  { kind: 'kv', overlapWeight: 4 },
  { kind: 'kv-pending', ...PRODUCT_KNOBS, holdSharedPrefill: false }, // the product defaults (pending weight 16)
  { kind: 'kv-pending', overlapWeight: 8, ownWeight: ROUTING_DEFAULTS.ownWeight }, // a fixed own weight
  { kind: 'kv-pending', overlapWeight: 8 }, // without the own-blocks weight (own_weight.ts)
  { kind: 'kv-pending', overlapWeight: 4 },
  { kind: 'kv', temperature: 0.5 },
  { kind: 'kv-approx' },
  { kind: 'least-loaded' },
];

export function starvation(spec: PolicySpec, seed: number, eventDelayMs: number): SimResult {
  const w = singleTurn({ requests: 500, headerLen: 64, bodyLen: 1000, outputLen: 200, ratePerSec: 15, seed });
  return simulate(w, { workers: 5, engine: { ...ENGINE_DEFAULTS, maxTotalTokens: 65_536 }, policy: { eventDelayMs, seed, ...spec }, seed });
}

export function tieAlternation(spec: PolicySpec, seed: number, eventDelayMs: number): SimResult {
  const w = multiTurn({ ...MULTI_TURN_DEFAULTS, sessions: 16, turns: 8, ratePerSec: 2, thinkMs: 1000, seed });
  return simulate(w, { workers: 2, engine: { ...ENGINE_DEFAULTS, maxTotalTokens: 65_536 }, policy: { eventDelayMs, seed, ...spec }, seed });
}
