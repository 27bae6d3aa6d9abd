// The results of a run: exact percentiles over the sorted samples (a run holds at most a few
// hundred thousand numbers, so no histogram is needed), rates over the measured window, and
// the markdown table written beside the JSON.

import type { Outcome } from './client.js';

export interface Distribution {
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface Results {
  config: Record<string, unknown>;
  requests: { sent: number; completed: number; failed: number };
  errors: Record<string, { count: number; example: string }>;
  durationS: number;
  requestsPerS: number;
  outputTokensPerS: number;
  inputTokens: number;
  outputTokens: number;
  cachedTokenShare: number | null; // cached / prompt tokens over requests that reported both
  ttftMs: Distribution | null;
  itlMs: Distribution | null; // gaps between output chunks, pooled (SGLang's ITL)
  tpotMs: Distribution | null; // per request (e2e - TTFT) / (output tokens - 1) (aiperf's ITL, SGLang's TPOT)
  e2eMs: Distribution | null;
}

// Nearest-rank percentile of an ascending array.
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export function distribution(samples: readonly number[]): Distribution | null {
  if (samples.length === 0) return null;
  const s = Float64Array.from(samples).sort();
  let sum = 0;
  for (const x of s) sum += x;
  const a = s as unknown as number[];
  return { mean: sum / s.length, p50: percentile(a, 50), p90: percentile(a, 90), p99: percentile(a, 99), max: s[s.length - 1]! };
}

export interface Sample {
  outcome: Outcome;
  promptLen: number; // tokens the workload sent
}

export function summarize(samples: readonly Sample[], durationS: number, config: Record<string, unknown>): Results {
  const errors: Results['errors'] = {};
  const ok: Sample[] = [];
  for (const s of samples) {
    const e = s.outcome.error;
    if (!e) {
      ok.push(s);
      continue;
    }
    const slot = (errors[e.kind] ??= { count: 0, example: e.message });
    slot.count++;
  }
  let outputTokens = 0;
  let inputTokens = 0;
  let cached = 0;
  let cachedOf = 0;
  const itl: number[] = [];
  for (const { outcome: o, promptLen } of ok) {
    outputTokens += o.outputTokens;
    inputTokens += o.promptTokens ?? promptLen;
    if (o.cachedTokens !== null) {
      cached += o.cachedTokens;
      cachedOf += o.promptTokens ?? promptLen;
    }
    for (const x of o.itlMs) itl.push(x);
  }
  return {
    config,
    requests: { sent: samples.length, completed: ok.length, failed: samples.length - ok.length },
    errors,
    durationS,
    requestsPerS: durationS > 0 ? ok.length / durationS : 0,
    outputTokensPerS: durationS > 0 ? outputTokens / durationS : 0,
    inputTokens,
    outputTokens,
    cachedTokenShare: cachedOf > 0 ? cached / cachedOf : null,
    ttftMs: distribution(ok.map((s) => s.outcome.ttftMs!)),
    itlMs: distribution(itl),
    tpotMs: distribution(ok.filter((s) => s.outcome.outputTokens > 1).map(({ outcome: o }) => (o.e2eMs - o.ttftMs!) / (o.outputTokens - 1))),
    e2eMs: distribution(ok.map((s) => s.outcome.e2eMs)),
  };
}

const f = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '-');

export function markdown(r: Results): string {
  const c = r.config;
  const lines = [
    `# kvgate bench: ${String(c['workload'])} against ${String(c['url'])} (${String(c['api'])})`,
    '',
    `Load: ${String(c['load'])}. Command: \`${String(c['command'])}\``,
    '',
    '| requests | completed | failed | duration s | req/s | output tok/s | cached-token share |',
    '|---:|---:|---:|---:|---:|---:|---:|',
    `| ${r.requests.sent} | ${r.requests.completed} | ${r.requests.failed} | ${f(r.durationS, 2)} | ${f(r.requestsPerS, 2)} | ${f(r.outputTokensPerS, 1)} | ${r.cachedTokenShare === null ? 'not reported' : (100 * r.cachedTokenShare).toFixed(1) + '%'} |`,
    '',
    '| latency (ms) | mean | p50 | p90 | p99 | max |',
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const [name, d] of [
    ['TTFT', r.ttftMs],
    ['inter-token (chunk gaps)', r.itlMs],
    ['time per output token', r.tpotMs],
    ['end-to-end', r.e2eMs],
  ] as const) {
    lines.push(d ? `| ${name} | ${f(d.mean)} | ${f(d.p50)} | ${f(d.p90)} | ${f(d.p99)} | ${f(d.max)} |` : `| ${name} | - | - | - | - | - |`);
  }
  const kinds = Object.entries(r.errors);
  if (kinds.length) {
    lines.push('', '| error | count | example |', '|---|---:|---|');
    for (const [kind, e] of kinds) lines.push(`| ${kind} | ${e.count} | ${e.example.replace(/\|/g, '\\|').replace(/\s+/g, ' ').slice(0, 120)} |`);
  }
  return lines.join('\n') + '\n';
}
