// `npm run sim -- cost-ab`: this build's router beside another build's (SIM_COST_BASELINE) in
// one process, on one fleet, the same decisions (route + markPrefillDone + free, untimed, one
// request in flight per worker) alternating in chunks timed by process CPU time, so that both
// builds see the same moments of a shared machine. Separate runs of `cost` move by 10-30 % from
// run to run on this machine; this moves by a few per cent.
//
// Whichever router is built second runs a few per cent faster even against a copy of itself
// (where the fleets land in memory), so the command runs both orders, each in a fresh process
// (this file, run directly), and reports the geometric mean:
// this / baseline = sqrt(r(baseline first) / r(this first)), r = first's CPU / second's.
// Both builds must make the same picks: their pick checksums are compared.
//
// Env: SIM_COST_AB_FLEET (mooncake | shared-prefix), SIM_COST_AB_WORKERS (10000),
// SIM_COST_AB_PENDING (the product's pending weight), SIM_COST_AB_CHUNK (decisions per chunk,
// 2000), SIM_COST_AB_CHUNKS (pairs of chunks, 100), SIM_COST_AB_COPY (1: copy each prompt into
// one reused buffer first, as the gateway hands over a prompt it has just tokenized).

import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { addon as thisAddon } from '../../src/native/addon.js';
import { ROUTING_DEFAULTS } from '../../src/router/routing_defaults.js';
import { mooncakeFleet, queryPicker, sharedPrefixFleet } from './cost_fleets.js';
import { loadAddon } from './router_cost.js';

export interface InterleavedRun {
  first: string; // the build whose router was built first
  perCpuSecond: Record<string, number>; // decisions per CPU second, by build
  checksums: Record<string, number>;
}

export interface InterleavedCost {
  fleet: string;
  workers: number;
  pendingWeight: number;
  copy: boolean;
  runs: InterleavedRun[];
  ratio: number; // this / baseline, decisions per CPU second, both orders combined
  loadAverage: [number, number]; // at the start and the end
}

const env = (k: string, d: string) => process.env[k] ?? d;

// One order, in this process: routers of `paths` built in that order ('this': this build).
function runOrder(paths: string[]): InterleavedRun {
  const fleet = env('SIM_COST_AB_FLEET', 'mooncake') === 'shared-prefix' ? sharedPrefixFleet : mooncakeFleet();
  const workers = Number(env('SIM_COST_AB_WORKERS', '10000'));
  const pendingWeight = Number(env('SIM_COST_AB_PENDING', String(ROUTING_DEFAULTS.pendingWeight)));
  const chunk = Number(env('SIM_COST_AB_CHUNK', '2000'));
  const chunks = Number(env('SIM_COST_AB_CHUNKS', '100'));
  const copy = env('SIM_COST_AB_COPY', '0') === '1';
  const builds = paths.map((path) => {
    const addon = path === 'this' ? thisAddon : loadAddon(path);
    const router = new addon.KvRouter({ blockSize: fleet.blockSize, seed: 1, pendingWeight, overlapWeight: ROUTING_DEFAULTS.overlapWeight });
    for (let w = 0; w < workers; w++) router.addWorker(w, 0);
    return { path, router, next: 0, checksum: 0, cpu: 0 };
  });
  const prompts = fleet.build(workers, (w, parent, tokens, hashes) => {
    for (const b of builds) b.router.applyStored(w, 0, parent, tokens, hashes);
  });
  const picks = builds.map(() => queryPicker(prompts.length));
  const out = new Uint32Array(3);
  const buffer = new Uint32Array(Math.max(...prompts.map((p) => p.length)));
  const run = (k: number, n: number): number => {
    const b = builds[k]!;
    const c0 = process.cpuUsage();
    for (let i = 0; i < n; i++) {
      const id = ++b.next;
      let prompt = prompts[picks[k]!()]!;
      if (copy) {
        buffer.set(prompt);
        prompt = buffer.subarray(0, prompt.length);
      }
      if (id > workers) b.router.free(id - workers);
      b.router.route(prompt, id, out);
      b.checksum = (b.checksum * 31 + out[0]!) >>> 0;
      b.router.markPrefillDone(id);
    }
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / 1e6;
  };
  for (let k = 0; k < builds.length; k++) run(k, 2 * workers); // every worker has a request in flight
  for (let c = 0; c < chunks; c++) {
    for (const k of c % 2 === 0 ? [0, 1] : [1, 0]) builds[k]!.cpu += run(k, chunk);
  }
  return {
    first: paths[0]!,
    perCpuSecond: Object.fromEntries(builds.map((b) => [b.path, (chunk * chunks) / b.cpu])),
    checksums: Object.fromEntries(builds.map((b) => [b.path, b.checksum])),
  };
}

// Both orders, each in a child process; throws if the builds' picks differ.
export function interleavedCost(baseline: string): InterleavedCost {
  const start = loadavg()[0]!;
  const runs = [[baseline, 'this'], ['this', baseline]].map((paths) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...paths], { encoding: 'utf8', maxBuffer: 1 << 20, stdio: ['ignore', 'pipe', 'inherit'] });
    if (r.status !== 0) throw new Error(`cost-ab: the run with ${paths.join(' first, then ')} failed`);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as InterleavedRun;
  });
  for (const r of runs) {
    if (r.checksums[baseline] !== r.checksums.this) throw new Error(`cost-ab: the builds picked differently (checksums ${JSON.stringify(r.checksums)})`);
  }
  const [baseFirst, thisFirst] = runs as [InterleavedRun, InterleavedRun];
  // r = the first-built router's CPU over the second's = second's rate over first's.
  const r = (run: InterleavedRun, first: string, second: string) => run.perCpuSecond[second]! / run.perCpuSecond[first]!;
  const ratio = Math.sqrt(r(baseFirst, baseline, 'this') / r(thisFirst, 'this', baseline));
  return {
    fleet: env('SIM_COST_AB_FLEET', 'mooncake'),
    workers: Number(env('SIM_COST_AB_WORKERS', '10000')),
    pendingWeight: Number(env('SIM_COST_AB_PENDING', String(ROUTING_DEFAULTS.pendingWeight))),
    copy: env('SIM_COST_AB_COPY', '0') === '1',
    runs,
    ratio,
    loadAverage: [start, loadavg()[0]!],
  };
}

export function interleavedTable(c: InterleavedCost, baseline: string): string {
  const lines = [
    `| fleet | workers | pending weight | prompt | built first | ${baseline}: decisions per CPU second | this build | load average |`,
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const r of c.runs) {
    lines.push(`| ${c.fleet} | ${c.workers} | ${c.pendingWeight} | ${c.copy ? 'copied first' : 'as stored'} | ${r.first === 'this' ? 'this build' : 'baseline'} | ${r.perCpuSecond[baseline]!.toFixed(0)} | ${r.perCpuSecond.this!.toFixed(0)} | ${c.loadAverage.map((x) => x.toFixed(1)).join(' -> ')} |`);
  }
  lines.push('', `This build / baseline, both orders: **${c.ratio.toFixed(3)}x** decisions per CPU second (same picks: equal checksums).`);
  return lines.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(JSON.stringify(runOrder(process.argv.slice(2))));
