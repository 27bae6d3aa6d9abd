// `npm run bench:capacity`: the issue's throughput question on real processes, alone (bench:report
// asks it among thirty other points). The shared-prefix workload over a fleet whose KV the groups'
// prompts fill to 73% (the issue's and llm-d's sizing), closed loop at concurrency 64, so that
// every system runs at its own capacity: kvgate's router modes and the peers side by side, each
// row's requests/s over random's. Then, with --rate70, each system at 70% of kv's capacity
// (Poisson): TTFT and cached share where kv does not saturate but the others may.
//
//   npm run bench:capacity -- [--repeats N] [--groups G] [--modes kv,round-robin,random]
//                             [--peers sglang-router,smg,dynamo] [--rate70]

import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { defaultCacheDir, ensurePeers, type Peers } from '../gateway/peers.js';
import { killAllNow, stopAll } from '../gateway/procs.js';
import type { EngineSettings } from '../gateway/systems.js';
import { at, cached, med, servePoints, sizedKv, sp, ttftP50, type Metric, type ServePoint } from './serve_points.js';
import { formatSpread, isPeer, PEERS, spread } from './summary.js';

const { values: a } = parseArgs({
  args: process.argv.slice(2),
  options: {
    repeats: { type: 'string', default: '1' },
    groups: { type: 'string', default: '8' },
    modes: { type: 'string', default: 'kv,round-robin,random' },
    peers: { type: 'string', default: PEERS.join(',') },
    rate70: { type: 'boolean', default: false },
  },
});
const repeats = Number(a.repeats);
const groups = Number(a.groups);
if (!Number.isInteger(repeats) || repeats < 1 || !Number.isInteger(groups) || groups < 1) throw new Error('--repeats and --groups want positive integers');
const modes = a.modes.split(',').filter(Boolean);
if (!modes.includes('kv') || !modes.includes('random')) throw new Error('--modes must include kv and random (the ratios are over them)');
const peerNames = a.peers.split(',').filter(Boolean);
for (const p of peerNames) if (!isPeer(p)) throw new Error(`--peers: unknown peer '${p}' (choose from ${PEERS.join(', ')})`);

const log = (s: string) => console.error(`[bench:capacity] ${s}`);
process.on('exit', killAllNow);

// bench:report's fleet and workload (its "Two capacities" points), so the numbers compare.
const SPEEDUP = 0.25;
const base: EngineSettings = { workers: 4, pageSize: 16, kvTokens: 262_144, maxRunning: 1024, speedup: SPEEDUP };
const engine: EngineSettings = { ...base, kvTokens: sizedKv(groups, 2048 + 128, base) };
if (engine.kvTokens < 2048 + 128) throw new Error(`--groups ${groups}: an engine's KV (${engine.kvTokens} tokens) would not hold one prompt; take at least 3`);
const workload = ['--workload', 'shared-prefix', '--gsp-num-groups', String(groups), '--gsp-prompts-per-group', '8', '--gsp-system-prompt-len', '2048', '--gsp-question-len', '128', '--gsp-output-len', '64'];

const peers: Peers | null | Error = peerNames.includes('dynamo')
  ? await ensurePeers({ cache: defaultCacheDir(), python: 'python3', dynamo: true, say: log }).catch((err: Error) => err)
  : null;
const runner = { engine, repeats, scratch: join(tmpdir(), `kvgate-capacity-${process.pid}`), peers, log };
const load0 = loadavg()[0]!;
const systems = [...modes, ...peerNames];
const capacityPoints = await servePoints(runner, systems, { concurrency: 64 }, 'capacity', workload);
const reqs: Metric = (r) => r.requestsPerS;
const kvCapacity = med(at(capacityPoints, 'kv'), reqs);
const rated = a.rate70 && Number.isFinite(kvCapacity) ? await servePoints(runner, systems, { rate: 0.7 * kvCapacity }, 'rate70kv', workload) : [];
await stopAll();

const x = (v: number, over: number) => (Number.isFinite(v / over) ? `${(v / over).toFixed(2)}x` : '-');
function table(ps: ServePoint[]): string[] {
  const random = med(at(ps, 'random'), reqs);
  const cell = (p: ServePoint, f: Metric, suffix = '') => formatSpread(sp(p, f), 1, suffix);
  return [
    '| system | req/s | over random | TTFT p50 ms | TTFT p99 ms | cached | failed | load avg |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
    ...ps.map((p) =>
      p.problem
        ? `| ${p.system} | no result: ${p.problem.replace(/\|/g, '/')} |||||||`
        : `| ${p.system} | ${cell(p, reqs)} | ${x(med(p, reqs), random)} | ${cell(p, ttftP50)} | ${cell(p, (r) => r.ttftMs?.p99)} | ${p.runs.some((r) => r.cachedTokenShare !== null) ? cell(p, cached, '%') : 'n/r'} | ${p.runs.reduce((n, r) => n + r.requests.failed, 0)} | ${formatSpread(spread(p.loadAverage))} |`,
    ),
  ];
}
const out = [
  `${new Date().toISOString()}: ${groups} groups x 8 prompts (2,048-token system prompt, 128-token question, 64 output tokens), ${engine.workers} mocker engines of ${engine.kvTokens} KV tokens (the prompts fill 73% of the fleet's KV), speedup ${SPEEDUP}; ${repeats > 1 ? `median of ${repeats} runs (min-max)` : 'one run'}; load average ${load0.toFixed(1)} at the start.`,
  '',
  'Capacity: closed loop at concurrency 64.',
  '',
  ...table(capacityPoints),
  ...(rated.length ? ['', `At 70% of kv's capacity (${(0.7 * kvCapacity).toFixed(1)} req/s, Poisson):`, '', ...table(rated)] : []),
].join('\n');
console.log(out);
