// `kvgate bench`: the load generator. Builds the workload, drives it at the target, prints
// the markdown table on stdout and writes results.json and results.md to --output. Exits 1
// when no request completed (the files are still written, with the errors by kind).

import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { Target, type Api } from '../../bench/client.js';
import { runLoad, type LoadMode } from '../../bench/load.js';
import { progress, type ProgressStyle } from '../../bench/progress.js';
import { markdown, summarize } from '../../bench/stats.js';
import { mooncake, MOONCAKE_PATH, multiTurn, sharedPrefix, type Workload } from '../../bench/workloads.js';
import { KvgateError } from '../../errors.js';
import { parseCommandLine, type OptionsOf } from '../../config.js';

type Options = OptionsOf<'bench'>;

const bad = (message: string): never => {
  throw new KvgateError('invalid_config', message);
};

// The workload and how many requests it holds (Infinity: a trace, read as it goes).
export function buildWorkload(o: Options): { workload: Workload; size: number; params: Record<string, unknown> } {
  switch (o.workload) {
    case 'shared-prefix': {
      const p = { groups: o.gspNumGroups, promptsPerGroup: o.gspPromptsPerGroup, systemPromptLen: o.gspSystemPromptLen, questionLen: o.gspQuestionLen, outputLen: o.gspOutputLen, seed: o.seed };
      return { workload: sharedPrefix({ ...p, ratePerSec: Infinity }), size: p.groups * p.promptsPerGroup, params: p };
    }
    case 'multi-turn': {
      const p = { sessions: o.mtSessions, turns: o.mtTurns, systemPromptLen: o.mtSystemPromptLen, historyLen: o.mtHistoryLen, questionLen: o.mtQuestionLen, outputLen: o.mtOutputLen, thinkMs: o.mtThinkTime * 1000, seed: o.seed };
      return { workload: multiTurn({ ...p, ratePerSec: Infinity }), size: p.sessions * p.turns, params: p };
    }
    case 'trace': {
      const path = o.traceFile ?? MOONCAKE_PATH;
      const p = { path: String(path), speed: o.traceSpeedup, maxInput: o.traceMaxInput, maxOutput: o.traceMaxOutput, seed: o.seed };
      try {
        return { workload: mooncake({ ...p, path, limit: Infinity }), size: Infinity, params: p };
      } catch (err) {
        return bad(`--trace-file: cannot read ${String(path)}: ${(err as Error).message}`);
      }
    }
    default:
      return bad('--workload is required (shared-prefix, multi-turn or trace)');
  }
}

export async function run(argv: string[]): Promise<void> {
  const { options: o } = parseCommandLine('bench', argv);
  if (!o.url) bad('--url is required (the target, e.g. http://127.0.0.1:8000)');
  try {
    new URL(o.url!);
  } catch {
    bad(`--url is not a URL: '${o.url}'`);
  }
  if (!o.output) bad('--output DIR is required (results.json and results.md go there)');
  if (o.concurrency !== undefined && o.rate !== undefined) bad('give --concurrency or --rate, not both');
  const mode: LoadMode =
    o.concurrency !== undefined
      ? { kind: 'concurrency', n: o.concurrency }
      : o.rate !== undefined
        ? { kind: 'rate', perSec: o.rate }
        : o.workload === 'trace'
          ? { kind: 'schedule' }
          : bad(`--workload ${o.workload ?? '?'} needs --concurrency N or --rate R`);
  const api = o.api as Api;
  const text = o.promptFormat === 'text' || (o.promptFormat === 'auto' && api === 'openai-chat');
  if (!text && api === 'openai-chat') bad('--api openai-chat sends text: --prompt-format tokens is only for openai-completions and sglang-generate');

  const { workload, size, params } = buildWorkload(o);
  const measured = Math.min(o.requests ?? Infinity, size - o.warmup);
  if (measured <= 0) bad(`--warmup ${o.warmup} leaves no requests of the workload's ${size} to measure`);

  const target = new Target({
    url: o.url!,
    api,
    model: o.model,
    apiKey: o.apiKey,
    connections: o.maxConnections ?? (mode.kind === 'concurrency' ? mode.n : 256),
    timeoutMs: o.requestTimeout * 1000,
    checkOutputLength: o.checkOutputLength,
  });
  const style: ProgressStyle = o.progress === 'auto' ? (process.stderr.isTTY ? 'bar' : 'lines') : (o.progress as ProgressStyle);
  const bar = progress(style, measured);
  let result;
  try {
    const model = await target.resolveModel();
    result = await runLoad(target, workload, {
      mode,
      requests: o.requests ?? Infinity,
      durationMs: o.duration !== undefined ? o.duration * 1000 : Infinity,
      warmup: o.warmup,
      seed: o.seed,
      text,
      onProgress: (d, f) => bar.update(d, f),
    });
    const failed = result.samples.filter((s) => s.outcome.error).length;
    bar.finish(result.samples.length, failed);
    const load = mode.kind === 'concurrency' ? `concurrency ${mode.n}` : mode.kind === 'rate' ? `Poisson ${mode.perSec} req/s` : `trace timestamps / ${o.traceSpeedup}`;
    const config = {
      command: ['kvgate', 'bench', ...argv].join(' '),
      url: o.url,
      api,
      model: model ?? null,
      workload: o.workload,
      workloadParams: params,
      promptFormat: text ? 'text' : 'tokens',
      load,
      warmup: o.warmup,
      seed: o.seed,
      date: new Date().toISOString(),
      machine: `${cpus()[0]?.model ?? 'unknown CPU'} x${cpus().length}, node ${process.version}`,
    };
    const results = summarize(result.samples, result.durationS, config);
    const md = markdown(results);
    mkdirSync(o.output!, { recursive: true });
    writeFileSync(join(o.output!, 'results.json'), JSON.stringify(results, null, 2) + '\n');
    writeFileSync(join(o.output!, 'results.md'), md);
    process.stdout.write(md);
    if (results.requests.completed === 0) {
      console.error(`kvgate bench: no request completed (${Object.entries(results.errors).map(([k, e]) => `${k} x${e.count}`).join(', ')})`);
      process.exitCode = 1;
    }
  } finally {
    await target.close();
  }
}
