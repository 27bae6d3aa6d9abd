// `npm run bench:aiperf-check`: kvgate bench beside NVIDIA's aiperf on one load point, in one
// run, against one `kvgate serve` (2 mocker workers): OpenAI chat, streaming, random prompts of
// --isl tokens (nothing shared), --osl output tokens with ignore_eos, fixed concurrency. The two
// clients alternate for --rounds rounds; the table shows each one's median over the rounds and
// the ratio kvgate bench / aiperf. aiperf 0.13.0 comes from the venv that `npm run bench:gateway`
// installs ($KVGATE_BENCH_CACHE, default ~/.cache/kvgate-bench).

import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultModelDir } from '../../src/preprocess/model_files.js';
import { kvgateBench, median, run, startServe } from './procs.js';

const { values: a } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '8' },
    requests: { type: 'string', default: '200' },
    isl: { type: 'string', default: '512' },
    osl: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '3' },
  },
});
const c = Number(a.concurrency);
const n = Number(a.requests);
const isl = Number(a.isl);
const osl = Number(a.osl);
const warmup = Math.max(1, c);

const cache = process.env['KVGATE_BENCH_CACHE'] ?? join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'kvgate-bench');
const aiperf = join(cache, 'aiperf-0.13.0', 'bin', 'aiperf');
if (!existsSync(aiperf)) {
  console.error(`no aiperf at ${aiperf}: run \`npm run bench:gateway\` once (it installs aiperf 0.13.0 there)`);
  process.exit(1);
}
const out = join(tmpdir(), `kvgate-aiperf-check-${process.pid}`);
mkdirSync(out, { recursive: true });

interface Point {
  rps: number;
  cachedPct: number; // prompt tokens the engines found cached, %
  tokps: number;
  ttft50: number;
  ttft99: number;
  tpot50: number;
  e2e50: number;
  e2e99: number;
}

async function ourRun(url: string, dir: string, seed: number): Promise<Point> {
  // shared-prefix with no system prompt and one prompt per group: distinct random prompts.
  const r = await kvgateBench(['--url', url, '--api', 'openai-chat', '--workload', 'shared-prefix', '--gsp-num-groups', String(n + warmup), '--gsp-prompts-per-group', '1', '--gsp-system-prompt-len', '0', '--gsp-question-len', String(isl), '--gsp-output-len', String(osl), '--concurrency', String(c), '--warmup', String(warmup), '--seed', String(seed)], dir);
  if (r.requests.failed) throw new Error(`kvgate bench: ${r.requests.failed} failed: ${JSON.stringify(r.errors)}`);
  return { rps: r.requestsPerS, cachedPct: 100 * (r.cachedTokenShare ?? NaN), tokps: r.outputTokensPerS, ttft50: r.ttftMs!.p50, ttft99: r.ttftMs!.p99, tpot50: r.tpotMs!.p50, e2e50: r.e2eMs!.p50, e2e99: r.e2eMs!.p99 };
}

async function aiperfRun(url: string, dir: string, seed: number): Promise<Point> {
  const env = { ...process.env };
  delete env['HF_HUB_OFFLINE']; // aiperf reads a local tokenizer folder only without it
  // The packaged tokenizer's chat template adds the same tokens to both clients' prompts.
  await run(aiperf, ['profile', '-m', 'Qwen/Qwen3-0.6B', '--url', url, '--endpoint-type', 'chat', '--streaming', '--concurrency', String(c), '--request-count', String(n), '--warmup-request-count', String(warmup), '--tokenizer', defaultModelDir(), '--ui-type', 'none', '--no-server-metrics', '--no-gpu-telemetry', '--random-seed', String(seed), '--prompt-input-tokens-mean', String(isl), '--prompt-input-tokens-stddev', '0', '--prompt-output-tokens-mean', String(osl), '--prompt-output-tokens-stddev', '0', '--use-server-token-count', '--extra-inputs', 'ignore_eos:true', '--output-artifact-dir', dir], env);
  const d = JSON.parse(readFileSync(join(dir, 'profile_export_aiperf.json'), 'utf8'));
  return {
    rps: d.request_throughput.avg,
    cachedPct: (100 * (d.usage_prompt_cache_read_tokens?.avg ?? NaN)) / d.input_sequence_length.avg,
    tokps: d.output_token_throughput.avg,
    ttft50: d.time_to_first_token.p50,
    ttft99: d.time_to_first_token.p99,
    tpot50: d.inter_token_latency.p50,
    e2e50: d.request_latency.p50,
    e2e99: d.request_latency.p99,
  };
}

const serve = await startServe([]);
const url = serve.url;
try {
  const ours: Point[] = [];
  const theirs: Point[] = [];
  for (let r = 0; r < Number(a.rounds); r++) {
    // A new seed per round and client: no prompt of an earlier run is in the engines' caches.
    ours.push(await ourRun(url, join(out, `kvgate-${r}`), 2 * r + 1));
    theirs.push(await aiperfRun(url, join(out, `aiperf-${r}`), 2 * r + 2));
    console.error(`round ${r + 1}: kvgate bench ${ours[r]!.rps.toFixed(1)} req/s, aiperf ${theirs[r]!.rps.toFixed(1)} req/s`);
  }
  const rows: Array<[string, keyof Point]> = [
    ['requests/s', 'rps'],
    ['output tokens/s', 'tokps'],
    ['TTFT p50 ms', 'ttft50'],
    ['TTFT p99 ms', 'ttft99'],
    ['time per output token p50 ms', 'tpot50'],
    ['end-to-end p50 ms', 'e2e50'],
    ['end-to-end p99 ms', 'e2e99'],
    ['cached prompt tokens %', 'cachedPct'],
  ];
  console.log(`kvgate serve (2 mocker workers), chat, ISL ${isl}, OSL ${osl}, concurrency ${c}, ${n} requests after ${warmup} warm-up; medians of ${a.rounds} alternating rounds\n`);
  console.log('| metric | kvgate bench | aiperf 0.13.0 | ratio |\n|---|---:|---:|---:|');
  for (const [name, k] of rows) {
    const x = median(ours.map((p) => p[k]));
    const y = median(theirs.map((p) => p[k]));
    console.log(`| ${name} | ${x.toFixed(1)} | ${y.toFixed(1)} | ${(x / y).toFixed(2)} |`);
  }
  console.log(`\nresults: ${out}`);
} finally {
  await serve.stop();
}
