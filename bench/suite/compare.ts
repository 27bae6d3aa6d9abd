// `npm run bench:compare`: the same workload (same seed, so the same prompts in the same order)
// against `kvgate serve` in each router mode, disaggregated (`pd-2p2d`: 2 prefill and 2 decode
// workers, kv routing; compare it with 4 aggregated workers), and, with --peers, the peers bench:report puts
// beside them (bench/suite/targets.ts: sglang-router and smg cache_aware over kvgate mockers,
// NVIDIA Dynamo 1.6.1's KV frontend over its own mockers, installed into the bench cache as
// bench:gateway does), one system at a time, alternating for --rounds rounds; one table of
// medians and of ratios to the baseline. Mode `kv-nowait` is kv without the wait for a shared
// prefill (--router-prefill-wait-share 1), to measure that wait.
//
//   npm run bench:compare -- [--modes kv,round-robin,pd-2p2d] [--baseline round-robin] [--workers 4]
//     [--engine-args '--max-total-tokens 65536'] [--rounds 1] [--peers sglang-router,smg,dynamo]
//     [--kv-tokens 65536] [--speedup 10] [-- <kvgate bench flags>]
//
// Without bench flags: shared-prefix, 16 groups x 8 prompts, 2,048-token system prompts,
// 128-token questions, 64 output tokens, concurrency 16. With --peers every system runs the same
// simulated engine settings (page 16, --kv-tokens per engine, 256 running, --speedup), so
// --engine-args is not taken, and each gets the token ids on the API it takes (targets.ts).

import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Results } from '../../src/bench/stats.js';
import { defaultCacheDir, ensurePeers } from '../gateway/peers.js';
import type { EngineSettings } from '../gateway/systems.js';
import { kvgateBench, startServe } from './procs.js';
import { isPeer, median, PEERS } from './summary.js';
import { routerModeArgs, startTarget, type Target } from './targets.js';

const dashdash = process.argv.indexOf('--', 2);
const own = dashdash >= 0 ? process.argv.slice(2, dashdash) : process.argv.slice(2);
const { values: a } = parseArgs({
  args: own,
  options: {
    modes: { type: 'string', default: 'kv,round-robin' },
    baseline: { type: 'string', default: 'round-robin' },
    workers: { type: 'string', default: '4' },
    'engine-args': { type: 'string', default: '' },
    rounds: { type: 'string', default: '1' },
    peers: { type: 'string', default: '' },
    'kv-tokens': { type: 'string', default: '65536' },
    speedup: { type: 'string', default: '10' },
    python: { type: 'string', default: 'python3' },
  },
});
const peerNames = a.peers.split(',').filter(Boolean);
for (const p of peerNames) if (!isPeer(p)) throw new Error(`--peers: '${p}' is not a peer this bench runs (${PEERS.join(', ')})`);
const modes = a.modes.split(',').filter(Boolean);
const systems = [...modes, ...peerNames];
if (!systems.includes(a.baseline)) throw new Error(`--baseline ${a.baseline} is not among --modes ${a.modes} or --peers ${a.peers}`);
let engineArgs = a['engine-args'].split(/\s+/).filter(Boolean);
if (peerNames.length > 0 && engineArgs.length > 0) throw new Error('--peers sets the engine settings of every system (--kv-tokens, --speedup): leave out --engine-args');
const engine: EngineSettings = { workers: Number(a.workers), pageSize: 16, kvTokens: Number(a['kv-tokens']), maxRunning: 256, speedup: Number(a.speedup) };
const peers = peerNames.includes('dynamo') ? await ensurePeers({ cache: defaultCacheDir(), python: a.python, dynamo: true, say: (s) => console.error(s) }) : null;
if (peerNames.length > 0) engineArgs = ['--page-size', '16', '--max-total-tokens', a['kv-tokens'], '--max-running-requests', '256', '--speedup-ratio', a.speedup];
const benchArgs =
  dashdash >= 0
    ? process.argv.slice(dashdash + 1)
    : ['--workload', 'shared-prefix', '--gsp-num-groups', '16', '--gsp-prompts-per-group', '8', '--gsp-system-prompt-len', '2048', '--gsp-question-len', '128', '--gsp-output-len', '64', '--concurrency', '16'];
const out = join(tmpdir(), `kvgate-compare-${process.pid}`);
mkdirSync(out, { recursive: true });

// A mode `pd-<P>p<D>d` is kvgate disaggregated: P prefill and D decode workers, kv routing.
const PD_MODE = /^pd-(\d+)p(\d+)d$/;
for (const m of modes) {
  const pd = PD_MODE.exec(m);
  if (pd && (Number(pd[1]) < 1 || Number(pd[2]) < 1)) throw new Error(`--modes ${m}: a disaggregated mode needs at least one prefill and one decode worker`);
}

// kvgate in a router mode or disaggregated (with --engine-args, or the peers' engine settings
// with --peers), or a peer.
async function start(name: string, round: number): Promise<Target> {
  const pd = PD_MODE.exec(name);
  if (!pd && peerNames.length > 0) return startTarget(name, engine, join(out, `${name}-${round}-procs`), peers);
  const fleet = pd ? ['--prefill-workers', pd[1]!, '--decode-workers', pd[2]!, '--router-mode', 'kv'] : ['--workers', a.workers, ...routerModeArgs(name)];
  const serve = await startServe([...fleet, ...(engineArgs.length ? ['--', ...engineArgs] : [])]);
  // Beside the peers, token ids as startTarget sends kvgate's modes.
  return { ...serve, api: peerNames.length > 0 ? ['--api', 'openai-completions'] : [] };
}

const results = new Map<string, Results[]>(systems.map((m) => [m, []]));
for (let r = 0; r < Number(a.rounds); r++) {
  for (const mode of systems) {
    const serve = await start(mode, r);
    try {
      const res = await kvgateBench(['--url', serve.url, ...serve.api, ...benchArgs], join(out, `${mode}-${r}`));
      if (res.requests.failed) console.error(`${mode}: ${res.requests.failed} failed: ${JSON.stringify(res.errors)}`);
      results.get(mode)!.push(res);
      console.error(`round ${r + 1} ${mode}: ${res.requestsPerS.toFixed(1)} req/s, TTFT p50 ${res.ttftMs?.p50.toFixed(1)} ms`);
    } finally {
      await serve.stop();
    }
  }
}

type Metric = (r: Results) => number;
const cols: Array<[string, Metric]> = [
  ['req/s', (r) => r.requestsPerS],
  ['output tok/s', (r) => r.outputTokensPerS],
  ['TTFT p50 ms', (r) => r.ttftMs?.p50 ?? NaN],
  ['TTFT p99 ms', (r) => r.ttftMs?.p99 ?? NaN],
  ['e2e p50 ms', (r) => r.e2eMs?.p50 ?? NaN],
  ['cached %', (r) => 100 * (r.cachedTokenShare ?? NaN)],
];
const med = (mode: string, f: Metric) => median(results.get(mode)!.map(f));
const first = results.get(systems[0]!)![0]!;
console.log(`kvgate serve --workers ${a.workers}${engineArgs.length ? ' -- ' + engineArgs.join(' ') : ''}${peers ? `; ${peerNames.join(', ')} on the same engine settings` : ''}; kvgate bench ${benchArgs.join(' ')}; medians of ${a.rounds} round(s); ratio = mode / ${a.baseline}; ${String(first.config['machine'])}\n`);
console.log(`| mode | ${cols.map(([n]) => n).join(' | ')} | ${cols.map(([n]) => n + ' ratio').join(' | ')} |`);
console.log(`|---|${cols.map(() => '---:').join('|')}|${cols.map(() => '---:').join('|')}|`);
for (const mode of systems) {
  const vals = cols.map(([, f]) => med(mode, f));
  const ratios = cols.map(([, f], i) => vals[i]! / med(a.baseline, f));
  console.log(`| ${mode} | ${vals.map((v) => v.toFixed(1)).join(' | ')} | ${ratios.map((v) => (Number.isFinite(v) ? v.toFixed(2) : '-')).join(' | ')} |`);
}
console.log(`\nresults: ${out}`);
