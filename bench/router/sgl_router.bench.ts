// bench:sgl-router: `kvgate router` against SGLang's own routers (PyPI sglang-router 0.3.2 and
// smg 1.13.0), an nginx round-robin proxy (Debian nginx) and the engines alone (the client
// spreads requests round-robin itself) in one run, over the same kvgate mocker servers (page
// size 16, KV events on, a small KV cache so that scattering prompts costs evictions). The
// workload is shared-prefix (bench/http/shared_prefix.ts: groups with their own long system
// prompt, questions in a seeded interleaved order) sent to /generate as text at each
// concurrency. Per system: requests/s, mean and p99 latency, the mean latency added over the
// engines alone, the share of prompt tokens the engines found cached, the router's CPU (seconds,
// and ms per request) and its RSS at the end. The mockers' caches are flushed between systems.
//
//   npm run bench:sgl-router -- [--concurrency 16,64] [--groups 16] [--per-group 20] [--system-words 150]
//                               [--workers 4] [--max-total-tokens 8192] [--only kvgate:cache_aware,smg:cache_aware,nginx:round_robin,engine:alone,...]
//                               [--kvgate-node-args="--cpu-prof --cpu-prof-dir=DIR"] [--kvgate-before DIR (runs kvgate-before:<policy>)]
//   kvgate-uws:<policy> runs this build's router with --http-server uws.

import { mkdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { sglangRouterPython, SGLANG_ROUTER_VERSION, smgBinary, SMG_VERSION } from '../../test/sgl_router/sglang_router_peer.js';
import { stopAll } from '../gateway/procs.js';
import { WORKLOAD_FLAGS, startMockers, startRouter, type Router } from './sgl_routers.js';
import { sharedPrefixWorkload } from '../http/shared_prefix.js';

const { values: flags } = parseArgs({
  options: {
    ...WORKLOAD_FLAGS,
    speedup: { type: 'string', default: '10' },
    only: { type: 'string', default: 'engine:alone,kvgate:cache_aware,kvgate:kv,kvgate:round_robin,kvgate:power_of_two,sglang-router:cache_aware,sglang-router:round_robin,sglang-router:power_of_two,smg:cache_aware,smg:round_robin,smg:power_of_two,nginx:round_robin' },
    // Extra node flags for the kvgate router process (e.g. --cpu-prof).
    'kvgate-node-args': { type: 'string', default: '' },
    // Another kvgate build (a directory with bin/kvgate.js and dist/), run as `kvgate-before:<policy>`
    // systems: a change's before and after in the same run.
    'kvgate-before': { type: 'string', default: '' },
  },
});
const int = (k: keyof typeof flags): number => Number(flags[k]);

const runDir = resolve('build', 'bench-sgl-router', new Date().toISOString().replace(/[:.]/g, '-'));
mkdirSync(runDir, { recursive: true });

interface Result {
  system: string;
  concurrency: number;
  seconds: number;
  requests: number;
  errors: number;
  promptTokens: number;
  cachedTokens: number;
  latencies: number[];
  cpuSeconds: number;
  rssMb: number;
}

function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}
const rssMb = (pid: number): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

async function run(system: string, concurrency: number, router: Router): Promise<Result> {
  const { urls, pid } = router;
  const workload = sharedPrefixWorkload({ groups: int('groups'), perGroup: int('per-group'), systemWords: int('system-words'), seed: 1 });
  const bodies = workload.map((r) => JSON.stringify({ text: r.messages.map((m) => m.content).join('\n'), sampling_params: { max_new_tokens: 16, ignore_eos: true } }));
  const result: Result = { system, concurrency, seconds: 0, requests: bodies.length, errors: 0, promptTokens: 0, cachedTokens: 0, latencies: [], cpuSeconds: 0, rssMb: 0 };
  let next = 0;
  const cpu0 = pid === null ? 0 : cpuTicks(pid);
  const t0 = performance.now();
  const client = async (): Promise<void> => {
    while (next < bodies.length) {
      const i = next++;
      const body = bodies[i]!;
      const s = performance.now();
      const res = await fetch(`${urls[i % urls.length]}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const text = await res.text();
      result.latencies.push(performance.now() - s);
      if (!res.ok) {
        result.errors++;
        continue;
      }
      const meta = JSON.parse(text).meta_info;
      result.promptTokens += meta.prompt_tokens;
      result.cachedTokens += meta.cached_tokens;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  result.seconds = (performance.now() - t0) / 1000;
  result.cpuSeconds = pid === null ? 0 : (cpuTicks(pid) - cpu0) / 100;
  result.rssMb = pid === null ? 0 : rssMb(pid);
  return result;
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function main(): Promise<void> {
  const systems = flags.only.split(',').map((s) => s.trim());
  const levels = flags.concurrency.split(',').map(Number);
  if (systems.some((s) => s.startsWith('sglang-router'))) sglangRouterPython();
  if (systems.some((s) => s.startsWith('smg'))) smgBinary();
  const { urls } = await startMockers(int('workers'), ['--page-size', '16', '--max-total-tokens', flags['max-total-tokens'], '--speedup-ratio', flags.speedup], runDir);
  const routerOptions = { logDir: runDir, kvgateNodeArgs: flags['kvgate-node-args'].split(' ').filter(Boolean), kvgateBefore: flags['kvgate-before'] || undefined };
  const results: Result[] = [];
  try {
    // One unreported pass straight to the engines, so the first system measured does not pay
    // for the mockers' JIT warm-up.
    await run('warm-up', levels[0]!, { urls, pid: null, stop: async () => undefined });
    for (const concurrency of levels) {
      for (const system of systems) {
        await Promise.all(urls.map((u) => fetch(`${u}/flush_cache`, { method: 'POST' })));
        const router = await startRouter(system, urls, routerOptions);
        results.push(await run(system, concurrency, router));
        await router.stop();
        const r = results.at(-1)!;
        console.error(`c${concurrency} ${system}: ${(r.requests / r.seconds).toFixed(1)} req/s, cached ${(r.cachedTokens / r.promptTokens).toFixed(3)}, errors ${r.errors}`);
      }
    }
  } finally {
    await stopAll();
  }
  console.log(`\nshared-prefix: ${int('groups')} groups x ${int('per-group')} requests, ~${int('system-words')}-word system prompts, /generate text, 16 output tokens; ${int('workers')} kvgate mockers (page 16, KV cache ${int('max-total-tokens')} tokens each, speedup ${flags.speedup}); sglang-router ${SGLANG_ROUTER_VERSION}, smg ${SMG_VERSION}, nginx round-robin (keep-alive upstreams); engine:alone = the client round-robins over the mockers\n`);
  console.log('| concurrency | router:policy | requests/s | mean latency ms | p99 latency ms | latency added ms | cached-token share | router CPU s | CPU ms/request | router RSS MB | errors |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  const mean = (r: Result) => r.latencies.reduce((a, b) => a + b, 0) / r.latencies.length;
  for (const r of results) {
    const alone = results.find((x) => x.concurrency === r.concurrency && x.system === 'engine:alone');
    const added = alone && r !== alone ? (mean(r) - mean(alone)).toFixed(1) : '-';
    const cpu = r.system === 'engine:alone' ? ['-', '-', '-'] : [r.cpuSeconds.toFixed(2), ((r.cpuSeconds * 1000) / r.requests).toFixed(2), r.rssMb.toFixed(0)];
    console.log(`| ${r.concurrency} | ${r.system} | ${(r.requests / r.seconds).toFixed(1)} | ${mean(r).toFixed(1)} | ${pct(r.latencies, 99).toFixed(1)} | ${added} | ${(r.cachedTokens / Math.max(1, r.promptTokens)).toFixed(3)} | ${cpu.join(' | ')} | ${r.errors} |`);
  }
  console.log(`\nlogs: ${runDir}`);
}

main().catch(async (err) => {
  console.error(err);
  await stopAll();
  process.exit(1);
});
