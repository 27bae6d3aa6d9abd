// bench:gateway: kvgate against NVIDIA Dynamo 1.6.1 and the engine alone, side by side in one
// invocation, each driven by NVIDIA's aiperf at several concurrencies (streaming chat, fixed
// prompt/output lengths, ignore_eos). Per point: requests/s, TTFT, ITL and end-to-end latency
// (p50/p99), errors, and CPU ms per request of each process role from /proc. Then the suite's own
// client, `kvgate bench`, runs the same point (same process set, concurrency, request count and
// prompt/output lengths), so its numbers stand beside aiperf's (--no-suite leaves it out).
// Prints markdown tables (per point, kvgate/Dynamo ratios, the two clients side by side) and
// keeps everything under the run folder.
//
//   npm run bench:gateway -- [--concurrency 1,16,64,256] [--requests N] [--only kvgate,dynamo,engine]
//                            [--speedup 10] [--workers 4] [--isl 512] [--osl 64] [--cache DIR]
//                            [--python python3] [--point-timeout 600] [--no-suite]
//
// The peers are installed from PyPI on first use into the cache folder (~/.cache/kvgate-bench).

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runAiperf, type AiperfResult, type Workload } from './aiperf.js';
import { AIPERF_VERSION, DYNAMO_VERSION, defaultCacheDir, ensurePeers, type Peers } from './peers.js';
import { kvgateBench } from '../suite/procs.js';
import { CpuSampler, isShuttingDown, killAllNow, shutdown, stopAll } from './procs.js';
import { formatReport, type Point } from './report.js';
import { startSystem, SYSTEMS, type EngineSettings, type RunningSystem, type SystemName } from './systems.js';

// Requests per point by concurrency when --requests is not given: enough for stable p50s and a
// few seconds of steady state at each point, a full run (3 systems x 4 points) in ~15 minutes.
const DEFAULT_REQUESTS: Record<number, number> = { 1: 100, 16: 400, 64: 600, 256: 1000 };
const defaultRequests = (c: number) => DEFAULT_REQUESTS[c] ?? Math.max(100, 6 * c);
// Chat template tokens Qwen3 wraps one user message in (<|im_start|>user\n ... <|im_end|>\n
// <|im_start|>assistant\n): the engine alone gets prompts of the same length as through a gateway.
const CHAT_TEMPLATE_TOKENS = 8;

const { values: flags } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '1,16,64,256' },
    requests: { type: 'string' },
    only: { type: 'string', default: SYSTEMS.join(',') },
    speedup: { type: 'string', default: '10' },
    workers: { type: 'string', default: '4' },
    isl: { type: 'string', default: '512' },
    osl: { type: 'string', default: '64' },
    cache: { type: 'string', default: defaultCacheDir() },
    python: { type: 'string', default: 'python3' },
    'point-timeout': { type: 'string', default: '600' },
    'no-suite': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

function usage(problem?: string): never {
  if (problem) console.error(`bench:gateway: ${problem}`);
  console.error('usage: npm run bench:gateway -- [--concurrency 1,16,64,256] [--requests N] [--only kvgate,dynamo,engine] [--speedup 10] [--workers 4] [--isl 512] [--osl 64] [--cache DIR] [--python python3] [--point-timeout SECONDS]');
  process.exit(problem ? 2 : 0);
}
if (flags.help) usage();
const positiveInt = (name: string, v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) usage(`--${name} wants a positive integer, got '${v}'`);
  return n;
};
const concurrencies = flags.concurrency.split(',').map((c) => positiveInt('concurrency', c));
const only = flags.only.split(',').map((s) => s.trim());
for (const s of only) if (!SYSTEMS.includes(s as SystemName)) usage(`--only: unknown system '${s}' (choose from ${SYSTEMS.join(', ')})`);
const systems = SYSTEMS.filter((s) => only.includes(s));
const speedup = Number(flags.speedup);
if (!(speedup > 0)) usage(`--speedup wants a positive number, got '${flags.speedup}'`);
const engine: EngineSettings = { workers: positiveInt('workers', flags.workers), pageSize: 16, kvTokens: 262_144, maxRunning: 256, speedup };
const workload: Workload = { isl: positiveInt('isl', flags.isl), osl: positiveInt('osl', flags.osl) };
const requestsFor = (c: number) => (flags.requests ? positiveInt('requests', flags.requests) : defaultRequests(c));
const pointTimeoutMs = positiveInt('point-timeout', flags['point-timeout']) * 1000;

const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const runDir = join(flags.cache, 'runs', stamp);
mkdirSync(runDir, { recursive: true });
const say = (s: string) => console.error(`[bench:gateway] ${s}`);

// Every process the bench started goes when the bench goes, however it goes.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (isShuttingDown()) return;
    shutdown();
    say(`${sig}: stopping every process the bench started ...`);
    void stopAll(3000).finally(() => process.exit(130));
  });
}
process.on('exit', killAllNow);

async function measure(sys: RunningSystem, sampler: CpuSampler, c: number, peers: Peers): Promise<Point> {
  const requests = requestsFor(c);
  const warmup = Math.min(requests, Math.max(c, 10));
  const point: Point = { system: sys.name, concurrency: c, requests, problems: [] };
  const tokensBefore = await sys.generatedTokens();
  let r: AiperfResult;
  try {
    r = await runAiperf({
      aiperf: peers.aiperf,
      modelDir: peers.modelDir,
      url: sys.url,
      concurrency: c,
      requests,
      warmup,
      workload,
      outDir: join(runDir, `c${c}`, sys.name, 'aiperf'),
      timeoutMs: pointTimeoutMs,
      generate: sys.generate ? { promptIds: workload.isl + CHAT_TEMPLATE_TOKENS } : undefined,
    });
  } catch (err) {
    point.problems.push(`aiperf: ${(err as Error).message.split('\n')[0]}`);
    say((err as Error).message);
    return point;
  }
  const tokensAfter = await sys.generatedTokens();
  sampler.sample();
  const cpu = sampler.window(r.startMs, r.endMs);
  point.result = r;
  point.loadAverage = loadavg()[0];
  point.cpuMsPerRequest = Object.fromEntries(Object.entries(cpu.ms).map(([role, ms]) => [role, ms / Math.max(1, r.completed)]));

  // The point's own standard: any error, missing request or wrong output length is reported
  // as such and the point is left out of every ratio.
  if (r.errors > 0 || r.errorSummary.length > 0) point.problems.push(`${r.errors} errors: ${r.errorSummary.join('; ')}`);
  if (r.completed !== requests) point.problems.push(`${r.completed} of ${requests} requests completed`);
  if (cpu.changed.length > 0) point.problems.push(`processes started or exited during the point: ${cpu.changed.join(', ')}`);
  const dead = sys.procs.filter((p) => p.done);
  if (dead.length > 0) point.problems.push(`exited: ${dead.map((p) => p.name).join(', ')}`);
  if (sys.generate) {
    // aiperf re-tokenizes the streamed text, so its count can differ from the engine's; the
    // engine's own counter is the check, and ITL is rescaled from aiperf's count to the real one
    // (ITL = (e2e - TTFT) / (tokens - 1), the same token count for every request).
    const generated = tokensBefore !== null && tokensAfter !== null ? tokensAfter - tokensBefore : NaN;
    const expected = workload.osl * (requests + warmup);
    if (generated !== expected) point.problems.push(`engine generated ${generated} tokens, expected ${expected}`);
    if (r.osl.min !== r.osl.max) point.problems.push(`aiperf counted ${r.osl.min}-${r.osl.max} output tokens per request: ITL not comparable`);
    else {
      const k = (r.osl.min - 1) / (workload.osl - 1);
      r.itl = { p50: r.itl.p50 * k, p99: r.itl.p99 * k };
      r.osl = { min: workload.osl, max: workload.osl };
    }
  } else if (r.osl.min !== workload.osl || r.osl.max !== workload.osl) {
    point.problems.push(`output tokens per request ${r.osl.min}-${r.osl.max}, expected ${workload.osl}`);
  }
  if (!flags['no-suite']) point.suite = await suitePoint(sys, c, requests, warmup);
  return point;
}

// kvgate bench at the point aiperf just ran: the same number of random prompts of the same length
// (chat text of one word per token through a gateway; token ids, with the chat template's
// tokens, on the engine's /generate), the same output length with ignore_eos.
async function suitePoint(sys: RunningSystem, c: number, requests: number, warmup: number): Promise<Point['suite']> {
  const api = sys.generate ? ['--api', 'sglang-generate', '--prompt-format', 'tokens'] : ['--api', 'openai-chat', '--prompt-format', 'text'];
  const isl = workload.isl + (sys.generate ? CHAT_TEMPLATE_TOKENS : 0);
  const shape = ['--workload', 'shared-prefix', '--gsp-num-groups', String(requests + warmup), '--gsp-prompts-per-group', '1', '--gsp-system-prompt-len', '0', '--gsp-question-len', String(isl), '--gsp-output-len', String(workload.osl)];
  try {
    const r = await kvgateBench(['--url', sys.url, ...api, ...shape, '--concurrency', String(c), '--warmup', String(warmup), '--requests', String(requests)], join(runDir, `c${c}`, sys.name, 'kvgate-bench'));
    return { requestsPerS: r.requestsPerS, ttftP50: r.ttftMs?.p50 ?? NaN, e2eP50: r.e2eMs?.p50 ?? NaN, failed: r.requests.failed };
  } catch (err) {
    say(`${sys.name} c=${c}: kvgate bench failed: ${(err as Error).message.split('\n')[0]}`);
    return { requestsPerS: NaN, ttftP50: NaN, e2eP50: NaN, failed: requests };
  }
}

async function point(name: SystemName, c: number, peers: Peers): Promise<Point> {
  let sys: RunningSystem;
  try {
    sys = await startSystem(name, peers, engine, join(runDir, `c${c}`), say);
  } catch (err) {
    const lines = (err as Error).message.split('\n');
    say(`${name} did not start: ${lines.join('\n')}`);
    // The table gets the headline and the log's last line (usually the reason).
    const reason = lines.length > 1 ? `${lines[0]} ${lines.at(-1)}` : lines[0];
    return { system: name, concurrency: c, requests: requestsFor(c), problems: [`did not start: ${reason}`] };
  }
  const sampler = new CpuSampler(sys.procs.map((p) => p.pid), sys.classify);
  sampler.start();
  try {
    return await measure(sys, sampler, c, peers);
  } finally {
    sampler.stop();
    await sys.stop();
  }
}

async function main(): Promise<void> {
  const load0 = loadavg();
  say(`run folder ${runDir}`);
  const peers = await ensurePeers({ cache: flags.cache, python: flags.python, dynamo: systems.includes('dynamo'), say });
  const points: Point[] = [];
  // Systems take turns at each concurrency, each started fresh for its point: the machine's
  // load drifts (other work shares it), and side-by-side points should share the same moment.
  for (const c of concurrencies) {
    for (const name of systems) {
      if (isShuttingDown()) break;
      say(`${name}: concurrency ${c}, ${requestsFor(c)} requests ...`);
      const p = await point(name, c, peers);
      points.push(p);
      const r = p.result;
      say(`${name} c=${c}: ${r ? `${r.requestsPerSecond.toFixed(1)} req/s, TTFT p50 ${r.ttft.p50.toFixed(2)} ms` : 'no result'}${p.problems.length ? ` [${p.problems.join('; ')}]` : ''}`);
    }
  }
  const report = formatReport(points, {
    command: `npm run bench:gateway -- ${process.argv.slice(2).join(' ')}`.trim(),
    machine: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, Node ${process.version}, load average ${load0[0]!.toFixed(1)} at start / ${loadavg()[0]!.toFixed(1)} at end`,
    peers: `Dynamo ${DYNAMO_VERSION} (ai-dynamo + ai-dynamo-runtime), aiperf ${AIPERF_VERSION}`,
    settings: `${engine.workers} workers, page ${engine.pageSize}, ${engine.kvTokens} KV tokens, ${engine.maxRunning} running requests, speedup ${engine.speedup}; streaming chat, ${workload.isl} prompt / ${workload.osl} output tokens, ignore_eos`,
  });
  writeFileSync(join(runDir, 'results.json'), JSON.stringify({ engine, workload, points }, null, 2));
  writeFileSync(join(runDir, 'report.md'), report);
  console.log(report);
  say(`results: ${join(runDir, 'report.md')}, ${join(runDir, 'results.json')}`);
}

main()
  .catch(async (err) => {
    say(`failed: ${(err as Error).message}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    await stopAll(5000);
  });
