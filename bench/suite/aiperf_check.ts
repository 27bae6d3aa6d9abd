// `npm run bench:aiperf-check`: kvgate bench beside NVIDIA's aiperf on one load point, in one
// run: OpenAI chat, streaming, random prompts of --isl tokens (nothing shared), --osl output
// tokens with ignore_eos, fixed concurrency, against `kvgate serve` (2 mocker workers) started
// afresh for each client and round (no prompt cached from an earlier run). The two clients
// alternate for --rounds rounds; the table shows each one's median and the ratio kvgate bench /
// aiperf. aiperf 0.13.0 is installed and run as `npm run bench:gateway` does (bench/gateway).

import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runAiperf } from '../gateway/aiperf.js';
import { defaultCacheDir, ensurePeers } from '../gateway/peers.js';
import { kvgateBench, startServe } from './procs.js';
import { median } from './summary.js';

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
const peers = await ensurePeers({ cache: defaultCacheDir(), python: 'python3', dynamo: false, say: (s) => console.error(s) });
const out = join(tmpdir(), `kvgate-aiperf-check-${process.pid}`);
mkdirSync(out, { recursive: true });

interface Point {
  rps: number;
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
  return { rps: r.requestsPerS, ttft50: r.ttftMs!.p50, ttft99: r.ttftMs!.p99, tpot50: r.tpotMs!.p50, e2e50: r.e2eMs!.p50, e2e99: r.e2eMs!.p99 };
}

async function aiperfRun(url: string, dir: string): Promise<Point> {
  const r = await runAiperf({ aiperf: peers.aiperf, modelDir: peers.modelDir, url, concurrency: c, requests: n, warmup, workload: { isl, osl }, outDir: dir, timeoutMs: 600_000 });
  if (r.errors) throw new Error(`aiperf: ${r.errors} errors: ${r.errorSummary.join('; ')}`);
  return { rps: r.requestsPerSecond, ttft50: r.ttft.p50, ttft99: r.ttft.p99, tpot50: r.itl.p50, e2e50: r.e2e.p50, e2e99: r.e2e.p99 };
}

// One client's run on a fresh `kvgate serve`.
async function onFreshServe(f: (url: string) => Promise<Point>): Promise<Point> {
  const serve = await startServe([]);
  try {
    return await f(serve.url);
  } finally {
    await serve.stop();
  }
}

const ours: Point[] = [];
const theirs: Point[] = [];
for (let r = 0; r < Number(a.rounds); r++) {
  ours.push(await onFreshServe((url) => ourRun(url, join(out, `kvgate-${r}`), r + 1)));
  theirs.push(await onFreshServe((url) => aiperfRun(url, join(out, `aiperf-${r}`))));
  console.error(`round ${r + 1}: kvgate bench ${ours[r]!.rps.toFixed(1)} req/s, aiperf ${theirs[r]!.rps.toFixed(1)} req/s`);
}
const rows: Array<[string, keyof Point]> = [
  ['requests/s', 'rps'],
  ['TTFT p50 ms', 'ttft50'],
  ['TTFT p99 ms', 'ttft99'],
  ['time per output token p50 ms', 'tpot50'],
  ['end-to-end p50 ms', 'e2e50'],
  ['end-to-end p99 ms', 'e2e99'],
];
console.log(`kvgate serve (2 mocker workers), chat, ISL ${isl}, OSL ${osl}, concurrency ${c}, ${n} requests after ${warmup} warm-up; medians of ${a.rounds} alternating rounds\n`);
console.log('| metric | kvgate bench | aiperf 0.13.0 | ratio |\n|---|---:|---:|---:|');
for (const [name, k] of rows) {
  const x = median(ours.map((p) => p[k]));
  const y = median(theirs.map((p) => p[k]));
  console.log(`| ${name} | ${x.toFixed(1)} | ${y.toFixed(1)} | ${(x / y).toFixed(2)} |`);
}
console.log(`\nresults: ${out}`);
