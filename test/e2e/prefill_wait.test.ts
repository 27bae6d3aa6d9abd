// kvgate serve's wait for a shared prefill (kv mode): a burst of requests sharing a new system
// prompt, sent while the worker is busy with another request, would be prefilled in one batch
// by the engine, each computing the prefix. With the wait, the first one is sent and the rest
// wait until the worker's KV events store its prefix, then find it cached. One real mocker
// worker behind its agent, slowed down (speedup 0.25) so the burst arrives during work.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chat as chatAt, expectOneComputedTheRestCached, groups as groupsOf, metric, metricsText, type Messages } from './prefill_wait_fixtures.js';
import { serve, startCluster, waitFor, type Cluster, type Serving } from './stack.js';

let cluster: Cluster;
let stack: Serving;

beforeAll(async () => {
  cluster = await startCluster(1, ['--speedup-ratio', '0.25']);
  stack = await serve(cluster.workers.map((w) => w.url), { mode: 'kv' });
}, 90_000);

afterAll(async () => {
  await stack?.close();
  await cluster?.stop();
});

// `count` groups of `n` chat requests sent to the stack (300-word system prompts: ~400 tokens).
const groups = (seed: number, n: number, systemWords = 300) => groupsOf(seed, 3, n, systemWords);
const chat = (messages: Messages, maxTokens: number, signal?: AbortSignal) => chatAt(stack.url, messages, maxTokens, signal);

// Sends a long request and resolves once it is on its way to the engine.
async function busy(messages: Messages): Promise<{ done: Promise<{ status: number; cached: number }> }> {
  const done = chat(messages, 200);
  await waitFor(async () => metric(await metricsText(stack.url), 'kvgate_router_worker_active_requests') >= 1, 'the busy request to be routed');
  return { done };
}

async function settled(): Promise<string> {
  let text = '';
  await waitFor(async () => {
    text = await metricsText(stack.url);
    return metric(text, 'kvgate_router_worker_active_requests') === 0 && metric(text, 'kvgate_router_kv_prefilling_requests') === 0;
  }, 'every request to end');
  return text;
}

describe('kvgate serve waits for a shared prefill its worker has queued', () => {
  it('holds a burst sent to a busy worker until the first request\'s prefix is stored: the others find it cached', { timeout: 60_000 }, async () => {
    const [burst, other] = groups(21, 6, 1500);
    const before = metric(await metricsText(stack.url), 'kvgate_router_kv_prefill_waits_total');
    const running = await busy(other![0]!.messages);
    const results = await Promise.all(burst!.map((r) => chat(r.messages, 2)));
    expect((await running.done).status).toBe(200);
    expectOneComputedTheRestCached(results);
    const text = await settled();
    expect(metric(text, 'kvgate_router_kv_prefill_waits_total') - before).toBe(5);
    expect(metric(text, 'kvgate_router_kv_prefill_waiting_requests')).toBe(0);
    expect(metric(text, 'kvgate_router_kv_prefilling_requests')).toBe(0);
  });

  it('a client that leaves while waiting takes nothing with it, and its request never reaches the engine', { timeout: 60_000 }, async () => {
    // A long system prompt: the second request waits while the first prefills it (~1 s).
    const [burst, other] = groups(22, 2, 3000);
    const engineRequests = async () => metric(await metricsText(cluster.engineUrl(0)), 'sglang:num_requests_total');
    const engineBefore = await engineRequests();
    const before = await metricsText(stack.url);
    const running = await busy(other![0]!.messages);
    const first = chat(burst![0]!.messages, 2);
    // Routed and so sent (the busy one's prefill may be stored already: active, not prefilling).
    await waitFor(async () => metric(await metricsText(stack.url), 'kvgate_router_worker_active_requests') === 2, 'the first of the group to be sent');
    const leaving = new AbortController();
    const left = chat(burst![1]!.messages, 2, leaving.signal).catch((err: Error) => err);
    await waitFor(async () => metric(await metricsText(stack.url), 'kvgate_router_kv_prefill_waiting_requests') === 1, 'the second to wait');
    leaving.abort();
    expect(await left).toBeInstanceOf(Error);
    expect((await first).status).toBe(200);
    expect((await running.done).status).toBe(200);
    const text = await settled();
    expect(metric(text, 'kvgate_router_kv_prefill_waits_total') - metric(before, 'kvgate_router_kv_prefill_waits_total')).toBe(1);
    expect(metric(text, 'kvgate_router_kv_prefill_waiting_requests')).toBe(0);
    expect(metric(text, 'kvgate_router_worker_active_requests')).toBe(0);
    expect(metric(text, 'kvgate_router_worker_prefill_tokens')).toBe(0);
    // Routed and sent: the busy request and the first one only.
    expect(metric(text, 'kvgate_router_decisions_total') - metric(before, 'kvgate_router_decisions_total')).toBe(2);
    await waitFor(async () => (await engineRequests()) === engineBefore + 2, 'the engine to count two requests');
    expect(await engineRequests()).toBe(engineBefore + 2);
  });

  it('does not hold a burst on an idle worker: the engine starts the first prefill at once and batches the rest after it', { timeout: 60_000 }, async () => {
    const [burst] = groups(23, 6);
    const before = metric(await metricsText(stack.url), 'kvgate_router_kv_prefill_waits_total');
    const results = await Promise.all(burst!.map((r) => chat(r.messages, 2)));
    const cached = results.map((r) => r.cached).sort((a, b) => a - b);
    expect(cached[0]).toBe(0);
    expect(cached[1]).toBeGreaterThan(300);
    const text = await settled();
    expect(metric(text, 'kvgate_router_kv_prefill_waits_total') - before).toBe(0);
  });
});
