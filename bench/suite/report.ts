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
// and the routing-quality points on real processes, per router mode: the shared-prefix workload
// at 70% of the fleet's capacity (Poisson arrivals) and the Mooncake trace closed-loop at a
// concurrency that saturates round-robin.
//
// It then rewrites the summary between the `bench:report` markers in bench/README.md and the
// headline plot link in README.md.
//
//   npm run bench:report -- [--quick] [--gateway] [--gateway-run DIR] [--out DIR]

import { execFileSync } from 'node:child_process';
import { cpus, loadavg, tmpdir } from 'node:os';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Results } from '../../src/bench/stats.js';
import { routerCost } from '../sim/router_cost.js';
import { defaultCacheDir } from '../gateway/peers.js';
import { kvgateBench, startServe } from './procs.js';
import { lineChart, type Series } from './svg_chart.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const { values: a } = parseArgs({
  args: process.argv.slice(2),
  options: {
    quick: { type: 'boolean', default: false },
    gateway: { type: 'boolean', default: false },
    'gateway-run': { type: 'string' },
    out: { type: 'string' },
  },
});

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

// The shared-prefix workload every serving point uses (SGLang's generated-shared-prefix, scaled
// to run in seconds per point on the mocker).
const WORKERS = 4;
const groups = a.quick ? 8 : 16;
const workload = ['--workload', 'shared-prefix', '--gsp-num-groups', String(groups), '--gsp-prompts-per-group', '8', '--gsp-system-prompt-len', '2048', '--gsp-question-len', '128', '--gsp-output-len', '64'];

// The mockers' speedup ratio at the shared-prefix points. Model time runs 4x slower than real
// time, so the engines, not the 2 shared cores, set the fleet's capacity: at the mocker's own
// default of 10 a 2,176-token prefill takes 5 ms of model time, the engines idle at the
// machine-bound "capacity", and TTFT is the busy machine's scheduling noise (bench/README.md,
// "Routing quality through real processes: engine-bound or machine-bound").
const SPEEDUP = 0.25;

interface ServePoint {
  mode: string;
  speedup: number | null; // the mockers' --speedup-ratio; null: kvgate serve's default (10)
  concurrency: number | null; // closed loop; null: open loop at `rate`
  rate: number | null;
  kvTokens: number | null;
  loadAverage: number;
  result: Results;
}

type Load = { concurrency: number } | { rate: number };

// One point: a fresh `kvgate serve` (router mode, optional KV capacity per engine) and one
// `kvgate bench` run against it.
async function servePoint(mode: string, load: Load, kvTokens: number | null, tag: string, args: string[] = workload, speedup: number | null = SPEEDUP): Promise<ServePoint> {
  const engine = [...(kvTokens === null ? [] : ['--max-total-tokens', String(kvTokens)]), ...(speedup === null ? [] : ['--speedup-ratio', String(speedup)])];
  const serve = await startServe(['--workers', String(WORKERS), '--router-mode', mode, ...(engine.length ? ['--', ...engine] : [])]);
  try {
    const drive = 'concurrency' in load ? ['--concurrency', String(load.concurrency)] : ['--rate', load.rate.toFixed(2)];
    const result = await kvgateBench(['--url', serve.url, ...args, ...drive], join(scratch, tag));
    const p: ServePoint = { mode, speedup, concurrency: 'concurrency' in load ? load.concurrency : null, rate: 'rate' in load ? load.rate : null, kvTokens, loadAverage: loadavg()[0]!, result };
    log(`${tag}: ${result.requestsPerS.toFixed(1)} req/s, TTFT p50 ${result.ttftMs?.p50.toFixed(1)} ms, cached ${(100 * (result.cachedTokenShare ?? NaN)).toFixed(1)}%, failed ${result.requests.failed}`);
    return p;
  } finally {
    await serve.stop();
  }
}

// A point with failed requests is shown as such and left out of the plots.
const clean = (p: ServePoint) => p.result.requests.failed === 0;

const MODES = ['kv', 'round-robin', 'random'];
const CONCURRENCY = a.quick ? [4, 16] : [4, 16, 64];
const CAPACITIES = a.quick ? [16_384, 65_536] : [8_192, 16_384, 32_768, 65_536, 131_072];
const FLEETS = a.quick ? [16, 256] : [16, 64, 256, 1_000, 4_000];
// The Mooncake conversation trace, closed loop at a concurrency that saturates round-robin;
// prompts over the mocker's 40,960-token context are skipped, outputs capped to keep a point short.
const TRACE = ['--workload', 'trace', '--requests', a.quick ? '150' : '400', '--trace-max-input', '32768', '--trace-max-output', '128'];
const TRACE_CONCURRENCY = 32;

const load: ServePoint[] = [];
for (const c of CONCURRENCY) for (const m of MODES) load.push(await servePoint(m, { concurrency: c }, null, `load-${m}-c${c}`));
const pressure: ServePoint[] = [];
for (const kv of CAPACITIES) for (const m of ['kv', 'round-robin']) pressure.push(await servePoint(m, { concurrency: 16 }, kv, `pressure-${m}-${kv}`));
// Shared prefix at about 70% of the fleet's capacity (round-robin's requests/s at concurrency 64).
const capacity = (await servePoint('round-robin', { concurrency: 64 }, null, 'capacity')).result.requestsPerS;
const rated: ServePoint[] = [];
for (const m of MODES) rated.push(await servePoint(m, { rate: 0.7 * capacity }, null, `rate70-${m}`));
const trace: ServePoint[] = [];
for (const m of MODES) trace.push(await servePoint(m, { concurrency: TRACE_CONCURRENCY }, null, `trace-${m}`, TRACE, null));
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
  loadAverage: number;
  result: { requestsPerSecond: number; ttft: { p50: number } } | null;
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
const gatewayDir = a['gateway-run'] ?? newestGatewayRun();
const gateway: GatewayRun | null = gatewayDir ? { dir: gatewayDir, ...(JSON.parse(readFileSync(join(gatewayDir, 'results.json'), 'utf8')) as Omit<GatewayRun, 'dir'>) } : null;
if (!gateway) log('no bench:gateway run found: the peer plot is skipped (run with --gateway)');

// --- plots ------------------------------------------------------------------------------------

const plots: Array<[file: string, svg: string]> = [
  ['ttft_vs_load.svg', lineChart({
    title: 'TTFT p50 vs load, per router mode',
    xLabel: 'concurrent streams', yLabel: 'TTFT p50 (ms)', logX: true,
    series: MODES.map((m) => ({ name: m, points: load.filter((p) => p.mode === m && clean(p)).map((p) => [p.concurrency!, p.result.ttftMs?.p50 ?? NaN]) })),
  })],
  ['hit_rate_vs_pressure.svg', lineChart({
    title: 'Cached prompt tokens vs KV capacity per engine',
    xLabel: 'KV capacity per engine (tokens)', yLabel: 'cached prompt tokens (%)', logX: true,
    series: ['kv', 'round-robin'].map((m) => ({ name: m, points: pressure.filter((p) => p.mode === m && clean(p)).map((p) => [p.kvTokens!, 100 * (p.result.cachedTokenShare ?? NaN)]) })),
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
const pct = (v: number | null) => (v === null ? '-' : `${(100 * v).toFixed(1)}%`);
const benchCmd = `kvgate bench ${workload.join(' ')} --concurrency C`;

function serveTable(points: ServePoint[], key: (p: ServePoint) => string): string[] {
  return [
    '| point | req/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | cached | failed | load avg |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...points.map((p) => `| ${key(p)} | ${f1(p.result.requestsPerS)} | ${f1(p.result.ttftMs?.p50)} | ${f1(p.result.ttftMs?.p99)} | ${f1(p.result.itlMs?.p50)} | ${pct(p.result.cachedTokenShare)} | ${p.result.requests.failed} | ${p.loadAverage.toFixed(1)} |`),
  ];
}

// kv against the best other mode at each concurrency, and against round-robin at each capacity.
const ratio = (x: number | undefined, y: number | undefined) => (x && y ? (x / y).toFixed(2) + 'x' : '-');
const at = (ps: ServePoint[], m: string, pred: (p: ServePoint) => boolean) => ps.find((p) => p.mode === m && pred(p) && clean(p));
const summary: string[] = [
  '| measure | result | command |',
  '|---|---|---|',
  ...CONCURRENCY.map((c) => {
    const kv = at(load, 'kv', (p) => p.concurrency === c);
    const rr = at(load, 'round-robin', (p) => p.concurrency === c);
    return `| TTFT p50, ${WORKERS} mocker workers, shared prefix, concurrency ${c}: kv / round-robin | ${f1(kv?.result.ttftMs?.p50)} / ${f1(rr?.result.ttftMs?.p50)} ms (**${ratio(kv?.result.ttftMs?.p50, rr?.result.ttftMs?.p50)}**) | \`npm run bench:report\` |`;
  }),
  ...CAPACITIES.map((kvTokens) => {
    const kv = at(pressure, 'kv', (p) => p.kvTokens === kvTokens);
    const rr = at(pressure, 'round-robin', (p) => p.kvTokens === kvTokens);
    return `| cached prompt tokens at ${kvTokens} KV tokens per engine: kv / round-robin | ${pct(kv?.result.cachedTokenShare ?? null)} / ${pct(rr?.result.cachedTokenShare ?? null)} | \`npm run bench:report\` |`;
  }),
  ...[['shared prefix at 70% of capacity', rated], [`Mooncake trace, concurrency ${TRACE_CONCURRENCY}`, trace]].map(([what, ps]) => {
    const kv = at(ps as ServePoint[], 'kv', () => true);
    const rr = at(ps as ServePoint[], 'round-robin', () => true);
    return `| ${String(what)}: TTFT p50 and cached prompt tokens, kv / round-robin | ${f1(kv?.result.ttftMs?.p50)} / ${f1(rr?.result.ttftMs?.p50)} ms (**${ratio(kv?.result.ttftMs?.p50, rr?.result.ttftMs?.p50)}**); ${pct(kv?.result.cachedTokenShare ?? null)} / ${pct(rr?.result.cachedTokenShare ?? null)} | \`npm run bench:report\` |`;
  }),
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
    summary.push(`| requests/s under aiperf, concurrency ${c}: kvgate / Dynamo | ${ok ? `${f1(k.result!.requestsPerSecond)} / ${f1(d.result!.requestsPerSecond)} (**${ratio(k.result!.requestsPerSecond, d.result!.requestsPerSecond)}**)` : 'a point had errors: see the run'} | \`npm run bench:gateway\` (run ${relative(defaultCacheDir(), gateway.dir)}) |`);
  }
}

const report = [
  `# kvgate benchmark report, ${date}`,
  '',
  `Machine: ${machine}; load average at start ${loadavg()[0]!.toFixed(1)}. kvgate at \`${commit}\`. Command: \`${command}\`.`,
  `Serving points: \`kvgate serve --workers ${WORKERS} --router-mode MODE -- --speedup-ratio ${SPEEDUP} [--max-total-tokens N]\` (mocker engines, model time ${1 / SPEEDUP}x real time so the engines and not the machine set the capacity; the Mooncake trace points at the mocker's default speedup 10) driven by \`${benchCmd}\`, one process set per point.`,
  '',
  '## Summary',
  '',
  ...summary,
  '',
  '## TTFT vs load per router mode',
  '',
  '![ttft](ttft_vs_load.svg)',
  '',
  ...serveTable(load, (p) => `${p.mode}, c${p.concurrency}`),
  '',
  '## Cache hit rate vs cache pressure (concurrency 16)',
  '',
  '![hit rate](hit_rate_vs_pressure.svg)',
  '',
  ...serveTable(pressure, (p) => `${p.mode}, ${p.kvTokens} KV tokens`),
  '',
  `## Routing quality: shared prefix at 70% of capacity (${(0.7 * capacity).toFixed(1)} req/s, Poisson; capacity = round-robin at concurrency 64, ${capacity.toFixed(1)} req/s)`,
  '',
  ...serveTable(rated, (p) => p.mode),
  '',
  `## Routing quality: the Mooncake conversation trace, concurrency ${TRACE_CONCURRENCY} (\`kvgate bench ${TRACE.join(' ')}\`)`,
  '',
  ...serveTable(trace, (p) => p.mode),
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
        '## Throughput vs peers (kvgate, NVIDIA Dynamo 1.6.1, the engine alone; aiperf 0.13.0)',
        '',
        '![peers](throughput_vs_peers.svg)',
        '',
        `From the bench:gateway run in \`${gateway.dir}\` (its report.md has every point); engine settings ${JSON.stringify(gateway.engine)}, workload ${JSON.stringify(gateway.workload)}.`,
        '',
        '| system | concurrency | req/s | TTFT p50 ms | CPU ms/request by role | problems | load avg |',
        '|---|---:|---:|---:|---|---|---:|',
        ...gateway.points.map((p) => `| ${p.system} | ${p.concurrency} | ${f1(p.result?.requestsPerSecond)} | ${f1(p.result?.ttft.p50)} | ${p.cpuMsPerRequest ? Object.entries(p.cpuMsPerRequest).map(([r, v]) => `${r} ${v.toFixed(2)}`).join(', ') : '-'} | ${p.problems.join('; ') || '-'} | ${p.loadAverage.toFixed(1)} |`),
        '',
      ]
    : []),
].join('\n');
writeFileSync(join(outDir, 'report.md'), report);
writeFileSync(join(outDir, 'results.json'), JSON.stringify({ date, machine, commit, workload, load, pressure, capacity, rated, trace, routing, gateway }, null, 1));

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
