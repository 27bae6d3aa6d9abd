// Connection lifecycle: a client that disconnects aborts the engine request; a shutdown
// drains in-flight streams and cuts them at its deadline; readiness follows the workers.

import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeSglang, type FakeSglang } from './fixtures/fake_sglang.js';
import { metric, startStack, waitFor, type Stack } from './fixtures/stack.js';

type ApiError = InstanceType<typeof OpenAI.APIError>;

const messages = [{ role: 'user' as const, content: 'count' }];
// Qwen3 " the" repeated: readable output of any length.
const words = (n: number) => Array.from({ length: n }, () => 279);

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function setup(engineOpts: Parameters<typeof startFakeSglang>[0], stackOpts: Parameters<typeof startStack>[1] = {}): Promise<{ engine: FakeSglang; stack: Stack }> {
  const engine = await startFakeSglang(engineOpts);
  cleanup.push(() => engine.close());
  const stack = await startStack([engine], stackOpts);
  cleanup.push(() => stack.close());
  return { engine, stack };
}

describe('client disconnect', () => {
  it('aborts the engine request when a streaming client goes away', async () => {
    const { engine, stack } = await setup({ reply: () => words(500), tokenDelayMs: 20 });
    const stream = await stack.client.chat.completions.create({ model: 'qwen3', messages, stream: true });
    let n = 0;
    for await (const c of stream) {
      if (c.choices[0]?.delta.content) n++;
      if (n === 3) break; // leaving the loop aborts the HTTP request
    }
    const rid = engine.received.at(-1)!.rid;
    await waitFor(() => engine.disconnected.includes(rid) && engine.abortRequests.includes(rid));
    expect(engine.running.size).toBe(0);
    await waitFor(() => stack.frontend.inflight() === 0);
    const text = await (await fetch(`${stack.url}/metrics`)).text();
    expect(metric(text, 'kvgate_frontend_disconnected_clients_total', { model: 'qwen3' })).toBe(1);
    expect(metric(text, 'kvgate_frontend_requests_total', { status: 'cancelled', request_type: 'stream' })).toBe(1);
    expect(metric(text, 'kvgate_frontend_inflight_requests', { model: 'qwen3' })).toBe(0);
  });

  it('aborts the engine request when a non-streaming client goes away', async () => {
    const { engine, stack } = await setup({ reply: () => words(500), tokenDelayMs: 20 });
    const ctl = new AbortController();
    const pending = stack.client.chat.completions.create({ model: 'qwen3', messages }, { signal: ctl.signal });
    await waitFor(() => engine.running.size === 1);
    ctl.abort();
    await expect(pending).rejects.toBeInstanceOf(OpenAI.APIUserAbortError);
    const rid = engine.received.at(-1)!.rid;
    await waitFor(() => engine.disconnected.includes(rid));
    await waitFor(() => stack.frontend.inflight() === 0);
  });

  it('stops the engine once a stop string matched', async () => {
    const { engine, stack } = await setup({ reply: () => [9707, ...words(500)], tokenDelayMs: 10 });
    const r = await stack.client.chat.completions.create({ model: 'qwen3', messages, stop: [' the the'] });
    expect(r.choices[0]!.message.content).toBe('Hello');
    expect(r.usage!.completion_tokens).toBeLessThan(10);
    const rid = engine.received.at(-1)!.rid;
    await waitFor(() => engine.disconnected.includes(rid));
  });
});

describe('graceful shutdown', () => {
  it('stops accepting, lets in-flight streams finish, then resolves', async () => {
    const { engine, stack } = await setup({ reply: () => [...words(30), 151645], tokenDelayMs: 15 });
    const stream = await stack.client.chat.completions.create({ model: 'qwen3', messages, stream: true });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    let closed = false;
    const closing = stack.frontend.close(10_000).then(() => (closed = true));
    // New requests are turned away: no listener (refused) or 503 on a kept-alive connection.
    const late = await stack.client.chat.completions.create({ model: 'qwen3', messages }).then(
      () => 'served',
      (e: ApiError) => (e instanceof OpenAI.APIConnectionError ? 'refused' : String(e.status)),
    );
    expect(['refused', '503']).toContain(late);
    expect(closed).toBe(false);
    let text = '';
    let finish: string | null | undefined;
    for (let r = await it.next(); !r.done; r = await it.next()) {
      text += r.value.choices[0]?.delta.content ?? '';
      finish ??= r.value.choices[0]?.finish_reason;
    }
    expect(text).toBe(' the'.repeat(30));
    expect(finish).toBe('stop');
    await closing;
    expect(engine.disconnected).toEqual([]);
  });

  it('cuts streams still running at the deadline and aborts their engine requests', async () => {
    const { engine, stack } = await setup({ reply: () => words(2000), tokenDelayMs: 20 });
    const stream = await stack.client.chat.completions.create({ model: 'qwen3', messages, stream: true });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    const t0 = Date.now();
    await stack.frontend.close(300);
    expect(Date.now() - t0).toBeLessThan(5000);
    await expect(
      (async () => {
        for (let r = await it.next(); !r.done; r = await it.next());
      })(),
    ).rejects.toThrow();
    const rid = engine.received.at(-1)!.rid;
    await waitFor(() => engine.disconnected.includes(rid));
  });
});

describe('readiness', () => {
  it('is unhealthy (503) once no worker can serve the model, and says so to requests', async () => {
    const { engine, stack } = await setup({ reply: () => [9707, 151645] }, { healthIntervalMs: 50 });
    expect((await fetch(`${stack.url}/health`)).status).toBe(200);
    await engine.close();
    await waitFor(async () => (await fetch(`${stack.url}/health`)).status === 503);
    const body = await (await fetch(`${stack.url}/health`)).json();
    expect(body).toMatchObject({ status: 'unhealthy', models: { qwen3: 0 } });
    expect((await fetch(`${stack.url}/live`)).status).toBe(200);
    const e = await stack.client.chat.completions.create({ model: 'qwen3', messages }).catch((err: ApiError) => err);
    expect(e).toBeInstanceOf(OpenAI.InternalServerError);
    expect((e as ApiError).status).toBe(503);
    expect((e as ApiError).code).toBe('no_workers');
  });

  it('takes a worker out as soon as it cannot be reached, and spreads requests round robin', async () => {
    const a = await startFakeSglang({ reply: () => [9707, 151645] });
    const b = await startFakeSglang({ reply: () => [9707, 151645] });
    cleanup.push(() => a.close(), () => b.close());
    const stack = await startStack([a, b]);
    cleanup.push(() => stack.close());
    for (let i = 0; i < 4; i++) await stack.client.completions.create({ model: 'qwen3', prompt: 'x', max_tokens: 2 });
    expect([a.received.length, b.received.length]).toEqual([2, 2]);
    await b.close();
    const outcomes: string[] = [];
    for (let i = 0; i < 4; i++) {
      outcomes.push(await stack.client.completions.create({ model: 'qwen3', prompt: 'x', max_tokens: 2 }).then(() => 'ok', (e: ApiError) => String(e.status)));
    }
    // At most one request hits the dead engine (502); then only the live one is used.
    expect(outcomes.filter((o) => o === '502').length).toBeLessThanOrEqual(1);
    expect(outcomes.filter((o) => o === 'ok').length).toBeGreaterThanOrEqual(3);
    const health = (await (await fetch(`${stack.url}/health`)).json()) as { models: Record<string, number> };
    expect(health.models).toEqual({ qwen3: 1 });
  });
});
