// bench:sgl-router: `kvgate router` against SGLang's own router (PyPI sglang-router 0.3.2) in
// one run, over the same kvgate mocker servers (page size 16, KV events on, a small KV cache
// so that scattering prompts costs evictions). The workload is shared-prefix
// (bench/http/shared_prefix.ts: groups with their own long system prompt, questions in a
// seeded interleaved order) sent to /generate as text at a fixed concurrency. Per system:
// requests/s, mean and p99 latency, the share of prompt tokens the engines found cached,
// the router's CPU seconds and its RSS at the end. The mockers' caches are flushed between systems.
//
//   npm run bench:sgl-router -- [--concurrency 16] [--groups 16] [--per-group 20] [--system-words 150]
//                               [--workers 4] [--max-total-tokens 8192] [--only kvgate:cache_aware,...]

import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { sglangRouterPython, SGLANG_ROUTER_VERSION } from '../../test/sgl_router/sglang_router_peer.js';
import { freePort, start, stop, stopAll, waitReady, type Started } from '../gateway/procs.js';
import { sharedPrefixWorkload } from '../http/shared_prefix.js';

const { values: flags } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '16' },
    groups: { type: 'string', default: '16' },
    'per-group': { type: 'string', default: '20' },
    'system-words': { type: 'string', default: '150' },
    workers: { type: 'string', default: '4' },
    'max-total-tokens': { type: 'string', default: '8192' },
    speedup: { type: 'string', default: '10' },
    only: { type: 'string', default: 'kvgate:cache_aware,kvgate:kv,kvgate:round_robin,sglang-router:cache_aware,sglang-router:round_robin' },
  },
});
const int = (k: keyof typeof flags): number => Number(flags[k]);

const KVGATE = [process.execPath, resolve('bin/kvgate.js')];
const runDir = resolve('build', 'bench-sgl-router', new Date().toISOString().replace(/[:.]/g, '-'));
mkdirSync(runDir, { recursive: true });

interface Result {
  system: string;
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

async function startMockers(n: number): Promise<{ urls: string[]; procs: Started[] }> {
  const urls: string[] = [];
  const procs: Started[] = [];
  for (let i = 0; i < n; i++) {
    const [port, events, replay] = [await freePort(), await freePort(), await freePort()];
    const config = JSON.stringify({ publisher: 'zmq', endpoint: `tcp://*:${events}`, replay_endpoint: `tcp://*:${replay}`, topic: 'kv' });
    procs.push(
      start(`mocker${i}`, KVGATE[0]!, [KVGATE[1]!, 'mocker', '--port', String(port), '--page-size', '16', '--max-total-tokens', flags['max-total-tokens'], '--speedup-ratio', flags.speedup, '--kv-events-config', config, '--log-level', 'warn'], {
        logPath: join(runDir, `mocker${i}.log`),
      }),
    );
    urls.push(`http://127.0.0.1:${port}`);
  }
  await waitReady('mockers', procs, async () => (await Promise.all(urls.map((u) => fetch(`${u}/health`).then((r) => r.ok)))).every(Boolean), 60_000);
  return { urls, procs };
}

async function startRouter(system: string, workers: string[]): Promise<{ url: string; proc: Started }> {
  const [kind, policy] = system.split(':') as [string, string];
  const [port, prom] = [await freePort(), await freePort()];
  const common = ['--host', '127.0.0.1', '--port', String(port), '--worker-urls', ...workers, '--policy', policy, '--prometheus-host', '127.0.0.1', '--prometheus-port', String(prom), '--log-level', 'warn'];
  const proc =
    kind === 'kvgate'
      ? start(system, KVGATE[0]!, [KVGATE[1]!, 'router', ...common], { logPath: join(runDir, `${system}.log`) })
      : start(system, sglangRouterPython(), ['-m', 'sglang_router.launch_router', ...common], { logPath: join(runDir, `${system}.log`) });
  const url = `http://127.0.0.1:${port}`;
  // Ready when every worker is registered and healthy (sglang-router registers in the background).
  await waitReady(system, [proc], async () => {
    const r = await fetch(`${url}/readiness`);
    return r.ok && (await r.json()).healthy_workers === workers.length;
  }, 120_000);
  return { url, proc };
}

async function run(system: string, url: string, pid: number): Promise<Result> {
  const workload = sharedPrefixWorkload({ groups: int('groups'), perGroup: int('per-group'), systemWords: int('system-words'), seed: 1 });
  const bodies = workload.map((r) => JSON.stringify({ text: r.messages.map((m) => m.content).join('\n'), sampling_params: { max_new_tokens: 16, ignore_eos: true } }));
  const result: Result = { system, seconds: 0, requests: bodies.length, errors: 0, promptTokens: 0, cachedTokens: 0, latencies: [], cpuSeconds: 0, rssMb: 0 };
  let next = 0;
  const cpu0 = cpuTicks(pid);
  const t0 = performance.now();
  const client = async (): Promise<void> => {
    while (next < bodies.length) {
      const body = bodies[next++]!;
      const s = performance.now();
      const res = await fetch(`${url}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
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
  await Promise.all(Array.from({ length: int('concurrency') }, client));
  result.seconds = (performance.now() - t0) / 1000;
  result.cpuSeconds = (cpuTicks(pid) - cpu0) / 100;
  result.rssMb = rssMb(pid);
  return result;
}

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function main(): Promise<void> {
  const systems = flags.only.split(',').map((s) => s.trim());
  if (systems.some((s) => s.startsWith('sglang-router'))) sglangRouterPython();
  const { urls } = await startMockers(int('workers'));
  const results: Result[] = [];
  try {
    for (const system of systems) {
      await Promise.all(urls.map((u) => fetch(`${u}/flush_cache`, { method: 'POST' })));
      const router = await startRouter(system, urls);
      results.push(await run(system, router.url, router.proc.pid));
      await stop(router.proc);
      const r = results.at(-1)!;
      console.error(`${system}: ${(r.requests / r.seconds).toFixed(1)} req/s, cached ${(r.cachedTokens / r.promptTokens).toFixed(3)}, errors ${r.errors}`);
    }
  } finally {
    await stopAll();
  }
  console.log(`\nshared-prefix: ${int('groups')} groups x ${int('per-group')} requests, ~${int('system-words')}-word system prompts, /generate text, 16 output tokens, concurrency ${int('concurrency')}; ${int('workers')} kvgate mockers (page 16, KV cache ${int('max-total-tokens')} tokens each, speedup ${flags.speedup}); sglang-router ${SGLANG_ROUTER_VERSION}\n`);
  console.log('| router:policy | requests/s | mean latency ms | p99 latency ms | cached-token share | router CPU s | router RSS MB | errors |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of results) {
    const mean = r.latencies.reduce((a, b) => a + b, 0) / r.latencies.length;
    console.log(`| ${r.system} | ${(r.requests / r.seconds).toFixed(1)} | ${mean.toFixed(1)} | ${pct(r.latencies, 99).toFixed(1)} | ${(r.cachedTokens / Math.max(1, r.promptTokens)).toFixed(3)} | ${r.cpuSeconds.toFixed(2)} | ${r.rssMb.toFixed(0)} | ${r.errors} |`);
  }
  console.log(`\nlogs: ${runDir}`);
}

main().catch(async (err) => {
  console.error(err);
  await stopAll();
  process.exit(1);
});
