// KV-aware routing end to end: four real mocker workers behind worker agents, the frontend
// and its router, and the shared-prefix workload (8 groups x 6 requests, each group with its
// own ~1,150-token system prompt, arriving interleaved in a seeded random order) through the
// OpenAI API. Each worker's KV cache holds about 2.6 system prompts (3,072 tokens): the four
// caches together hold all eight, but only if each group stays on one worker, which is what
// routing on KV events does. Measured as the engines report it: the sum of
// usage.prompt_tokens_details.cached_tokens, with fresh workers for each router mode.

import { describe, expect, it } from 'vitest';
import { runWorkload, sharedPrefixWorkload } from '../../bench/http/shared_prefix.js';
import type { KvWorkerSetOptions } from '../../src/router/kv_worker_set.js';
import { metricByWorker, MODEL, serve, startCluster } from './stack.js';

const requests = sharedPrefixWorkload({ groups: 8, perGroup: 6, systemWords: 1100, seed: 1 });

async function cachedTokens(options: KvWorkerSetOptions): Promise<{ cached: number; prompt: number; index: number }> {
  const cluster = await startCluster(4, ['--max-total-tokens', '3072', '--speedup-ratio', '50']);
  try {
    const stack = await serve(cluster.workers.map((w) => w.url), options);
    try {
      const r = await runWorkload(stack.client, MODEL, requests);
      return { cached: r.cachedTokens, prompt: r.promptTokens, index: stack.set.routerStats(MODEL)!.blocks };
    } finally {
      await stack.close();
    }
  } finally {
    await cluster.stop();
  }
}

describe('shared-prefix workload on four workers', () => {
  it('KV routing finds at least twice the cached prompt tokens of round robin, with events or approximately', { timeout: 120_000 }, async () => {
    const rr = await cachedTokens({ mode: 'round-robin' });
    const kv = await cachedTokens({ mode: 'kv' });
    const approx = await cachedTokens({ mode: 'kv', kvEvents: false });
    console.log(`cached prompt tokens of ${kv.prompt}: kv ${kv.cached}, kv approximate ${approx.cached}, round-robin ${rr.cached}`);
    expect(kv.prompt).toBe(rr.prompt);
    expect(rr.cached).toBeGreaterThan(0);
    expect(kv.cached).toBeGreaterThanOrEqual(2 * rr.cached);
    expect(approx.cached).toBeGreaterThanOrEqual(2 * rr.cached);
    // The index was fed by the engines' events (approximate mode predicts instead).
    expect(kv.index).toBeGreaterThan(8 * 60);
  });
});

// The burst case of issue 15: 16 requests sharing one new system prompt, all sent at once, so
// every one is routed before any worker's KV events can tell the router the prefix exists.
// Pending prefixes (on by default) keep them on one worker; without them they spread.
describe('a burst of one new prefix on four workers with KV events', () => {
  async function busiestShare(stack: Awaited<ReturnType<typeof serve>>, seed: number): Promise<number> {
    const burst = sharedPrefixWorkload({ groups: 1, perGroup: 16, systemWords: 1100, seed });
    const before = await metricByWorker(stack.url, 'kvgate_router_decisions_total');
    await Promise.all(burst.map((r) => stack.client.chat.completions.create({ model: MODEL, messages: r.messages, max_tokens: 4 })));
    const after = await metricByWorker(stack.url, 'kvgate_router_decisions_total');
    const counts = [...after].map(([w, n]) => n - (before.get(w) ?? 0));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(16);
    return Math.max(...counts);
  }

  it('keeps at least 15 of 16 on one worker with pending prefixes, and spreads them without', { timeout: 120_000 }, async () => {
    const cluster = await startCluster(4, ['--speedup-ratio', '50']);
    try {
      const off = await serve(cluster.workers.map((w) => w.url), { mode: 'kv', pendingWeight: 0 });
      let without: number;
      try {
        without = await busiestShare(off, 11);
      } finally {
        await off.close();
      }
      const on = await serve(cluster.workers.map((w) => w.url), { mode: 'kv' });
      try {
        const withPending = await busiestShare(on, 12);
        console.log(`burst of 16: busiest worker took ${withPending} with pending prefixes, ${without} without`);
        expect(withPending).toBeGreaterThanOrEqual(15);
        expect(without).toBeLessThan(15);
        // Every request finished: nothing stays pending or active.
        const stats = on.set.routerStats(MODEL)!;
        expect(stats.activeRequests).toBe(0);
        expect(stats.pendingRequests).toBe(0);
      } finally {
        await on.close();
      }
    } finally {
      await cluster.stop();
    }
  });
});
