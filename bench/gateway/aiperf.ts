// One load point: aiperf at a fixed concurrency against one URL, and what it measured.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logTail, start, stop, type Started } from './procs.js';
import { MODEL_NAME } from './peers.js';

export interface Workload {
  isl: number; // prompt tokens (aiperf's synthetic text)
  osl: number; // output tokens, ignore_eos
}

export interface PointSpec {
  aiperf: string;
  modelDir: string;
  url: string;
  concurrency: number;
  requests: number;
  warmup: number;
  workload: Workload;
  outDir: string;
  timeoutMs: number;
  // SGLang's native /generate (the engine alone) instead of OpenAI chat.
  generate?: { promptIds: number };
}

export interface Stat {
  p50: number;
  p99: number;
}

export interface AiperfResult {
  requestsPerSecond: number;
  // aiperf's latencies run from when a request was sent.
  ttft: Stat;
  itl: Stat;
  e2e: Stat;
  // aiperf's own client can fall behind: a request it may send (a credit issued, because one
  // ended) waits in aiperf until a worker process of aiperf sends it, and that wait is in none
  // of the latencies above. So a system under which aiperf falls behind runs at a lower real
  // concurrency and shows lower latencies (coordinated omission). These say so:
  // the requests in flight at the server on average (aiperf's effective_concurrency),
  inFlight: number;
  // the wait inside aiperf (credit_to_start_latency),
  clientWait: Stat;
  // and TTFT and E2E counted from when the request could have been sent (effective_latency).
  ttftFromIssue: Stat;
  e2eFromIssue: Stat;
  completed: number;
  errors: number;
  errorSummary: string[];
  // Output tokens per request as aiperf counted them (min..max): the server's usage for chat,
  // aiperf's own re-tokenization of the streamed text for /generate.
  osl: { min: number; max: number };
  isl: number;
  startMs: number;
  endMs: number;
}

// aiperf's template endpoint for SGLang's /generate. The prompt goes as token ids, as a gateway
// sends it (the mocker has no tokenizer and would count each UTF-8 byte of text as a token):
// the first `promptIds` bytes of aiperf's random text, so prompts stay distinct.
function generateTemplate(promptIds: number): string {
  return `{"input_ids": {{ (text.encode('utf-8')|list)[:${promptIds}]|tojson }}, "sampling_params": {"max_new_tokens": {{ max_tokens }}, "ignore_eos": true, "temperature": 0}, "stream": {{ stream|tojson }}}\n`;
}

export async function runAiperf(spec: PointSpec): Promise<AiperfResult> {
  mkdirSync(spec.outDir, { recursive: true });
  const args = [
    'profile',
    '-m', MODEL_NAME,
    '--url', spec.url,
    '--streaming',
    '--concurrency', String(spec.concurrency),
    '--request-count', String(spec.requests),
    '--warmup-request-count', String(spec.warmup),
    '--tokenizer', spec.modelDir,
    '--ui-type', 'none',
    '--no-server-metrics',
    '--no-gpu-telemetry',
    '--random-seed', '1',
    '--request-timeout-seconds', '120',
    '--prompt-input-tokens-mean', String(spec.workload.isl),
    '--prompt-input-tokens-stddev', '0',
    '--prompt-output-tokens-mean', String(spec.workload.osl),
    '--prompt-output-tokens-stddev', '0',
    '--output-artifact-dir', spec.outDir,
  ];
  if (spec.generate) {
    const template = join(spec.outDir, 'generate.jinja');
    writeFileSync(template, generateTemplate(spec.generate.promptIds));
    args.push('--endpoint-type', 'template', '--custom-endpoint', '/generate', '--extra-inputs', JSON.stringify({ payload_template: template }));
  } else {
    args.push('--endpoint-type', 'chat', '--use-server-token-count', '--extra-inputs', 'ignore_eos:true');
  }
  // aiperf reads a local tokenizer folder only when HF_HUB_OFFLINE is unset.
  const env = { ...process.env };
  delete env['HF_HUB_OFFLINE'];
  const proc = start(`aiperf c=${spec.concurrency}`, spec.aiperf, args, { env, logPath: join(spec.outDir, 'aiperf.log') });
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([proc.exited, new Promise<null>((r) => (timer = setTimeout(() => r(null), spec.timeoutMs)))]);
  clearTimeout(timer);
  if (outcome === null) {
    await stop(proc, 3000);
    throw new Error(`aiperf did not finish within ${spec.timeoutMs / 1000} s (log ${proc.logPath})`);
  }
  if (outcome !== 'exit code 0') throw new Error(`aiperf failed (${outcome}); log ${proc.logPath}:\n${logTail(proc)}`);
  return parseExport(proc, spec.outDir);
}

interface Metric {
  avg?: number;
  p50?: number;
  p99?: number;
  min?: number;
  max?: number;
}

// Nearest-rank percentile.
function percentile(sorted: number[], q: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

interface RecordLine {
  metadata?: { benchmark_phase?: string; credit_issued_ns?: number; request_start_ns?: number };
  metrics?: { time_to_first_token?: { value?: number } };
}

// TTFT from the credit's issue, per measured request (aiperf's per-request records): its wait
// inside aiperf plus its TTFT.
function ttftFromIssue(path: string): Stat {
  const v: number[] = [];
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return { p50: NaN, p99: NaN };
  }
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const r = JSON.parse(line) as RecordLine;
    const m = r.metadata;
    const ttft = r.metrics?.time_to_first_token?.value;
    if (m?.benchmark_phase !== 'profiling' || ttft === undefined || m.credit_issued_ns === undefined || m.request_start_ns === undefined) continue;
    v.push((m.request_start_ns - m.credit_issued_ns) / 1e6 + ttft);
  }
  v.sort((a, b) => a - b);
  return { p50: percentile(v, 0.5), p99: percentile(v, 0.99) };
}

function parseExport(proc: Started, outDir: string): AiperfResult {
  const path = join(outDir, 'profile_export_aiperf.json');
  let d: Record<string, unknown>;
  try {
    d = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`aiperf wrote no readable ${path} (${(err as Error).message}); log ${proc.logPath}:\n${logTail(proc)}`, { cause: err });
  }
  const m = (k: string): Metric => (d[k] as Metric | undefined) ?? {};
  const stat = (k: string): Stat => ({ p50: m(k).p50 ?? NaN, p99: m(k).p99 ?? NaN });
  const osl = m('usage_completion_tokens').min !== undefined ? m('usage_completion_tokens') : m('output_sequence_length');
  const errorSummary = ((d['error_summary'] as { error_details?: { message?: string }; count?: number }[] | undefined) ?? []).map(
    (e) => `${e.count ?? '?'} x ${e.error_details?.message ?? JSON.stringify(e)}`.slice(0, 200),
  );
  const completed = m('request_count').avg ?? 0;
  const errorCount = m('error_request_count').avg ?? 0;
  return {
    requestsPerSecond: m('request_throughput').avg ?? NaN,
    ttft: stat('time_to_first_token'),
    itl: stat('inter_token_latency'),
    e2e: stat('request_latency'),
    inFlight: m('effective_concurrency').avg ?? NaN,
    clientWait: stat('credit_to_start_latency'),
    ttftFromIssue: ttftFromIssue(join(outDir, 'profile_export.jsonl')),
    e2eFromIssue: stat('effective_latency'),
    completed,
    errors: errorCount,
    errorSummary,
    osl: { min: osl.min ?? NaN, max: osl.max ?? NaN },
    isl: m('usage_prompt_tokens').avg ?? m('input_sequence_length').avg ?? NaN,
    // aiperf writes its phase times as local time without a zone; Date parses them the same way.
    startMs: new Date(String(d['start_time'])).getTime(),
    endMs: new Date(String(d['end_time'])).getTime(),
  };
}
