// `npm run sim -- mooncake-load`: can any router meet the three targets on the Mooncake
// trace "replayed at a load that saturates round-robin"? Three parts:
//   1. The trace's own ceiling: with an infinite cache on one engine, the share of prompt blocks
//      seen before (hash ids name 512-token blocks and are prefix-chained, so a block seen before
//      is a prefix hit). When prefill bounds throughput, caching can raise it by at most
//      1 / (1 - share).
//   2. Each policy's capacity (requests/s with the whole trace arriving at once), then offered
//      loads in units of round-robin's capacity, plus the report's point (3x speed), per policy:
//      hit rate against the oracle's, TTFT p50/p99 and its p50 against round-robin's, output
//      throughput against random's. Below a policy's capacity its throughput is the offered
//      load, above it its capacity: the throughput ratio against random can never exceed the
//      ratio of their capacities.
//   3. The same at a larger KV per engine (SIM_MOONCAKE_KV, tokens; the first is the report's).
// Env: SIM_MOONCAKE_REQUESTS (1000: the first N requests of the trace), SIM_MOONCAKE_KV
// (262144,2097152), SIM_MOONCAKE_LOADS (1,1.25,1.4,1.75: x round-robin's capacity),
// SIM_MOONCAKE_SPEEDS (3: trace speed-ups also run, as the report's point), SIM_MOONCAKE_BEFORE
// (1: also the product with a fixed own weight, as before ownQueueWeight).

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { mooncake, MOONCAKE_PATH } from '../../src/bench/workloads.js';
import { bestCachedShare, type TraceLine } from '../suite/summary.js';
import { PRODUCT_KNOBS, type PolicySpec } from './policies.js';
import { resultTable } from './report.js';
import { ENGINE_DEFAULTS, simulate, type EngineSpec, type SimResult } from './simulate.js';

const WORKERS = 8;
const PAGE = 64; // as the report's Mooncake scenario

export interface TraceCeiling {
  requests: number;
  share: number; // of the prompt tokens, the prefix blocks an earlier request had (bestCachedShare)
  spanSec: number; // first to last timestamp, at 1x
}

// The trace's lines (a file read once for every ceiling below).
export function readTrace(path: string | URL): TraceLine[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as TraceLine);
}

// The trace's first `limit` requests (all with Infinity) through one cache that never evicts.
export function traceCeiling(lines: readonly TraceLine[], limit = Infinity): TraceCeiling {
  const trace = lines.slice(0, Math.min(limit, lines.length));
  const spanSec = trace.length > 1 ? (trace[trace.length - 1]!.timestamp - trace[0]!.timestamp) / 1000 : 0;
  return { requests: trace.length, share: bestCachedShare(trace), spanSec };
}

const POLICIES = (eventDelayMs: number): PolicySpec[] => [
  { kind: 'oracle' },
  { kind: 'kv-pending', ...PRODUCT_KNOBS, eventDelayMs },
  // SIM_MOONCAKE_BEFORE=1: the product with a fixed own weight beside it (before ownQueueWeight).
  ...(process.env.SIM_MOONCAKE_BEFORE === '1' ? [{ kind: 'kv-pending', ...PRODUCT_KNOBS, ownQueueWeight: 0, eventDelayMs } satisfies PolicySpec] : []),
  { kind: 'sglang-cache-aware' },
  { kind: 'round-robin' },
  { kind: 'random' },
];

type Row = Omit<SimResult, 'perRequest'> & { kvTokens: number; load: string; speed: number; offered: number };

const f = (x: number, d = 0) => (Number.isFinite(x) ? x.toFixed(d) : '-');
const list = (k: string, d: string) => (process.env[k] ?? d).split(',').map((s) => Number(s.trim())).filter((x) => x > 0);

export function runMooncakeLoad(seed: number, eventDelayMs: number): unknown {
  const path = fileURLToPath(MOONCAKE_PATH);
  const requests = Number(process.env.SIM_MOONCAKE_REQUESTS ?? 1000);
  const kvs = list('SIM_MOONCAKE_KV', `${ENGINE_DEFAULTS.maxTotalTokens},2097152`);
  const loads = list('SIM_MOONCAKE_LOADS', '1,1.25,1.4,1.75');
  const speeds = list('SIM_MOONCAKE_SPEEDS', '3');

  const trace = readTrace(path);
  const ceilings = [traceCeiling(trace, requests), traceCeiling(trace)];
  console.log('\n### The trace\'s ceiling: one engine with an infinite cache\n');
  console.log('| requests | span at 1x s | prompt tokens in blocks seen before | largest throughput gain from caching, prefill-bound: 1 / (1 - share) |');
  console.log('|---|---|---|---|');
  for (const c of ceilings) console.log(`| ${c.requests} | ${f(c.spanSec)} | ${f(100 * c.share, 1)} % | ${f(1 / (1 - c.share), 2)}x |`);

  const span = ceilings[0]!.spanSec;
  const rows: Row[] = [];
  const run = (engine: EngineSpec, load: string, speed: number): SimResult[] => {
    const offered = speed === Infinity ? Infinity : (requests * speed) / span;
    const results = POLICIES(eventDelayMs).map((spec) => {
      const r = simulate(mooncake({ path, limit: requests, speed, seed }), { workers: WORKERS, engine, policy: { ...spec, seed }, seed });
      process.stderr.write(`mooncake-load kv ${engine.maxTotalTokens} ${load} ${r.policy}: ${r.wallSeconds.toFixed(1)} s\n`);
      return r;
    });
    const note = speed === Infinity ? 'every request at once (capacity)' : `${f(offered, 2)} req/s offered (trace at ${f(speed, 2)}x speed)`;
    console.log(`\n#### KV ${engine.maxTotalTokens} tokens/engine, ${load}: ${note}\n`);
    console.log(resultTable(results));
    for (const { perRequest: _, ...r } of results) rows.push({ ...r, kvTokens: engine.maxTotalTokens, load, speed, offered });
    return results;
  };

  for (const kv of kvs) {
    const engine: EngineSpec = { ...ENGINE_DEFAULTS, pageSize: PAGE, maxTotalTokens: kv };
    console.log(`\n### ${requests} requests, ${WORKERS} engines, KV ${kv} tokens/engine (page ${PAGE}); KV events land ${eventDelayMs} ms after the engine emits them\n`);
    const burst = run(engine, 'burst', Infinity);
    const capacity = (r: SimResult) => r.requests / (r.makespanMs / 1000);
    const rrCap = capacity(burst.find((r) => r.policy === 'round-robin')!);
    const rndCap = capacity(burst.find((r) => r.policy === 'random')!);
    console.log('\n| policy | capacity req/s | vs round-robin | vs random | hit rate |\n|---|---|---|---|---|');
    for (const r of burst) console.log(`| ${r.policy} | ${f(capacity(r), 2)} | ${f(capacity(r) / rrCap, 2)}x | ${f(capacity(r) / rndCap, 2)}x | ${f(100 * r.hitRate, 1)} % |`);
    for (const l of loads) run(engine, `${l}x round-robin's capacity`, (l * rrCap * span) / requests);
    for (const s of speeds) run(engine, `${f((requests * s) / span / rrCap, 2)}x round-robin's capacity (${s}x speed)`, s);
  }

  // Summary: per KV and load, the product's three ratios and the best any policy reached.
  console.log('\n### Against the targets, per load (product = kv-pending with the product\'s defaults)\n');
  console.log('| KV tokens/engine | offered load | req/s | product hit rate vs oracle | product TTFT p50 vs round-robin | best TTFT p50 vs round-robin (policy) | product throughput vs random | best throughput vs random (policy) | round-robin TTFT p50 ms | product TTFT p50 ms |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  const groups = new Map<string, Row[]>();
  for (const r of rows) groups.set(`${r.kvTokens}/${r.load}`, [...(groups.get(`${r.kvTokens}/${r.load}`) ?? []), r]);
  for (const g of groups.values()) {
    const by = (p: string) => g.find((r) => r.policy.startsWith(p))!;
    const [oracle, product, rr, rnd] = [by('oracle'), by('kv-pending'), by('round-robin'), by('random')];
    const best = (key: (r: Row) => number) => g.reduce((a, b) => (key(b) > key(a) ? b : a));
    const bt = best((r) => rr.ttftP50 / r.ttftP50);
    const bx = best((r) => r.throughput / rnd.throughput);
    const short = (p: string) => p.replace(/ \(.*\)$/, '');
    console.log(`| ${g[0]!.kvTokens} | ${g[0]!.load} | ${f(g[0]!.offered, 2)} | ${f(product.hitRate / oracle.hitRate, 2)} | ${f(rr.ttftP50 / product.ttftP50, 2)}x | ${f(rr.ttftP50 / bt.ttftP50, 2)}x (${short(bt.policy)}) | ${f(product.throughput / rnd.throughput, 2)}x | ${f(bx.throughput / rnd.throughput, 2)}x (${short(bx.policy)}) | ${f(rr.ttftP50)} | ${f(product.ttftP50)} |`);
  }
  return { ceilings, rows };
}
