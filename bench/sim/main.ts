// `npm run sim [-- <command>]`: the fleet simulator (bench/sim/README in bench/README.md).
//
//   report (default)  every workload at each fleet size under every policy, then the router's cost
//   fleet             the report's first part alone: every workload, fleet size and policy
//   cost              the native router's findMatches/route latency and decisions/s at scale,
//                     and Dynamo's indexer's find_matches on the same index and queries
//   cost-mooncake     the same on Dynamo's mooncake_bench index (the Mooncake trace over 1,000
//                     workers, copied to 7,000 and 10,000)
//   cost-ab           this build's decisions per CPU second beside SIM_COST_BASELINE's, interleaved
//                     in one process, both orders (cost_interleaved.ts: SIM_COST_AB_*)
//   sweep             overlap weight x temperature of the kv policy across workloads and fleets
//   sweep-pending     overlap weight x pending weight, then the pending timeout (pending prefixes)
//   burst             16 concurrent requests of one new prefix: how many stay on one engine
//   failures          Dynamo's known failure modes: starvation, alternation on tied scores
//   load              throughput against random by offered load (shared prefix, 8 engines)
//   hold              kv-pending with and without holding prompts for a prefix being prefilled
//   sglang            the product beside SGLang's cache_aware on bench:sgl-router's closed loop
//   own               kv-pending at own weight 0 (the cost before it) and the product's, beside
//                     the TypeScript prototype kv-pressure, over seeds: SIM_SEEDS (1,2,3),
//                     SIM_CASES (own_weight.ts OWN_CASES)
//   mooncake-load     the Mooncake trace's cache ceiling, each policy's capacity and the issue's
//                     three ratios by offered load around round-robin's capacity, at two KV
//                     sizes: SIM_MOONCAKE_REQUESTS (1000), SIM_MOONCAKE_KV (262144,2097152),
//                     SIM_MOONCAKE_LOADS (1,1.25,1.4,1.75), SIM_MOONCAKE_SPEEDS (3)
//   own-queue         the product at own queue weights SIM_OWN_QUEUE_WEIGHTS (0,1,2,4) beside
//                     cache_aware on Mooncake at three KV sizes, and on the workloads it must
//                     not cost (own_queue.ts)
//
// Env: SIM_FLEETS (8,64,1000,10000), SIM_WORKLOADS (shared-prefix,multi-turn,mooncake),
// SIM_POLICIES (all), SIM_EVENT_DELAY_MS (exact KV events: emit -> index, default 5),
// SIM_COST_FLEETS (64,1000,10000), SIM_COST_BASELINE (cost, cost-mooncake: another build's addon to run beside
// this one's), SIM_COST_REPEAT (1: runs of each baseline pair), SIM_COST_PEERS (dynamo: run
// Dynamo's indexer beside kvgate's when its venv exists, else say so; none: don't),
// SIM_COST_MOONCAKE_FLEETS (7000,10000), SIM_SEED (1), SIM_JSON (write the results there too).

import { writeFileSync } from 'node:fs';
import { POLICY_KINDS, PRODUCT_KNOBS, type PolicyKind, type PolicySpec } from './policies.js';
import { resultTable } from './report.js';
import { loadAddon, routerCost, type RouterCost, type Scan } from './router_cost.js';
import { mooncakeFleet, sharedPrefixFleet, type CostFleet } from './cost_fleets.js';
import { dynamoPython, peerCost, peerTable } from './peer_cost.js';
import { DYNAMO_VERSION } from '../gateway/peers.js';
import { scenario, WORKLOADS, type WorkloadName } from './scenarios.js';
import { simulate, ENGINE_DEFAULTS, type SimResult } from './simulate.js';
import { burstWorkload } from './burst.js';
import { runSweep } from './sweep.js';
import { ROUTING_DEFAULTS } from '../../src/router/routing_defaults.js';
import { runPendingSweep } from './sweep_pending.js';
import { runLoadSweep } from './load_sweep.js';
import { runHold } from './hold.js';
import { runBesideSglang } from './beside_sglang.js';
import { OWN_CASES, runOwnWeight } from './own_weight.js';
import { runMooncakeLoad } from './mooncake_load.js';
import { runOwnQueue } from './own_queue.js';
import { interleavedCost, interleavedTable } from './cost_interleaved.js';
import { FAILURE_POLICIES, starvation, tieAlternation } from './failure_modes.js';

const list = (k: string, d: string) => (process.env[k] ?? d).split(',').map((s) => s.trim()).filter(Boolean);
const seed = Number(process.env.SIM_SEED ?? 1);
const eventDelayMs = Number(process.env.SIM_EVENT_DELAY_MS ?? 5);
const json: Record<string, unknown> = {};

function report(): void {
  const fleets = list('SIM_FLEETS', '8,64,1000,10000').map(Number);
  const workloads = list('SIM_WORKLOADS', WORKLOADS.join(',')) as WorkloadName[];
  const policies = list('SIM_POLICIES', POLICY_KINDS.join(',')) as PolicyKind[];
  // Multi-turn and Mooncake are long per request: multi-turn at 8 and 64 engines, Mooncake at 8,
  // unless SIM_FLEETS asks.
  const fleetsOf = (w: WorkloadName) =>
    w === 'shared-prefix' || process.env.SIM_FLEETS ? fleets : fleets.filter((n) => n <= (w === 'mooncake' ? 8 : 64));
  const all: Record<string, Omit<SimResult, 'perRequest'>[]> = {};
  for (const w of workloads) {
    for (const n of fleetsOf(w)) {
      const sc = scenario(w, n, seed);
      const results: SimResult[] = [];
      for (const kind of policies) {
        // kv-pending runs the product's defaults (overlap weight 8, own weight 8, the wait for a
        // shared prefill its engine is still prefilling); kv keeps Dynamo's cost (1).
        const spec: PolicySpec = { kind, eventDelayMs, seed, ...(kind === 'kv-pending' ? PRODUCT_KNOBS : {}) };
        const r = simulate(sc.make(), { workers: n, engine: sc.engine, policy: spec, seed });
        results.push(r);
        process.stderr.write(`${w} x${n} ${r.policy}: ${r.wallSeconds.toFixed(1)} s\n`);
      }
      console.log(`\n### ${w}, ${n} engines (${results[0]?.requests ?? 0} requests)\n\n${sc.note}; KV events land ${eventDelayMs} ms after the engine emits them.\n`);
      console.log(resultTable(results));
      all[`${w}/${n}`] = results.map(({ perRequest: _, ...r }) => r);
    }
  }
  json.report = all;
}

// Each fleet size at pending weight 0 (Dynamo's cost) and the product's default: without
// SIM_COST_BASELINE, `scans` side by side (cost: the full scan of every candidate and the
// pruned scan); with SIM_COST_BASELINE=<addon>, the pruned scan of that build and of this one.
// SIM_COST_REPEAT=k runs each pair k times, alternating, and keeps each side's run of median
// decisions per CPU second (on a shared machine one run can land in another's burst).
function costRows(fleet: CostFleet, fleets: readonly number[], scans: readonly Scan[]): { rows: RouterCost[]; baseline?: string } {
  const baseline = process.env.SIM_COST_BASELINE;
  const repeat = Number(process.env.SIM_COST_REPEAT ?? 1);
  const median = (rs: RouterCost[]) => [...rs].sort((x, y) => x.decisionsPerCpuSec - y.decisionsPerCpuSec)[rs.length >> 1]!;
  const rows: RouterCost[] = [];
  for (const n of fleets) {
    for (const pw of [0, ROUTING_DEFAULTS.pendingWeight]) {
      if (baseline) {
        const before: RouterCost[] = [];
        const after: RouterCost[] = [];
        for (let k = 0; k < repeat; k++) {
          before.push(routerCost(n, 20_000, pw, 'pruned', { label: 'baseline', addon: loadAddon(baseline) }, fleet));
          after.push(routerCost(n, 20_000, pw, 'pruned', undefined, fleet));
        }
        rows.push(median(before), median(after));
      } else {
        for (const scan of scans) rows.push(routerCost(n, 20_000, pw, scan, undefined, fleet));
      }
    }
  }
  return { rows, baseline };
}

// The cost table, and with pairs (two rows per fleet size and pending weight) their ratios.
function printCost(title: string, { rows, baseline }: { rows: RouterCost[]; baseline?: string }, pairs: boolean): void {
  const variant = (r: RouterCost) => (baseline ? r.build : r.scan);
  const [a, b] = baseline ? ['baseline', 'this'] : ['full', 'pruned'];
  console.log(`\n### ${title}\n`);
  if (baseline) console.log(`baseline: ${baseline}\n`);
  console.log(costTable(rows, baseline ? 'build' : 'scan', variant));
  if (!pairs) return;
  console.log(`\n| workers | pending weight | route p50 ${a} / ${b} | route p99 ${a} / ${b} | route CPU p99 ${a} / ${b} | decisions per CPU second ${b} / ${a} | untimed ${b} / ${a} | untimed, prompt in cache ${b} / ${a} |`);
  console.log('|---|---|---|---|---|---|---|---|');
  for (let i = 0; i + 1 < rows.length; i += 2) {
    const [f, p] = [rows[i]!, rows[i + 1]!];
    console.log(`| ${f.workers} | ${f.pendingWeight} | ${(f.routeP50Us / p.routeP50Us).toFixed(2)}x | ${(f.routeP99Us / p.routeP99Us).toFixed(2)}x | ${(f.routeCpuP99Us / p.routeCpuP99Us).toFixed(2)}x | ${(p.decisionsPerCpuSec / f.decisionsPerCpuSec).toFixed(2)}x | ${(p.untimedDecisionsPerCpuSec / f.untimedDecisionsPerCpuSec).toFixed(2)}x | ${(p.untimedCachedDecisionsPerCpuSec / f.untimedCachedDecisionsPerCpuSec).toFixed(2)}x |`);
  }
}

function cost(): void {
  const fleets = list('SIM_COST_FLEETS', '64,1000,10000').map(Number);
  const result = costRows(sharedPrefixFleet, fleets, ['full', 'pruned']);
  printCost('Router cost on one core', result, true);
  json.cost = result.rows;
  json.costPeers = peers(sharedPrefixFleet, fleets);
}

function costTable(rows: readonly RouterCost[], name: string, variant: (r: RouterCost) => string): string {
  const lines = [
    `| workers | pending weight | ${name} | index (block, worker) pairs | build s | findMatches p50 µs | p99 µs | findMatches CPU p50 / p99 µs | route p50 µs | route p99 µs | route CPU p50 / p99 µs | free p50 µs | free p99 µs | decisions/s (wall) | decisions per CPU second | decisions per CPU second, untimed | untimed, prompt in cache (its copy included) | the copy alone µs | decisions per second of the router's own calls (timed, prompt in cache) |`,
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const r of rows) {
    lines.push(`| ${r.workers} | ${r.pendingWeight} | ${variant(r)} | ${r.indexPairs} | ${r.buildSeconds.toFixed(1)} | ${r.findP50Us.toFixed(1)} | ${r.findP99Us.toFixed(1)} | ${r.findCpuP50Us.toFixed(0)} / ${r.findCpuP99Us.toFixed(0)} | ${r.routeP50Us.toFixed(1)} | ${r.routeP99Us.toFixed(1)} | ${r.routeCpuP50Us.toFixed(0)} / ${r.routeCpuP99Us.toFixed(0)} | ${r.freeP50Us.toFixed(1)} | ${r.freeP99Us.toFixed(1)} | ${r.decisionsPerSec.toFixed(0)} | ${r.decisionsPerCpuSec.toFixed(0)} | ${r.untimedDecisionsPerCpuSec.toFixed(0)} | ${r.untimedCachedDecisionsPerCpuSec.toFixed(0)} | ${r.untimedCopyUs.toFixed(2)} | ${r.routerTimeDecisionsPerSec.toFixed(0)} |`);
  }
  return lines.join('\n');
}

// Dynamo's indexer beside kvgate's findMatches on `fleet` (SIM_COST_PEERS, default dynamo); it is
// skipped, saying why, when the Dynamo venv is not installed.
function peers(fleet: CostFleet, fleets: readonly number[]): unknown {
  if (!list('SIM_COST_PEERS', 'dynamo').includes('dynamo')) return undefined;
  const py = dynamoPython();
  if ('missing' in py) {
    console.log(`\nDynamo's indexer: skipped, ${py.missing}.`);
    return undefined;
  }
  const rows = fleets.map((n) => peerCost(py.python, fleet, n));
  console.log(`\n### ${fleet.name}: kvgate's findMatches and Dynamo ${DYNAMO_VERSION}'s RadixTree.find_matches on the same index and queries\n`);
  console.log(peerTable(rows));
  return rows;
}

// Dynamo's mooncake_bench index: kvgate's route at the product's pending weight and without,
// then both indexes' find matches.
// (SIM_COST_BASELINE and SIM_COST_REPEAT as for cost; without a baseline, the pruned scan only.)
function costMooncake(): void {
  const fleets = list('SIM_COST_MOONCAKE_FLEETS', '7000,10000').map(Number);
  const fleet = mooncakeFleet();
  const result = costRows(fleet, fleets, ['pruned']);
  printCost('Router cost on one core, Mooncake trace (512-token blocks)', result, result.baseline !== undefined);
  json.costMooncake = result.rows;
  json.costMooncakePeers = peers(fleet, fleets);
}

function burst(): void {
  console.log('\n### Burst: 16 concurrent requests of one new 2,048-token prefix on 8 idle engines\n');
  console.log('| policy | event delay ms | requests on the busiest engine | hit rate | TTFT p50 ms | TTFT p99 ms |');
  console.log('|---|---|---|---|---|---|');
  const rows = [];
  const specs: PolicySpec[] = [{ kind: 'oracle' }, { kind: 'kv-approx' }];
  for (const kind of ['kv', 'kv-pending'] as PolicyKind[]) {
    for (const overlapWeight of [1, 4, 8]) for (const d of [0, 20]) specs.push({ kind, overlapWeight, eventDelayMs: d });
  }
  for (const d of [0, 20]) specs.push({ kind: 'kv-pending', overlapWeight: 8, ownWeight: ROUTING_DEFAULTS.ownWeight, eventDelayMs: d });
  for (const d of [0, 20]) specs.push({ kind: 'kv-pending', ...PRODUCT_KNOBS, holdSharedPrefill: false, eventDelayMs: d });
  for (const spec of specs) {
    const r = simulate(burstWorkload(seed), { workers: 8, engine: ENGINE_DEFAULTS, policy: { ...spec, seed }, seed });
    const top = Math.round(r.maxShare * r.requests);
    console.log(`| ${r.policy} | ${spec.eventDelayMs ?? '-'} | ${top} of ${r.requests} | ${(100 * r.hitRate).toFixed(1)} % | ${r.ttftP50.toFixed(0)} | ${r.ttftP99.toFixed(0)} |`);
    rows.push({ policy: r.policy, delay: spec.eventDelayMs, top, hitRate: r.hitRate, ttftP50: r.ttftP50, ttftP99: r.ttftP99 });
  }
  json.burst = rows;
}

function failures(): void {
  console.log('\n### Known failure modes (Dynamo issues #7836 and #3581)\n');
  console.log('Starvation: 500 single-turn requests sharing a 64-token header (1,000 own tokens, 200 out) at 15 req/s on 5 engines. Tie alternation: 16 conversations x 8 turns on 2 engines.\n');
  console.log('| policy | starvation: least-served engine / fair share | imbalance | TTFT p50 ms | tie alternation: turns back on the last engine | hit rate | TTFT p50 ms |');
  console.log('|---|---|---|---|---|---|---|');
  const rows = [];
  for (const spec of FAILURE_POLICIES) {
    const a = starvation(spec, seed, eventDelayMs);
    const b = tieAlternation(spec, seed, eventDelayMs);
    console.log(`| ${a.policy} | ${a.minShareOfFair.toFixed(2)} | ${a.imbalance.toFixed(2)} | ${a.ttftP50.toFixed(0)} | ${(100 * b.turnAffinity).toFixed(0)} % | ${(100 * b.hitRate).toFixed(1)} % | ${b.ttftP50.toFixed(0)} |`);
    rows.push({ policy: a.policy, minShareOfFair: a.minShareOfFair, imbalance: a.imbalance, starvationTtftP50: a.ttftP50, turnAffinity: b.turnAffinity, hitRate: b.hitRate, ttftP50: b.ttftP50 });
  }
  json.failures = rows;
}

const cmd = process.argv[2] ?? 'report';
const t0 = performance.now();
switch (cmd) {
  case 'report':
    report();
    burst();
    failures();
    cost();
    break;
  case 'fleet':
    report();
    break;
  case 'cost':
    cost();
    break;
  case 'cost-mooncake':
    costMooncake();
    break;
  case 'sweep':
    json.sweep = runSweep(seed, eventDelayMs);
    break;
  case 'sweep-pending':
    json.sweepPending = runPendingSweep(seed, eventDelayMs);
    break;
  case 'burst':
    burst();
    break;
  case 'failures':
    failures();
    break;
  case 'load':
    json.load = runLoadSweep(seed, eventDelayMs);
    break;
  case 'hold':
    json.hold = runHold(seed, eventDelayMs, list('SIM_FLEETS', '8,64').map(Number), list('SIM_WORKLOADS', WORKLOADS.join(',')) as WorkloadName[]);
    break;
  case 'sglang':
    json.sglang = runBesideSglang(seed, eventDelayMs);
    break;
  case 'own':
    json.own = runOwnWeight(list('SIM_SEEDS', '1,2,3').map(Number), eventDelayMs, list('SIM_CASES', Object.keys(OWN_CASES).join(',')));
    break;
  case 'mooncake-load':
    json.mooncakeLoad = runMooncakeLoad(seed, eventDelayMs);
    break;
  case 'own-queue':
    json.ownQueue = runOwnQueue(eventDelayMs);
    break;
  case 'cost-ab': {
    const baseline = process.env.SIM_COST_BASELINE;
    if (!baseline) {
      console.error('cost-ab: SIM_COST_BASELINE (the other build\'s kvgate.node) is required');
      process.exit(2);
    }
    const c = interleavedCost(baseline);
    console.log(`\n### Decisions per CPU second, interleaved: this build beside ${baseline}\n`);
    console.log(interleavedTable(c, baseline));
    json.costAb = c;
    break;
  }
  default:
    console.error(`unknown command '${cmd}' (report, fleet, cost, cost-mooncake, sweep, sweep-pending, burst, failures, load, hold, sglang, own, mooncake-load, cost-ab)`);
    process.exit(2);
}
console.log(`\n(${cmd}: ${((performance.now() - t0) / 1000).toFixed(0)} s wall)`);
if (process.env.SIM_JSON) writeFileSync(process.env.SIM_JSON, JSON.stringify(json, null, 1));
