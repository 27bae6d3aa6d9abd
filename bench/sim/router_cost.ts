// The native router's own cost at fleet scale, on one core (the JS thread calling the addon):
// findMatches and route() latency percentiles and routing decisions per second at 1,000 and
// 10,000 workers, on an index from cost_fleets.ts (by default the shared-prefix fleet). A
// decision is route + markPrefillDone + free, with one request in flight per worker, as a
// frontend keeps them. The router runs the product's overlap weight, and either its pruned scan
// (the default: matched units plus the least loaded of the rest) or, for comparison, a full scan
// of every candidate (`fullScan`). An addon built
// elsewhere (SIM_COST_BASELINE, e.g. from main) can run the same decisions beside this build's.

import { createRequire } from 'node:module';
import { addon, type KvgateAddon } from '../../src/native/addon.js';
import { KvgateError } from '../../src/errors.js';
import { ROUTING_DEFAULTS } from '../../src/router/routing_defaults.js';
import { queryPicker, sharedPrefixFleet, type CostFleet } from './cost_fleets.js';

export interface RouterCost {
  fleet: string;
  workers: number;
  pendingWeight: number;
  scan: Scan;
  build: string; // 'this' or the baseline addon's label
  indexPairs: number;
  buildSeconds: number;
  findP50Us: number;
  findP99Us: number;
  // findMatches in this process's CPU time (getrusage per call, µs resolution), as route CPU below.
  findCpuP50Us: number;
  findCpuP99Us: number;
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
  // The same decisions again, continuing the same requests, in a loop without the per-call
  // timers (two getrusage and four clock reads per decision) and without copying each prompt
  // into a fresh buffer: the router's own cost per decision.
  untimedDecisionsPerCpuSec: number;
  // The untimed loop again (continuing the same requests), but each prompt is first copied
  // into one reused buffer, so the router reads it from cache: as the gateway's frontend
  // hands over a prompt it has just tokenized, where the untimed loop reads each of the
  // fleet's prompts (up to 200 MB) from DRAM. The copy's cost is included here, and
  // measured alone (the same copies, no routing) in untimedCopyUs, per decision.
  untimedCachedDecisionsPerCpuSec: number;
  untimedCopyUs: number;
  // Decisions over the wall time spent inside the router's calls of the timed loop (route,
  // markPrefillDone, free; the prompt copied into the buffer before the clock starts, so in
  // cache): the router's own time per decision with the harness left out. Wall time, so a
  // loaded machine's preemptions count against it.
  routerTimeDecisionsPerSec: number;
}

export type Scan = 'pruned' | 'full';

// The addon at `path` (a .node file), loaded beside this build's.
export function loadAddon(path: string): KvgateAddon {
  const mod = createRequire(import.meta.url)(path) as KvgateAddon;
  mod.setErrorClass(KvgateError);
  return mod;
}

export function pct(xs: Float64Array, p: number): number {
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
  fleet: CostFleet = sharedPrefixFleet,
): RouterCost {
  const router = new build.addon.KvRouter({ blockSize: fleet.blockSize, seed: 1, pendingWeight, overlapWeight: ROUTING_DEFAULTS.overlapWeight, fullScan: scan === 'full' });
  for (let w = 0; w < workers; w++) router.addWorker(w, 0);
  const t0 = performance.now();
  const prompts = fleet.build(workers, (w, parent, tokens, hashes) => router.applyStored(w, 0, parent, tokens, hashes));
  const buildSeconds = (performance.now() - t0) / 1000;
  const units = router.stats().units;
  const outW = new Uint32Array(units);
  const outR = new Uint32Array(units);
  const outD = new Uint32Array(units);
  const out = new Uint32Array(3);
  const pick = queryPicker(prompts.length);
  const buffer = new Uint32Array(Math.max(...prompts.map((p) => p.length)));
  // A prompt copied into the one buffer (then in cache), as a frontend hands the router a fresh one.
  const copied = (p: Uint32Array) => {
    buffer.set(p);
    return buffer.length === p.length ? buffer : buffer.subarray(0, p.length);
  };
  const query = () => copied(prompts[pick()]!);
  const find = new Float64Array(Math.min(decisions, 5000));
  const findCpu = new Float64Array(find.length);
  for (let i = 0; i < find.length; i++) {
    const tokens = query();
    const c0 = process.cpuUsage();
    const a = process.hrtime.bigint();
    router.findMatches(tokens, outW, outR, outD);
    find[i] = Number(process.hrtime.bigint() - a) / 1000;
    const c = process.cpuUsage(c0);
    findCpu[i] = c.user + c.system;
  }
  // Decisions: one request in flight per worker (freed `workers` decisions later, before the
  // next is routed: a worker's request finishes, then the next arrives).
  const inFlight = Math.min(workers, decisions / 2);
  const route = new Float64Array(decisions);
  const routeCpu = new Float64Array(decisions);
  const free = new Float64Array(decisions);
  let routerNs = 0;
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  for (let id = 1; id <= decisions; id++) {
    const tokens = query();
    const b = process.hrtime.bigint();
    if (id > inFlight) router.free(id - inFlight);
    const e = process.hrtime.bigint();
    free[id - 1] = Number(e - b) / 1000;
    const c0 = process.cpuUsage();
    const a = process.hrtime.bigint();
    router.route(tokens, id, out);
    route[id - 1] = Number(process.hrtime.bigint() - a) / 1000;
    const c = process.cpuUsage(c0);
    routeCpu[id - 1] = c.user + c.system;
    const m = process.hrtime.bigint();
    router.markPrefillDone(id);
    routerNs += route[id - 1]! * 1000 + Number(process.hrtime.bigint() - m) + Number(e - b);
  }
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  const untimed0 = process.cpuUsage();
  for (let id = decisions + 1; id <= 2 * decisions; id++) {
    router.free(id - inFlight);
    router.route(prompts[pick()]!, id, out);
    router.markPrefillDone(id);
  }
  const untimed = process.cpuUsage(untimed0);
  const cached0 = process.cpuUsage();
  for (let id = 2 * decisions + 1; id <= 3 * decisions; id++) {
    router.free(id - inFlight);
    router.route(query(), id, out);
    router.markPrefillDone(id);
  }
  const cached = process.cpuUsage(cached0);
  // The copies alone: the same prompts as the loop just before (its picks again), no routing.
  const again = queryPicker(prompts.length);
  for (let i = 0; i < find.length + 2 * decisions; i++) again();
  let sink = 0;
  const copy0 = process.cpuUsage();
  for (let i = 0; i < decisions; i++) {
    sink += copied(prompts[again()]!).length;
  }
  const copy = process.cpuUsage(copy0);
  if (sink === 0) throw new Error('router cost: no prompt copied');
  const pairs = router.stats().pairs;
  router.close();
  return {
    fleet: fleet.name,
    workers,
    pendingWeight,
    scan,
    build: build.label,
    indexPairs: pairs,
    buildSeconds,
    findP50Us: pct(find, 0.5),
    findP99Us: pct(find, 0.99),
    findCpuP50Us: pct(findCpu, 0.5),
    findCpuP99Us: pct(findCpu, 0.99),
    routeP50Us: pct(route, 0.5),
    routeP99Us: pct(route, 0.99),
    routeCpuP50Us: pct(routeCpu, 0.5),
    routeCpuP99Us: pct(routeCpu, 0.99),
    freeP50Us: pct(free, 0.5),
    freeP99Us: pct(free, 0.99),
    decisionsPerSec: decisions / seconds,
    decisionsPerCpuSec: decisions / cpuSeconds,
    untimedDecisionsPerCpuSec: decisions / ((untimed.user + untimed.system) / 1e6),
    untimedCachedDecisionsPerCpuSec: decisions / ((cached.user + cached.system) / 1e6),
    untimedCopyUs: (copy.user + copy.system) / decisions,
    routerTimeDecisionsPerSec: decisions / (routerNs / 1e9),
  };
}
