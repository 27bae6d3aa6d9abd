// `npm run bench:compare`: the same workload (same seed, so the same prompts in the same order)
// against `kvgate serve` in each router mode, one mode at a time, alternating for --rounds
// rounds; one table of medians and of ratios to the baseline mode.
//
//   npm run bench:compare -- [--modes kv,round-robin] [--baseline round-robin] [--workers 4]
//     [--engine-args '--max-total-tokens 65536'] [--rounds 1] [-- <kvgate bench flags>]
//
// Without bench flags: shared-prefix, 16 groups x 8 prompts, 2,048-token system prompts,
// 128-token questions, 64 output tokens, concurrency 16.

import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Results } from '../../src/bench/stats.js';
import { kvgateBench, median, startServe } from './procs.js';

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
  },
});
const modes = a.modes.split(',').filter(Boolean);
if (!modes.includes(a.baseline)) throw new Error(`--baseline ${a.baseline} is not among --modes ${a.modes}`);
const benchArgs =
  dashdash >= 0
    ? process.argv.slice(dashdash + 1)
    : ['--workload', 'shared-prefix', '--gsp-num-groups', '16', '--gsp-prompts-per-group', '8', '--gsp-system-prompt-len', '2048', '--gsp-question-len', '128', '--gsp-output-len', '64', '--concurrency', '16'];
const engineArgs = a['engine-args'].split(/\s+/).filter(Boolean);
const out = join(tmpdir(), `kvgate-compare-${process.pid}`);
mkdirSync(out, { recursive: true });

const results = new Map<string, Results[]>(modes.map((m) => [m, []]));
for (let r = 0; r < Number(a.rounds); r++) {
  for (const mode of modes) {
    const serve = await startServe(['--workers', a.workers, '--router-mode', mode, ...(engineArgs.length ? ['--', ...engineArgs] : [])]);
    try {
      const res = await kvgateBench(['--url', serve.url, ...benchArgs], join(out, `${mode}-${r}`));
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
const first = results.get(modes[0]!)![0]!;
console.log(`kvgate serve --workers ${a.workers}${engineArgs.length ? ' -- ' + engineArgs.join(' ') : ''}; kvgate bench ${benchArgs.join(' ')}; medians of ${a.rounds} round(s); ratio = mode / ${a.baseline}; ${String(first.config['machine'])}\n`);
console.log(`| mode | ${cols.map(([n]) => n).join(' | ')} | ${cols.map(([n]) => n + ' ratio').join(' | ')} |`);
console.log(`|---|${cols.map(() => '---:').join('|')}|${cols.map(() => '---:').join('|')}|`);
for (const mode of modes) {
  const vals = cols.map(([, f]) => med(mode, f));
  const ratios = cols.map(([, f], i) => vals[i]! / med(a.baseline, f));
  console.log(`| ${mode} | ${vals.map((v) => v.toFixed(1)).join(' | ')} | ${ratios.map((v) => (Number.isFinite(v) ? v.toFixed(2) : '-')).join(' | ')} |`);
}
console.log(`\nresults: ${out}`);
