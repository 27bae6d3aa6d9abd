// Admission control on a real frontend over a scripted SGLang engine whose requests take
// ~0.5 s: --max-concurrent-requests 2 with a queue of 2. Requests beyond the slots wait in
// FIFO order, a full queue is 429 with Retry-After, a wait that runs out is 503 with
// Retry-After, a client that leaves while queued frees its place, and the gauges return to 0.

import { afterEach, describe, expect, it } from 'vitest';
import { startFakeSglang, type FakeSglang } from './fixtures/fake_sglang.js';
import { metric, startStack, waitFor, type Stack } from './fixtures/stack.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function system(queueTimeoutMs: number): Promise<{ engine: FakeSglang; stack: Stack }> {
  const engine = await startFakeSglang({ reply: () => [16, 17, 18, 19, 20], tokenDelayMs: 100 });
  cleanups.push(() => engine.close());
  const stack = await startStack([engine], { admission: { maxConcurrent: 2, queueSize: 2, queueTimeoutMs } });
  cleanups.push(() => stack.close());
  return { engine, stack };
}

const post = (stack: Stack, n: number, signal?: AbortSignal) =>
  fetch(`${stack.url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'qwen3', prompt: [100, 200 + n], max_tokens: 5 }),
    signal,
  });

const gauges = async (stack: Stack) => {
  const text = await (await fetch(`${stack.url}/metrics`)).text();
  return [metric(text, 'kvgate_frontend_queued_requests'), metric(text, 'kvgate_frontend_inflight_requests')];
};

describe('admission', () => {
  it('serves 2 at once, queues 2 in order, refuses the 5th with 429 and Retry-After', { timeout: 30_000 }, async () => {
    const { engine, stack } = await system(10_000);
    const first = [post(stack, 0), post(stack, 1)];
    await waitFor(() => engine.received.length === 2);
    const queued = [post(stack, 2)];
    await waitFor(async () => (await gauges(stack))[0] === 1);
    queued.push(post(stack, 3));
    await waitFor(async () => (await gauges(stack))[0] === 2);
    const refused = await post(stack, 4);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.json()).toMatchObject({ error: { code: 'too_many_requests', type: 'rate_limit_exceeded' } });
    for (const r of await Promise.all([...first, ...queued])) expect(r.status).toBe(200);
    // The queued ones reached the engine in the order they came.
    expect(engine.received.map((b) => b.input_ids[1]).slice(2)).toEqual([202, 203]);
    expect(engine.received).toHaveLength(4);
    expect(await gauges(stack)).toEqual([0, 0]);
  });

  it('refuses a request that waited too long with 503 and Retry-After; a client that leaves frees its place', { timeout: 30_000 }, async () => {
    const { engine, stack } = await system(300);
    const running = [post(stack, 0), post(stack, 1)];
    await waitFor(() => engine.received.length === 2);
    const gone = new AbortController();
    const leaving = post(stack, 2, gone.signal).catch((err: Error) => err);
    await waitFor(async () => (await gauges(stack))[0] === 1);
    gone.abort();
    expect(await leaving).toBeInstanceOf(Error);
    await waitFor(async () => (await gauges(stack))[0] === 0);
    const late = await post(stack, 3);
    expect(late.status).toBe(503);
    expect(late.headers.get('retry-after')).toBe('1');
    expect(await late.json()).toMatchObject({ error: { code: 'queue_timeout' } });
    for (const r of await Promise.all(running)) expect(r.status).toBe(200);
    expect(engine.received).toHaveLength(2);
    await waitFor(async () => (await gauges(stack)).every((g) => g === 0));
  });
});
