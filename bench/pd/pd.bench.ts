// bench:pd: long prompts over mocker fleets behind `kvgate serve`, aggregated against
// disaggregated (1P1D, 2P2D) and conditional disaggregation, with the same engines per pair
// of rows (2 or 4). One run, side by side, the same seeded traffic for every configuration.
//
// The workload: Poisson arrivals of prompts of 4K-8K tokens (uniform), 200 output tokens each
// (ignore_eos). A share of the requests (FOLLOW, default 0.5) continues an earlier prompt: that
// prompt again plus 64-256 new tokens, so most of it is cached on the worker that prefilled it
// (a multi-turn shape). Conditional disaggregation sends a request whose uncached part is at
// most COND_TOKENS (default 512) to the decode worker alone.
//
// The mocker's timing model runs a prefill batch or a decode step at a time, so in an
// aggregated engine a long prefill holds up every decoding request's next token (what
// disaggregation removes), while a disaggregated request pays the KV transfer (64 GB/s
// simulated) and a second engine's queue before its first token.
//
// Env: REQUESTS (160), RATE (requests/s, 2), SPEEDUP (mocker --speedup-ratio, 4), SEED (1),
// FOLLOW (0.5), COND_TOKENS (512), CONFIGS (agg-2,1p1d,agg-4,2p2d,2p2d-cond).
// Runs the built CLI (npm run bench:pd builds it first).

import { spawn, type ChildProcess } from 'node:child_process';
import { Target } from '../../src/bench/client.js';
import { runLoad } from '../../src/bench/load.js';
import { summarize, type Results } from '../../src/bench/stats.js';
import { rng, tokenAt, type Arrival, type Workload } from '../../src/bench/workloads.js';

const env = (k: string, d: number) => Number(process.env[k] ?? d);
const REQUESTS = env('REQUESTS', 160);
const RATE = env('RATE', 2);
const SPEEDUP = env('SPEEDUP', 4);
const SEED = env('SEED', 1);
const FOLLOW = env('FOLLOW', 0.5);
const COND_TOKENS = env('COND_TOKENS', 512);
const OUTPUT = 200;

const CONFIGS: Record<string, { engines: number; args: string[] }> = {
  'agg-2': { engines: 2, args: ['--workers', '2'] },
  '1p1d': { engines: 2, args: ['--prefill-workers', '1', '--decode-workers', '1'] },
  'agg-4': { engines: 4, args: ['--workers', '4'] },
  '2p2d': { engines: 4, args: ['--prefill-workers', '2', '--decode-workers', '2'] },
  '2p2d-cond': { engines: 4, args: ['--prefill-workers', '2', '--decode-workers', '2', '--pd-local-prefill-tokens', String(COND_TOKENS)] },
};
const names = (process.env['CONFIGS'] ?? Object.keys(CONFIGS).join(',')).split(',');
for (const n of names) if (!CONFIGS[n]) throw new Error(`unknown config '${n}' (one of ${Object.keys(CONFIGS).join(', ')})`);

// Long prompts, half of them continuing an earlier one (its tokens, then new ones).
function longPrompts(): Workload {
  const rand = rng(SEED);
  const sent: number[][] = [];
  let i = 0;
  return {
    name: 'long-prompts',
    next(): Arrival | null {
      if (i >= REQUESTS) return null;
      const k = i++;
      let tokens: number[];
      if (sent.length > 0 && rand() < FOLLOW) {
        const base = sent[Math.floor(rand() * sent.length)]!;
        const extra = 64 + Math.floor(rand() * 193);
        tokens = [...base.slice(0, 8192 - extra), ...Array.from({ length: extra }, (_, p) => tokenAt(SEED, 1_000_000 + k, p))];
      } else {
        const len = 4096 + Math.floor(rand() * 4097);
        tokens = Array.from({ length: len }, (_, p) => tokenAt(SEED, k, p));
      }
      sent.push(tokens);
      return { at: 0, tokens, outputLen: OUTPUT };
    },
  };
}

function startServe(args: string[]): Promise<{ proc: ChildProcess; url: string }> {
  const engineArgs = ['--speedup-ratio', String(SPEEDUP), '--context-length', '16384'];
  const proc = spawn(process.execPath, ['bin/kvgate.js', 'serve', '--port', '0', '--log-level', 'warn', ...args, '--', ...engineArgs], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d) => (err = (err + d).slice(-5000)));
  return new Promise((resolve, reject) => {
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve({ proc, url: m[1]! });
    });
    proc.on('exit', (code) => reject(new Error(`kvgate serve ${args.join(' ')} exited (${code}):\n${err}`)));
  });
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
}

// How the disaggregated configurations served each request (kvgate_router_pd_decisions_total:
// disaggregated, or local_* when conditional disaggregation let the decode worker prefill).
async function pdDecisions(url: string): Promise<string> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return [...text.matchAll(/^kvgate_router_pd_decisions_total\{[^}]*decision="([^"]+)"[^}]*\} (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`).join(', ');
}

const ms = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(0));
const rows: string[] = [];
const results: Record<string, Results> = {};
console.log(`long-prompt workload: ${REQUESTS} requests at ${RATE}/s (Poisson), 4K-8K input tokens, ${OUTPUT} output, ${FOLLOW * 100} % continue an earlier prompt; mocker --speedup-ratio ${SPEEDUP}\n`);
for (const name of names) {
  const c = CONFIGS[name]!;
  const serve = await startServe(c.args);
  try {
    const target = new Target({ url: serve.url, api: 'openai-completions', connections: 256, timeoutMs: 600_000, checkOutputLength: true });
    await target.resolveModel();
    const load = await runLoad(target, longPrompts(), { mode: { kind: 'rate', perSec: RATE }, requests: Infinity, durationMs: Infinity, warmup: 0, seed: SEED, text: false });
    const r = summarize(load.samples, load.durationS, { config: name });
    results[name] = r;
    const decisions = await pdDecisions(serve.url);
    rows.push(
      `| ${name} | ${c.engines} | ${r.requests.completed}/${r.requests.sent} | ${ms(r.ttftMs?.p50)} | ${ms(r.ttftMs?.p99)} | ${r.itlMs?.p50.toFixed(1) ?? '-'} | ${ms(r.itlMs?.p99)} | ${r.tpotMs?.mean.toFixed(1) ?? '-'} | ${r.outputTokensPerS.toFixed(0)} | ${((r.cachedTokenShare ?? 0) * 100).toFixed(0)} % | ${decisions || '-'} |`,
    );
    console.error(`${name}: done (${r.requests.failed} failed)`);
  } finally {
    await stop(serve.proc);
  }
}
console.log('| config | engines | ok | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | TPOT mean ms | output tok/s | cached | PD decisions |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) console.log(r);
for (const [name, r] of Object.entries(results)) if (r.requests.failed > 0) console.log(`\n${name}: errors ${JSON.stringify(r.errors)}`);
