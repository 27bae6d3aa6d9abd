// `npm run bench:report`: the suite's headline numbers in one folder, bench/results/<date>/:
// report.md (tables, the command behind each, the machine), results.json, and four plots:
//
//   ttft_vs_load.svg        TTFT p50 vs concurrency, one line per router mode (kvgate serve,
//                           4 mocker workers, shared-prefix workload)
//   hit_rate_vs_pressure.svg  cached-prompt-token share vs each engine's KV capacity, kv vs
//                           round-robin (same workload at concurrency 16)
//   routing_latency.svg     the native router's decision latency p50/p99 vs fleet size (in process)
//   throughput_vs_peers.svg requests/s vs concurrency for kvgate, NVIDIA Dynamo and the engine
//                           alone, from a `npm run bench:gateway` run (the newest in the bench
//                           cache, or --gateway-run DIR; `--gateway` runs one first)
//
// and the routing-quality points on real processes, kvgate's router modes beside the peers
// (sglang-router and smg cache_aware, NVIDIA Dynamo's KV frontend; bench/suite/targets.ts) on the
// same kind of fleet: the shared-prefix workload at 70% of round-robin's capacity and at 70% of
// kv's own (Poisson arrivals), and whole conversations of the Mooncake trace closed-loop at a
// concurrency that saturates round-robin. Each serving point runs --repeats times (default 3,
// 1 with --quick); the tables show the median and the min-max range, the plots the median.
//
// It then rewrites the summary between the `bench:report` markers in bench/README.md and the
// headline plot link in README.md.
//
//   npm run bench:report -- [--quick] [--repeats N] [--peers sglang-router,smg,dynamo]
//                           [--gateway] [--gateway-run DIR] [--out DIR]

import { execFileSync } from 'node:child_process';
import { cpus, loadavg, tmpdir } from 'node:os';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MOONCAKE_PATH } from '../../src/bench/workloads.js';
import { routerCost } from '../sim/router_cost.js';
import { defaultCacheDir, ensurePeers, type Peers } from '../gateway/peers.js';
import { killAllNow, stopAll } from '../gateway/procs.js';
import type { EngineSettings } from '../gateway/systems.js';
import { at, cached, clean, med, servePoints as runPoints, sizedKv, sp, ttftP50, type Load, type Metric, type PointRunner, type ServePoint } from './serve_points.js';
import { bestCachedShare, formatSpread, parseReportArgs, sampleConversations, spread, type TraceLine } from './summary.js';
import { lineChart, type Series } from './svg_chart.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const a = parseReportArgs(process.argv.slice(2));

const date = new Date().toISOString().slice(0, 10);
const outDir = resolve(a.out ?? join(ROOT, 'bench', 'results', date));
mkdirSync(outDir, { recursive: true });
const scratch = join(tmpdir(), `kvgate-report-${process.pid}`);
const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`;
const commit = (() => {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
})();
const log = (s: string) => console.error(`[bench:report] ${s}`);
// The command line of this run, as the report and the README summary quote it.
const command = ['npm run bench:report', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' ');
const load0 = loadavg()[0]!;
process.on('exit', killAllNow);

// The shared-prefix workload every serving point uses (SGLang's generated-shared-prefix, scaled
// to run in seconds per point on the mocker).
const groups = a.quick ? 8 : 16;
const workload = ['--workload', 'shared-prefix', '--gsp-num-groups', String(groups), '--gsp-prompts-per-group', '8', '--gsp-system-prompt-len', '2048', '--gsp-question-len', '128', '--gsp-output-len', '64'];

// The simulated fleet of every serving point: 4 engines with kvgate serve's defaults (page 16,
// 262,144 KV tokens, 1,024 running requests), the mockers at speedup 0.25. Model time runs 4x
// slower than real time, so the engines, not the 2 shared cores, set the fleet's capacity: at
// the mocker's own default of 10 a 2,176-token prefill takes 5 ms of model time, the engines
// idle at the machine-bound "capacity", and TTFT is the busy machine's scheduling noise
// (bench/README.md, "Routing quality through real processes: engine-bound or machine-bound").
// The peers get the same settings (Dynamo's mocker: the same timing model and speedup).
const SPEEDUP = 0.25;
const ENGINE: EngineSettings = { workers: 4, pageSize: 16, kvTokens: 262_144, maxRunning: 1024, speedup: SPEEDUP };

const peers: Peers | null | Error = a.peers.includes('dynamo')
  ? await ensurePeers({ cache: defaultCacheDir(), python: 'python3', dynamo: true, say: log }).catch((err: Error) => err)
  : null;
const runner: PointRunner = { engine: ENGINE, repeats: a.repeats, scratch, peers, log };
const servePoints = (systems: string[], load: Load, tag: string, args: string[] = workload, kvTokens = ENGINE.kvTokens) =>
  runPoints(runner, systems, load, tag, args, kvTokens);

const MODES = ['kv', 'round-robin', 'random'];
const RQ = [...MODES, ...a.peers]; // the routing-quality rows
const CONCURRENCY = a.quick ? [4, 16] : [4, 16, 64];
const CAPACITIES = a.quick ? [16_384, 65_536] : [8_192, 16_384, 32_768, 65_536, 131_072];
const FLEETS = a.quick ? [16, 256] : [16, 64, 256, 1_000, 4_000];

// The Mooncake conversation trace: whole conversations (every TRACE_EVERY-th), prompts up to
// 16,384 tokens, outputs capped at 64, replayed closed-loop at TRACE_CONCURRENCY (8 per engine:
// every engine keeps a queue, so each policy runs at its own capacity, round-robin included).
const TRACE_EVERY = a.quick ? 60 : 40;
const TRACE_MAX_INPUT = 16_384;
const TRACE_CONCURRENCY = 32;
const traceLines = sampleConversations(
  readFileSync(MOONCAKE_PATH, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as TraceLine),
  TRACE_EVERY, TRACE_MAX_INPUT,
);
const traceFile = join(scratch, 'mooncake-sample.jsonl');
mkdirSync(scratch, { recursive: true });
writeFileSync(traceFile, traceLines.map((l) => JSON.stringify(l)).join('\n') + '\n');
const traceBest = bestCachedShare(traceLines);
const TRACE = ['--workload', 'trace', '--trace-file', traceFile, '--trace-max-output', '64'];
const traceWhat = `every ${TRACE_EVERY}th conversation of conversation_trace.jsonl (${traceLines.length} requests, prompts up to ${TRACE_MAX_INPUT} tokens, outputs capped at 64; a cache that never evicts would hold ${(100 * traceBest).toFixed(1)}% of the prompt tokens)`;

const load: ServePoint[] = [];
for (const c of CONCURRENCY) load.push(...(await servePoints(MODES, { concurrency: c }, `load-c${c}`)));
const pressure: ServePoint[] = [];
for (const kv of CAPACITIES) pressure.push(...(await servePoints(['kv', 'round-robin'], { concurrency: 16 }, `pressure-${kv}`, workload, kv)));
// Shared prefix at 70% of a capacity, two ways: round-robin's and kv's own requests/s at
// concurrency 64 (the simulator's "70% of capacity" is the oracle's, which kv's approaches).
// The fleet's KV is sized as the issue and llm-d size it: the groups' prompts fill 73% of it.
const SIZED_KV = sizedKv(groups, 2048 + 128, ENGINE);
const capacityPoints = await servePoints(['round-robin', 'kv', 'random'], { concurrency: 64 }, 'capacity', workload, SIZED_KV);
const capacityOf = (m: string) => sp(capacityPoints.find((p) => p.system === m), (r) => r.requestsPerS).median;
const capacity = { 'round-robin': capacityOf('round-robin'), kv: capacityOf('kv'), random: capacityOf('random') };
const ratedRR = await servePoints(RQ, { rate: 0.7 * capacity['round-robin'] }, 'rate70rr', workload, SIZED_KV);
const ratedKV = await servePoints(RQ, { rate: 0.7 * capacity.kv }, 'rate70kv', workload, SIZED_KV);
const trace = await servePoints(RQ, { concurrency: TRACE_CONCURRENCY }, 'trace', TRACE);
await stopAll();
const routing = FLEETS.map((w) => {
  const r = routerCost(w, a.quick ? 2_000 : 10_000);
  log(`router at ${w} workers: route p50 ${r.routeP50Us.toFixed(1)} µs, p99 ${r.routeP99Us.toFixed(1)} µs`);
  return r;
});

// --- the gateway run: kvgate vs Dynamo vs the engine alone under aiperf ---------------------

interface GatewayPoint {
  system: string;
  concurrency: number;
  problems: string[];
  loadAverage?: number;
  result: { requestsPerSecond: number; ttft: { p50: number }; e2e?: { p50: number } } | null;
  // kvgate bench at the same point (bench:gateway runs it right after aiperf)
  suite?: { requestsPerS: number; ttftP50: number; e2eP50: number; failed: number };
  cpuMsPerRequest: Record<string, number> | null;
}
interface GatewayRun {
  dir: string;
  engine: Record<string, unknown>;
  workload: Record<string, unknown>;
  points: GatewayPoint[];
}

function newestGatewayRun(): string | null {
  const runs = join(defaultCacheDir(), 'runs');
  if (!existsSync(runs)) return null;
  const done = readdirSync(runs).filter((d) => existsSync(join(runs, d, 'results.json'))).sort();
  return done.length ? join(runs, done[done.length - 1]!) : null;
}

if (a.gateway) {
  log('running npm run bench:gateway (installs the peers on first use)');
  execFileSync('npm', ['run', 'bench:gateway'], { cwd: ROOT, stdio: 'inherit' });
}
const gatewayDir = a.gatewayRun ?? newestGatewayRun();
const gateway: GatewayRun | null = gatewayDir ? { dir: gatewayDir, ...(JSON.parse(readFileSync(join(gatewayDir, 'results.json'), 'utf8')) as Omit<GatewayRun, 'dir'>) } : null;
if (!gateway) log('no bench:gateway run found: the peer plot is skipped (run with --gateway)');

// --- plots (medians over the repeats) ------------------------------------------------------------

const medianSeries = (ps: ServePoint[], systems: string[], x: (p: ServePoint) => number, f: Metric): Series[] =>
  systems.map((m) => ({ name: m, points: ps.filter((p) => p.system === m && clean(p)).map((p) => [x(p), sp(p, f).median]) }));
const plots: Array<[file: string, svg: string]> = [
  ['ttft_vs_load.svg', lineChart({
    title: 'TTFT p50 vs load, per router mode', xLabel: 'concurrent streams', yLabel: 'TTFT p50 (ms)', logX: true,
    series: medianSeries(load, MODES, (p) => p.concurrency!, ttftP50),
  })],
  ['hit_rate_vs_pressure.svg', lineChart({
    title: 'Cached prompt tokens vs KV capacity per engine', xLabel: 'KV capacity per engine (tokens)', yLabel: 'cached prompt tokens (%)', logX: true,
    series: medianSeries(pressure, ['kv', 'round-robin'], (p) => p.kvTokens, cached),
  })],
  ['routing_latency.svg', lineChart({
    title: 'Routing decision latency vs fleet size',
    xLabel: 'workers', yLabel: 'route() latency (µs)', logX: true,
    series: [
      { name: 'p50', points: routing.map((r) => [r.workers, r.routeP50Us]) },
      { name: 'p99', points: routing.map((r) => [r.workers, r.routeP99Us]) },
    ],
  })],
];
if (gateway) {
  const systems = [...new Set(gateway.points.map((p) => p.system))];
  const series: Series[] = systems.map((s) => ({
    name: s === 'engine' ? 'engine alone' : s,
    points: gateway.points.filter((p) => p.system === s && p.problems.length === 0 && p.result).map((p) => [p.concurrency, p.result!.requestsPerSecond]),
  }));
  plots.push(['throughput_vs_peers.svg', lineChart({ title: 'Requests/s vs concurrency: kvgate, NVIDIA Dynamo, engine alone', xLabel: 'concurrent streams', yLabel: 'requests/s', logX: true, series })]);
}
for (const [file, svg] of plots) writeFileSync(join(outDir, file), svg);

// --- tables -----------------------------------------------------------------------------------

const f1 = (v: number | undefined | null) => (v === undefined || v === null || !Number.isFinite(v) ? '-' : v.toFixed(1));
const benchCmd = `kvgate bench ${workload.join(' ')} --concurrency C`;
const runsNote = a.repeats > 1 ? `median of ${a.repeats} runs (min-max)` : 'one run';

function serveTable(points: ServePoint[], key: (p: ServePoint) => string): string[] {
  const cell = (p: ServePoint, f: Metric, suffix = '') => formatSpread(sp(p, f), 1, suffix);
  return [
    `| point | api | req/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | cached | failed | load avg |`,
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
    ...points.map((p) =>
      p.problem
        ? `| ${key(p)} | - | no result: ${p.problem.replace(/\|/g, '/')} ||||||||`
        : `| ${key(p)} | ${p.api} | ${cell(p, (r) => r.requestsPerS)} | ${cell(p, ttftP50)} | ${cell(p, (r) => r.ttftMs?.p99)} | ${cell(p, (r) => r.itlMs?.p50)} | ${p.runs.some((r) => r.cachedTokenShare !== null) ? cell(p, cached, '%') : 'not reported'} | ${p.runs.reduce((n, r) => n + r.requests.failed, 0)} | ${formatSpread(spread(p.loadAverage))} |`,
    ),
  ];
}

const ratio = (x: number | undefined, y: number | undefined) => (x && y && Number.isFinite(x / y) ? (x / y).toFixed(2) + 'x' : '-');
const pctOf = (p: ServePoint | undefined) => (p && p.runs.some((r) => r.cachedTokenShare !== null) ? `${f1(med(p, cached))}%` : 'n/r');
// One routing-quality point in one summary row: kv against round-robin, then every row's
// TTFT p50 and cached share.
const rqRow = (what: string, ps: ServePoint[]) => {
  const kv = at(ps, 'kv');
  const rr = at(ps, 'round-robin');
  const all = ps.map((p) => (clean(p) ? `${p.system} ${f1(med(p, ttftP50))} ms / ${pctOf(p)}` : `${p.system} ${p.problem ? 'no result' : 'failed requests'}`)).join('; ');
  return `| ${what}: TTFT p50 / cached prompt tokens | kv / round-robin TTFT **${ratio(med(kv, ttftP50), med(rr, ttftP50))}**; ${all} | \`npm run bench:report\` |`;
};
const rateRR = 0.7 * capacity['round-robin'];
const rateKV = 0.7 * capacity.kv;
const summary: string[] = [
  '| measure | result | command |',
  '|---|---|---|',
  ...CONCURRENCY.map((c) => {
    const kv = at(load, 'kv', (p) => p.concurrency === c);
    const rr = at(load, 'round-robin', (p) => p.concurrency === c);
    return `| TTFT p50, ${ENGINE.workers} mocker workers, shared prefix, concurrency ${c}: kv / round-robin | ${f1(med(kv, ttftP50))} / ${f1(med(rr, ttftP50))} ms (**${ratio(med(kv, ttftP50), med(rr, ttftP50))}**) | \`npm run bench:report\` |`;
  }),
  ...CAPACITIES.map((kvTokens) => `| cached prompt tokens at ${kvTokens} KV tokens per engine: kv / round-robin | ${pctOf(at(pressure, 'kv', (p) => p.kvTokens === kvTokens))} / ${pctOf(at(pressure, 'round-robin', (p) => p.kvTokens === kvTokens))} | \`npm run bench:report\` |`),
  `| capacity (requests/s at concurrency 64, ${SIZED_KV} KV tokens per engine: the prompts fill 73% of the fleet's KV): round-robin / random / kv | ${f1(capacity['round-robin'])} / ${f1(capacity.random)} / ${f1(capacity.kv)} (kv / random **${ratio(capacity.kv, capacity.random)}**) | \`npm run bench:report\` |`,
  rqRow(`shared prefix at 70% of round-robin's capacity (${f1(rateRR)} req/s)`, ratedRR),
  rqRow(`shared prefix at 70% of kv's capacity (${f1(rateKV)} req/s)`, ratedKV),
  rqRow(`Mooncake conversations, concurrency ${TRACE_CONCURRENCY}`, trace),
  ...routing.map((r) => `| routing decision, ${r.workers} workers (in process) | p50 ${f1(r.routeP50Us)} µs, p99 ${f1(r.routeP99Us)} µs | \`npm run bench:report\` |`),
];
if (gateway) {
  const byC = new Map<number, Map<string, GatewayPoint>>();
  for (const p of gateway.points) {
    if (!byC.has(p.concurrency)) byC.set(p.concurrency, new Map());
    byC.get(p.concurrency)!.set(p.system, p);
  }
  for (const [c, m] of [...byC].sort((x, y) => x[0] - y[0])) {
    const k = m.get('kvgate');
    const d = m.get('dynamo');
    const ok = k && d && k.problems.length === 0 && d.problems.length === 0 && k.result && d.result;
    const suite = k?.suite && d?.suite ? `; kvgate bench: ${f1(k.suite.requestsPerS)} / ${f1(d.suite.requestsPerS)} (**${ratio(k.suite.requestsPerS, d.suite.requestsPerS)}**)` : '';
    summary.push(`| requests/s under aiperf, concurrency ${c}: kvgate / Dynamo | ${ok ? `${f1(k.result!.requestsPerSecond)} / ${f1(d.result!.requestsPerSecond)} (**${ratio(k.result!.requestsPerSecond, d.result!.requestsPerSecond)}**)${suite}` : 'a point had errors: see the run'} | \`npm run bench:gateway\` (run ${relative(defaultCacheDir(), gateway.dir)}) |`);
  }
}

const peerNote = [
  `The routing-quality points put kvgate's router modes (\`kvgate serve --workers ${ENGINE.workers} --router-mode MODE\`) beside ${a.peers.length ? a.peers.join(', ') : 'no peers (--peers \'\')'} over the same kind of fleet: ${ENGINE.workers} engines, page ${ENGINE.pageSize}, ${ENGINE.kvTokens} KV tokens and ${ENGINE.maxRunning} running requests each, speedup ${SPEEDUP}.`,
  'sglang-router and smg run `cache_aware` in front of standalone `kvgate mocker` servers and take the token ids on SGLang\'s /generate (`--api sglang-generate`; their completions route takes text only); NVIDIA Dynamo runs its KV-routing frontend (`--router-mode kv`) over its own mockers (the same timing model at the same `--speedup-ratio`, so the same model time) and takes them as a completions prompt, as kvgate does.',
  'Dynamo does not report `usage.prompt_tokens_details.cached_tokens`, so its cached share is "not reported" (n/r); its TTFT and throughput stand.',
].join(' ');

const report = [
  `# kvgate benchmark report, ${date}`,
  '',
  `Machine: ${machine}; load average ${load0.toFixed(1)} at start, ${loadavg()[0]!.toFixed(1)} at end (the machine is shared: each table has the load average at the end of each run). kvgate at \`${commit}\`. Command: \`${command}\`. Each serving cell is the ${runsNote}; plots show medians.`,
  `Serving points: \`kvgate serve --workers ${ENGINE.workers} --router-mode MODE -- --page-size ${ENGINE.pageSize} --max-total-tokens N --max-running-requests ${ENGINE.maxRunning} --speedup-ratio ${SPEEDUP}\` (mocker engines, model time ${1 / SPEEDUP}x real time so the engines and not the machine set the capacity) driven by \`${benchCmd}\`, one process set per run.`,
  '',
  '## Summary',
  '',
  ...summary,
  '',
  '## TTFT vs load per router mode',
  '',
  '![ttft](ttft_vs_load.svg)',
  '',
  ...serveTable(load, (p) => `${p.system}, c${p.concurrency}`),
  '',
  '## Cache hit rate vs cache pressure (concurrency 16)',
  '',
  '![hit rate](hit_rate_vs_pressure.svg)',
  '',
  ...serveTable(pressure, (p) => `${p.system}, ${p.kvTokens} KV tokens`),
  '',
  '## Routing quality through real processes, beside the peers',
  '',
  peerNote,
  '',
  `Two capacities, both measured as requests/s at concurrency 64 on the same workload, with ${SIZED_KV} KV tokens per engine so that the groups' prompts fill 73% of the fleet's KV (llm-d's sizing, the simulator's): round-robin's, and kv's own (random's beside them: the issue's throughput ratio).` + ' The simulator (`npm run sim`) sets its load at 70% of the oracle\'s capacity; kv\'s own is the closest real-process stand-in for it, round-robin\'s is the lower and easier load.',
  '',
  ...serveTable(capacityPoints, (p) => `capacity: ${p.system}, c64`),
  '',
  `### Shared prefix at 70% of round-robin's capacity (${f1(rateRR)} req/s, Poisson)`,
  '',
  ...serveTable(ratedRR, (p) => p.system),
  '',
  `### Shared prefix at 70% of kv's capacity (${f1(rateKV)} req/s, Poisson)`,
  '',
  ...serveTable(ratedKV, (p) => p.system),
  '',
  `### The Mooncake conversation trace, concurrency ${TRACE_CONCURRENCY}`,
  '',
  `${traceWhat}, closed loop at concurrency ${TRACE_CONCURRENCY} (8 per engine: every engine keeps a queue, so every row runs at its own capacity and round-robin is saturated). Sampling whole conversations keeps their reuse; the first 150 requests of the trace, which this point replayed before, share 5% of their tokens. \`kvgate bench ${TRACE.join(' ').replace(traceFile, 'SAMPLE.jsonl')}\`.`,
  '',
  ...serveTable(trace, (p) => p.system),
  '',
  '## Routing latency vs workers (the native router, one core, in process)',
  '',
  '![routing](routing_latency.svg)',
  '',
  '| workers | index (block, worker) pairs | find p50 µs | find p99 µs | route p50 µs | route p99 µs | decisions/s |',
  '|---:|---:|---:|---:|---:|---:|---:|',
  ...routing.map((r) => `| ${r.workers} | ${r.indexPairs} | ${f1(r.findP50Us)} | ${f1(r.findP99Us)} | ${f1(r.routeP50Us)} | ${f1(r.routeP99Us)} | ${Math.round(r.decisionsPerSec)} |`),
  '',
  ...(gateway
    ? [
        '## Throughput vs peers (kvgate, NVIDIA Dynamo 1.6.1, the engine alone; aiperf 0.13.0 and kvgate bench)',
        '',
        '![peers](throughput_vs_peers.svg)',
        '',
        `From the bench:gateway run in \`${gateway.dir}\` (its report.md has every point); engine settings ${JSON.stringify(gateway.engine)}, workload ${JSON.stringify(gateway.workload)}. Where the run has them, the kvgate bench columns are the suite's own client at the same point, on the same process set right after aiperf.`,
        '',
        '| system | concurrency | req/s aiperf / kvgate bench | TTFT p50 ms aiperf / kvgate bench | E2E p50 ms aiperf / kvgate bench | CPU ms/request by role (aiperf) | problems | load avg |',
        '|---|---:|---:|---:|---:|---|---|---:|',
        ...gateway.points.map((p) => `| ${p.system} | ${p.concurrency} | ${f1(p.result?.requestsPerSecond)} / ${f1(p.suite?.requestsPerS)} | ${f1(p.result?.ttft.p50)} / ${f1(p.suite?.ttftP50)} | ${f1(p.result?.e2e?.p50)} / ${f1(p.suite?.e2eP50)} | ${p.cpuMsPerRequest ? Object.entries(p.cpuMsPerRequest).map(([r, v]) => `${r} ${v.toFixed(2)}`).join(', ') : '-'} | ${p.problems.join('; ') || '-'} | ${f1(p.loadAverage)} |`),
        '',
      ]
    : []),
].join('\n');
writeFileSync(join(outDir, 'report.md'), report);
writeFileSync(join(outDir, 'results.json'), JSON.stringify({ date, machine, commit, repeats: a.repeats, engine: ENGINE, workload, load, pressure, capacity, capacityPoints, ratedRR, ratedKV, trace: { what: traceWhat, bestCachedShare: traceBest, points: trace }, routing, gateway }, null, 1));

// --- the READMEs --------------------------------------------------------------------------------

function replaceBetween(file: string, start: string, end: string, body: string): void {
  const text = readFileSync(file, 'utf8');
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  if (i < 0 || j < i) throw new Error(`${relative(ROOT, file)} has no '${start}' ... '${end}' markers`);
  writeFileSync(file, text.slice(0, i + start.length) + '\n' + body + '\n' + text.slice(j));
}
if (!a.out) {
  const rel = relative(join(ROOT, 'bench'), outDir);
  replaceBetween(join(ROOT, 'bench', 'README.md'), '<!-- bench:report summary -->', '<!-- /bench:report summary -->',
    [`From \`${command}\` on ${date} (${machine}, kvgate \`${commit}\`); plots and every point in [${rel}/report.md](${rel}/report.md).`, '', ...summary].join('\n'));
  const headline = gateway ? 'throughput_vs_peers.svg' : 'ttft_vs_load.svg';
  replaceBetween(join(ROOT, 'README.md'), '<!-- bench:report headline -->', '<!-- /bench:report headline -->',
    `![${headline.replace('.svg', '').replace(/_/g, ' ')}](${relative(ROOT, join(outDir, headline))})`);
}
log(`wrote ${outDir}`);
