// `npm run sim -- hold`: the kv router (product defaults, pending prefixes on) with and without
// holding a prompt that shares a long prefix with one its engine is still prefilling
// (holdSharedPrefill; kvgate router's kv policy does this), on each workload and the burst.
// SIM_FLEETS (8,64) and SIM_WORKLOADS as for the report. Also bench:sgl-router's run in the
// simulator: its shared-prefix prompts (UTF-8 bytes as tokens, as a kvgate mocker counts them),
// `concurrency` clients in a closed loop starting together, 4 engines of 8,192 KV tokens.

import type { Arrival, Workload } from '../../src/bench/workloads.js';
import { sharedPrefixWorkload } from '../http/shared_prefix.js';
import { burstWorkload } from './burst.js';
import { PRODUCT_KNOBS, type PolicySpec } from './policies.js';
import { scenario, WORKLOADS, type WorkloadName } from './scenarios.js';
import { ENGINE_DEFAULTS, simulate, type SimResult } from './simulate.js';

const f = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');

export function runHold(seed: number, eventDelayMs: number, fleets: number[], workloads: WorkloadName[]): unknown[] {
  const rows: unknown[] = [];
  console.log('\n### Holding a prompt for a shared prefix its engine is still prefilling (kv-pending, product defaults)\n');
  console.log(`KV events land ${eventDelayMs} ms after the engine emits them. "after / before" columns are ratios of the run with the hold to the run without.\n`);
  console.log('| workload | engines | requests | held | hit rate before / after | TTFT p50 ms before / after | TTFT p99 ms before / after | output tok/s after / before | wall s |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  const base: PolicySpec = { kind: 'kv-pending', ...PRODUCT_KNOBS, holdSharedPrefill: false, eventDelayMs, seed };
  const pair = (label: string, n: number, run: (spec: PolicySpec) => SimResult) => {
    const [a, b] = [run(base), run({ ...base, holdSharedPrefill: true })];
    console.log(`| ${label} | ${n} | ${a.requests} | ${b.held} | ${f(100 * a.hitRate, 1)} / ${f(100 * b.hitRate, 1)} % | ${f(a.ttftP50)} / ${f(b.ttftP50)} | ${f(a.ttftP99)} / ${f(b.ttftP99)} | ${f(b.throughput / a.throughput, 3)}x | ${f(a.wallSeconds + b.wallSeconds, 1)} |`);
    rows.push({ workload: label, workers: n, held: b.held, before: strip(a), after: strip(b) });
  };
  for (const w of workloads) for (const n of fleets) {
    const sc = scenario(w, n, seed);
    pair(w, n, (policy) => simulate(sc.make(), { workers: n, engine: sc.engine, policy, seed }));
  }
  for (const c of [16, 64]) {
    pair(`bench:sgl-router's, concurrency ${c}`, 4, (policy) => simulate(closedLoop(c), { workers: 4, engine: CLOSED_LOOP_ENGINE, policy, seed }));
  }
  pair('burst (16 x one new prefix)', 8, (policy) => simulate(burstWorkload(seed), { workers: 8, engine: ENGINE_DEFAULTS, policy, seed }));
  return rows;
}

// bench:sgl-router's workload and clients: 16 groups x 20 prompts in its seeded order, 16 output tokens.
// bench:sgl-router's engines: 8,192 KV tokens each, at a quarter of the mocker's speed.
export const CLOSED_LOOP_ENGINE = { ...ENGINE_DEFAULTS, maxTotalTokens: 8192, speedupRatio: 0.25 };

export function closedLoop(concurrency: number): Workload {
  const prompts = sharedPrefixWorkload({ groups: 16, perGroup: 20, systemWords: 150, seed: 1 }).map((r) => [...Buffer.from(r.messages.map((m) => m.content).join('\n'), 'utf8')]);
  let next = 0;
  const arrival = (at: number): Arrival | null => (next < prompts.length ? { at, tokens: prompts[next++]!, outputLen: 16 } : null);
  let started = 0;
  return {
    name: `closed loop x${concurrency}`,
    next: () => (started++ < concurrency ? arrival(0) : null),
    followUp: (_done, _output, now) => arrival(now),
  };
}

const strip = ({ perRequest: _, ...r }: SimResult) => r;

export const HOLD_WORKLOADS: readonly WorkloadName[] = WORKLOADS;
