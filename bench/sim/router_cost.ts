// The native router's own cost at fleet scale, on one core (the JS thread calling the addon):
// findMatches and route() latency percentiles and routing decisions per second at 1,000 and
// 10,000 workers. The index looks like a fleet serving shared-prefix traffic: 64 system prompts
// of 64 blocks, each held by 1/32 of the fleet, and one conversation of 256 blocks (a system
// prompt and 192 own blocks) per worker. A decision is route + markPrefillDone + free,
// with one request in flight per worker, as a frontend keeps them. The router runs the product's
// overlap weight, and either its pruned scan (the default: matched units plus the least loaded
// of the rest) or, for comparison, a full scan of every candidate (`fullScan`). An addon built
// elsewhere (SIM_COST_BASELINE, e.g. from main) can run the same decisions beside this build's.

import { createRequire } from 'node:module';
import { addon, type KvgateAddon } from '../../src/native/addon.js';
import { KvgateError } from '../../src/errors.js';
import { rng, tokenAt } from '../../src/bench/workloads.js';
import { ROUTING_DEFAULTS } from '../../src/router/routing_defaults.js';

const BS = 16;
const SYSTEMS = 64;
const SYSTEM_BLOCKS = 64;
const CONV_BLOCKS = 256;
const CONVS_PER_WORKER = 1;
const SYSTEM_SHARE = 32; // each system prompt is held by workers / SYSTEM_SHARE workers (and its conversations' workers)

export interface RouterCost {
  workers: number;
  pendingWeight: number;
  scan: Scan;
  build: string; // 'this' or the baseline addon's label
  indexPairs: number;
  buildSeconds: number;
  findP50Us: number;
  findP99Us: number;
  routeP50Us: number;
  routeP99Us: number;
  // The same in this process's CPU time (getrusage, µs resolution): what the route costs a core,
  // without the time the shared machine's scheduler takes the thread away mid-route.
  routeCpuP50Us: number;
  routeCpuP99Us: number;
  freeP50Us: number;
  freeP99Us: number;
  // Per second of wall time, and per second of this process's CPU time (the machine is shared:
  // the second is what one core does).
  decisionsPerSec: number;
  decisionsPerCpuSec: number;
}

export type Scan = 'pruned' | 'full';

// The addon at `path` (a .node file), loaded beside this build's.
export function loadAddon(path: string): KvgateAddon {
  const mod = createRequire(import.meta.url)(path) as KvgateAddon;
  mod.setErrorClass(KvgateError);
  return mod;
}

function pct(xs: Float64Array, p: number): number {
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}

// pendingWeight > 0: each routed prompt's blocks are also recorded as pending (and dropped at
// its free), the product's default (src/router/routing_defaults.ts).
export function routerCost(
  workers: number,
  decisions = 20_000,
  pendingWeight = 0,
  scan: Scan = 'pruned',
  build: { label: string; addon: KvgateAddon } = { label: 'this', addon },
): RouterCost {
  const router = new build.addon.KvRouter({ blockSize: BS, seed: 1, pendingWeight, overlapWeight: ROUTING_DEFAULTS.overlapWeight, fullScan: scan === 'full' });
  for (let w = 0; w < workers; w++) router.addWorker(w, 0);
  const block = (id: number) => Uint32Array.from({ length: BS }, (_, j) => tokenAt(7, id, j));
  const systems = Array.from({ length: SYSTEMS }, (_, s) => {
    const t = new Uint32Array(SYSTEM_BLOCKS * BS);
    for (let b = 0; b < SYSTEM_BLOCKS; b++) t.set(block(s * SYSTEM_BLOCKS + b), b * BS);
    return t;
  });
  const r = rng(3);
  const t0 = performance.now();
  const sysHash = (s: number, b: number) => (BigInt(s) << 20n) + BigInt(b);
  for (let s = 0; s < SYSTEMS; s++) {
    const hashes = BigInt64Array.from({ length: SYSTEM_BLOCKS }, (_, b) => sysHash(s, b));
    for (let k = 0; k < workers / SYSTEM_SHARE; k++) router.applyStored((s * 131 + k * SYSTEM_SHARE) % workers, 0, null, systems[s]!, hashes);
  }
  const prompts: Uint32Array[] = [];
  let conv = 0;
  for (let w = 0; w < workers; w++) {
    for (let c = 0; c < CONVS_PER_WORKER; c++, conv++) {
      const s = Math.floor(r() * SYSTEMS);
      const p = new Uint32Array(CONV_BLOCKS * BS);
      p.set(systems[s]!);
      for (let b = SYSTEM_BLOCKS; b < CONV_BLOCKS; b++) p.set(block(1e6 + conv * CONV_BLOCKS + b), b * BS);
      const own = BigInt64Array.from({ length: CONV_BLOCKS - SYSTEM_BLOCKS }, (_, i) => (1n << 40n) + BigInt(conv) * 1024n + BigInt(i));
      // The worker holds its system prompt too (stored before its own blocks).
      router.applyStored(w, 0, null, systems[s]!, BigInt64Array.from({ length: SYSTEM_BLOCKS }, (_, b) => sysHash(s, b)));
      router.applyStored(w, 0, sysHash(s, SYSTEM_BLOCKS - 1), p.subarray(SYSTEM_BLOCKS * BS), own);
      if (prompts.length < 4096) prompts.push(p);
    }
  }
  const buildSeconds = (performance.now() - t0) / 1000;
  const units = router.stats().units;
  const outW = new Uint32Array(units);
  const outR = new Uint32Array(units);
  const outD = new Uint32Array(units);
  const out = new Uint32Array(3);
  const pick = rng(5);
  const tokens = new Uint32Array(CONV_BLOCKS * BS);
  const find = new Float64Array(Math.min(decisions, 5000));
  for (let i = 0; i < find.length; i++) {
    tokens.set(prompts[Math.floor(pick() * prompts.length)]!);
    const a = process.hrtime.bigint();
    router.findMatches(tokens, outW, outR, outD);
    find[i] = Number(process.hrtime.bigint() - a) / 1000;
  }
  // Decisions: one request in flight per worker (freed `workers` decisions later).
  const inFlight = Math.min(workers, decisions / 2);
  const route = new Float64Array(decisions);
  const routeCpu = new Float64Array(decisions);
  const free = new Float64Array(decisions);
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  for (let id = 1; id <= decisions; id++) {
    tokens.set(prompts[Math.floor(pick() * prompts.length)]!);
    const c0 = process.cpuUsage();
    const a = process.hrtime.bigint();
    router.route(tokens, id, out);
    route[id - 1] = Number(process.hrtime.bigint() - a) / 1000;
    const c = process.cpuUsage(c0);
    routeCpu[id - 1] = c.user + c.system;
    router.markPrefillDone(id);
    const b = process.hrtime.bigint();
    if (id > inFlight) router.free(id - inFlight);
    free[id - 1] = Number(process.hrtime.bigint() - b) / 1000;
  }
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const pairs = router.stats().pairs;
  router.close();
  return {
    workers,
    pendingWeight,
    scan,
    build: build.label,
    indexPairs: pairs,
    buildSeconds,
    findP50Us: pct(find, 0.5),
    findP99Us: pct(find, 0.99),
    routeP50Us: pct(route, 0.5),
    routeP99Us: pct(route, 0.99),
    routeCpuP50Us: pct(routeCpu, 0.5),
    routeCpuP99Us: pct(routeCpu, 0.99),
    freeP50Us: pct(free, 0.5),
    freeP99Us: pct(free, 0.99),
    decisionsPerSec: decisions / seconds,
    decisionsPerCpuSec: decisions / cpuSeconds,
  };
}
