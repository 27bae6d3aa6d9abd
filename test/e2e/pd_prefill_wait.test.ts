// The wait for a shared prefill in disaggregated serving (kv mode): `kvgate serve
// --prefill-workers 1 --decode-workers 1` over real mockers (speedup 0.25, so a long prompt's
// prefill keeps the prefill worker busy for about a second). A burst of requests sharing a new
// system prompt, sent while the prefill worker is busy, would be prefilled in one batch, each
// computing the prefix; with the wait, the first goes and the rest wait until the prefill
// worker's KV events store its prefix, then find it cached. A client that leaves while waiting
// takes nothing with it and never reaches an engine.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kill, listening, Processes, type Proc } from '../fixtures/processes.js';
import { chat as chatAt, expectOneComputedTheRestCached, groups as groupsOf, metric, metricsText as metricsAt, type Messages } from './prefill_wait_fixtures.js';
import { waitFor } from './stack.js';

const procs = new Processes();
let serve: Proc;
let url: string;

beforeAll(async () => {
  serve = procs.kvgate(['serve', '--prefill-workers', '1', '--decode-workers', '1', '--port', '0', '--idle-health-check', '0', '--log-level', 'warn', '--', '--speedup-ratio', '0.25']);
  url = await listening(serve, 60_000);
}, 90_000);

afterAll(async () => {
  if (serve) await kill(serve.proc);
  await procs.reap();
});

const groups = (seed: number, n: number, systemWords: number) => groupsOf(seed, 2, n, systemWords);
const chat = (messages: Messages, maxTokens: number, signal?: AbortSignal) => chatAt(url, messages, maxTokens, signal);
const metricsText = () => metricsAt(url);

const GAUGES = ['kvgate_router_pd_rooms_in_flight', 'kvgate_router_worker_active_requests', 'kvgate_router_worker_prefill_tokens', 'kvgate_router_kv_prefill_waiting_requests', 'kvgate_router_kv_prefilling_requests', 'kvgate_frontend_inflight_requests'];
async function settled(): Promise<string> {
  let text = '';
  await waitFor(async () => {
    text = await metricsText();
    return GAUGES.every((g) => metric(text, g) === 0);
  }, 'every request to end');
  return text;
}

// A long prompt (its prefill takes about a second), resolved once its prefill leg is out.
// (Wrapped: an async function would wait for the returned promise too.)
async function busy(messages: Messages): Promise<{ done: Promise<{ status: number; cached: number }> }> {
  const done = chat(messages, 4);
  await waitFor(async () => metric(await metricsText(), 'kvgate_router_kv_prefilling_requests') >= 1, 'the busy request to be prefilling');
  return { done };
}

describe('kvgate serve --prefill-workers 1 --decode-workers 1 waits for a shared prefill its prefill worker has queued', () => {
  it('holds a burst sent to a busy prefill worker until the first prompt\'s prefix is stored: the others find it cached', { timeout: 60_000 }, async () => {
    const [burst] = groups(31, 6, 1500);
    const before = await metricsText();
    const running = await busy(groups(32, 1, 3000)[0]![0]!.messages);
    const results = await Promise.all(burst!.map((r) => chat(r.messages, 2)));
    expect((await running.done).status).toBe(200);
    expectOneComputedTheRestCached(results);
    const text = await settled();
    expect(metric(text, 'kvgate_router_kv_prefill_waits_total') - metric(before, 'kvgate_router_kv_prefill_waits_total')).toBe(5);
    // Each request was counted once, as a disaggregated decision.
    expect(metric(text, 'kvgate_router_pd_decisions_total', 'disaggregated') - metric(before, 'kvgate_router_pd_decisions_total', 'disaggregated')).toBe(7);
  });

  it('a client that leaves while waiting takes nothing with it, and its request reaches no engine', { timeout: 60_000 }, async () => {
    const [burst] = groups(33, 2, 3000);
    const before = await metricsText();
    const running = await busy(groups(34, 1, 3000)[0]![0]!.messages);
    const first = chat(burst![0]!.messages, 2);
    await waitFor(async () => metric(await metricsText(), 'kvgate_router_kv_prefilling_requests') === 2, 'the first of the group to be sent');
    const leaving = new AbortController();
    const left = chat(burst![1]!.messages, 2, leaving.signal).catch((err: Error) => err);
    await waitFor(async () => metric(await metricsText(), 'kvgate_router_kv_prefill_waiting_requests') === 1, 'the second to wait');
    leaving.abort();
    expect(await left).toBeInstanceOf(Error);
    expect((await first).status).toBe(200);
    expect((await running.done).status).toBe(200);
    const text = await settled();
    expect(metric(text, 'kvgate_router_kv_prefill_waits_total') - metric(before, 'kvgate_router_kv_prefill_waits_total')).toBe(1);
    // Routed and sent: the busy request and the first one only.
    expect(metric(text, 'kvgate_router_pd_decisions_total') - metric(before, 'kvgate_router_pd_decisions_total')).toBe(2);
  });
});
