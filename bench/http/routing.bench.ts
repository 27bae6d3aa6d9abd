// bench:routing: the shared-prefix workload (bench/http/shared_prefix.ts) through the OpenAI
// API against fresh mocker workers per router mode; reports the prompt tokens the engines
// found in their prefix caches (usage.prompt_tokens_details.cached_tokens) per mode.
//
// Env: WORKERS (4), GROUPS (8), PER_GROUP (6), SYSTEM_WORDS (1100), SEED (1),
// MAX_TOTAL_TOKENS (per-worker KV capacity in tokens, default 262144 = the mocker's default),
// MODES (kv,kv-approx,round-robin,random,power-of-two,least-loaded).

import { MODEL, serve, startCluster } from '../../test/e2e/stack.js';
import type { KvWorkerSetOptions } from '../../src/router/kv_worker_set.js';
import type { RouterPolicy } from '../../src/native/addon.js';
import { runWorkload, sharedPrefixWorkload } from './shared_prefix.js';

const env = (k: string, d: number) => Number(process.env[k] ?? d);
const workers = env('WORKERS', 4);
const capacity = env('MAX_TOTAL_TOKENS', 262144);
const modes = (process.env['MODES'] ?? 'kv,kv-approx,round-robin,random,power-of-two,least-loaded').split(',');
const requests = sharedPrefixWorkload({ groups: env('GROUPS', 8), perGroup: env('PER_GROUP', 6), systemWords: env('SYSTEM_WORDS', 1100), seed: env('SEED', 1) });

const setOptions = (mode: string): KvWorkerSetOptions =>
  mode === 'kv-approx' ? { mode: 'kv', kvEvents: false } : { mode: mode as RouterPolicy };

console.log(`shared-prefix workload: ${requests.length} requests, ${workers} mocker workers, KV capacity ${capacity} tokens per worker\n`);
console.log('| router mode | prompt tokens | cached tokens | cached share | vs round-robin | wall |');
console.log('|---|---|---|---|---|---|');
const results = new Map<string, number>();
const rows: string[][] = [];
for (const mode of modes) {
  const cluster = await startCluster(workers, ['--max-total-tokens', String(capacity), '--speedup-ratio', '50']);
  const stack = await serve(cluster.workers.map((w) => w.url), setOptions(mode));
  try {
    const r = await runWorkload(stack.client, MODEL, requests);
    results.set(mode, r.cachedTokens);
    rows.push([mode, String(r.promptTokens), String(r.cachedTokens), `${((100 * r.cachedTokens) / r.promptTokens).toFixed(1)} %`, '', `${r.seconds.toFixed(1)} s`]);
  } finally {
    await stack.close();
    await cluster.stop();
  }
}
const rr = results.get('round-robin');
for (const row of rows) {
  row[4] = rr ? `${(Number(row[2]) / rr).toFixed(2)}x` : '-';
  console.log(`| ${row.join(' | ')} |`);
}
