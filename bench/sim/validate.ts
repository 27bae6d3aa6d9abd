// `npm run sim:validate`: the simulator against the real thing. The same shared-prefix workload
// (token-id prompts, open-loop Poisson arrivals) goes once through a real fleet (4 `kvgate worker
// --engine mocker` processes behind the frontend and its native router, as `kvgate serve
// --workers 4` runs them; test/e2e/stack.ts) and once through the simulator with the same engine
// settings, for the kv and round-robin policies; prints hit rate and TTFT side by side.
//
// Env: VALIDATE_POLICIES (kv,round-robin), VALIDATE_SPEEDUP (0.25), VALIDATE_RATE (req/s,
// 4 x speedup), VALIDATE_SEED (1).

import type OpenAI from 'openai';
import { MODEL, serve, startCluster } from '../../test/e2e/stack.js';
import type { RouterPolicy } from '../../src/native/addon.js';
import { ENGINE_DEFAULTS, simulate, type EngineSpec } from './simulate.js';
import { GSP_DEFAULTS, sharedPrefix, tokenAt, type Arrival, type Workload } from '../../src/bench/workloads.js';

const WORKERS = 4;
const KV_TOKENS = 6144;
const OUTPUT = 32;
const policies = (process.env.VALIDATE_POLICIES ?? 'kv,round-robin').split(',') as RouterPolicy[];
// Model time runs 4x slower than real time by default, so the few ms a busy machine adds to
// every hop (timers, three processes per engine) stay small beside the engine's own times.
const speedup = Number(process.env.VALIDATE_SPEEDUP ?? 0.25);
const rate = Number(process.env.VALIDATE_RATE ?? 4 * speedup);
const seed = Number(process.env.VALIDATE_SEED ?? 1);
const engine: EngineSpec = { ...ENGINE_DEFAULTS, pageSize: 16, maxTotalTokens: KV_TOKENS, speedupRatio: speedup };

function arrivals(): Arrival[] {
  const w = sharedPrefix({ ...GSP_DEFAULTS, groups: 8, promptsPerGroup: 6, systemPromptLen: 1024, questionLen: 64, outputLen: OUTPUT, ratePerSec: rate, seed });
  const out: Arrival[] = [];
  for (let a = w.next(); a; a = w.next()) out.push(a);
  return out;
}

function replay(list: Arrival[]): Workload {
  let i = 0;
  return { name: 'replay', next: () => list[i++] ?? null };
}

interface Measured {
  hitRate: number;
  ttftP50: number;
  ttftP99: number;
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

async function one(client: OpenAI, a: Arrival): Promise<{ ttft: number; prompt: number; cached: number }> {
  const t0 = performance.now();
  let ttft = NaN;
  let prompt = 0;
  let cached = 0;
  const body = { model: MODEL, prompt: a.tokens, max_tokens: a.outputLen, stream: true, stream_options: { include_usage: true }, ignore_eos: true };
  const stream = await client.completions.create(body as unknown as OpenAI.CompletionCreateParamsStreaming);
  for await (const chunk of stream) {
    if (Number.isNaN(ttft) && chunk.choices.length > 0) ttft = performance.now() - t0;
    if (chunk.usage) {
      prompt = chunk.usage.prompt_tokens;
      cached = (chunk.usage as { prompt_tokens_details?: { cached_tokens?: number } }).prompt_tokens_details?.cached_tokens ?? 0;
    }
  }
  return { ttft, prompt, cached };
}

async function real(policy: RouterPolicy, list: Arrival[]): Promise<Measured> {
  const cluster = await startCluster(WORKERS, ['--max-total-tokens', String(KV_TOKENS), '--speedup-ratio', String(speedup), '--page-size', '16']);
  const stack = await serve(
    cluster.workers.map((w) => w.url),
    { mode: policy },
  );
  try {
    // Warm every process's code paths with prompts nothing else shares, then empty the caches
    // (the flush reaches the router as AllBlocksCleared).
    const warm: Arrival[] = Array.from({ length: 4 * WORKERS }, (_, i) => ({ at: 0, tokens: Array.from({ length: 256 }, (_, p) => tokenAt(seed + 99, i, p)), outputLen: 4 }));
    await Promise.all(warm.map((a) => one(stack.client, a)));
    for (let i = 0; i < WORKERS; i++) await fetch(`${cluster.engineUrl(i)}/flush_cache`, { method: 'POST' });
    await new Promise((r) => setTimeout(r, 500));
    const t0 = performance.now();
    const results = await Promise.all(
      list.map(async (a) => {
        const wait = a.at - (performance.now() - t0);
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        return one(stack.client, a);
      }),
    );
    const prompt = results.reduce((s, r) => s + r.prompt, 0);
    const cached = results.reduce((s, r) => s + r.cached, 0);
    const ttfts = results.map((r) => r.ttft);
    return { hitRate: cached / prompt, ttftP50: pct(ttfts, 0.5), ttftP99: pct(ttfts, 0.99) };
  } finally {
    await stack.close();
    await cluster.stop();
  }
}

const list = arrivals();
console.log(`\n### Validation: ${list.length} shared-prefix requests (8 groups x 6, system 1024, question 64, output ${OUTPUT}), Poisson ${rate} req/s, ${WORKERS} mocker engines (page 16, KV ${KV_TOKENS} tokens, speedup ${speedup})\n`);
console.log('| policy | hit rate, real | hit rate, sim | TTFT p50 ms, real | sim | TTFT p99 ms, real | sim |');
console.log('|---|---|---|---|---|---|---|');
for (const policy of policies) {
  const r = await real(policy, list);
  const s = simulate(replay(list), { workers: WORKERS, engine, policy: { kind: policy, eventDelayMs: 2, seed }, seed });
  const pc = (x: number) => `${(100 * x).toFixed(1)} %`;
  console.log(`| ${policy} | ${pc(r.hitRate)} | ${pc(s.hitRate)} | ${r.ttftP50.toFixed(1)} | ${s.ttftP50.toFixed(1)} | ${r.ttftP99.toFixed(1)} | ${s.ttftP99.toFixed(1)} |`);
}
