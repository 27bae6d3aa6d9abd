// End to end with the real mocker (a simulated SGLang engine over HTTP): the openai client
// against the frontend in front of two mocker engines. Output is whatever the engine
// generates (deterministic per prompt), so checks compare runs with each other: streaming
// against not, stop strings against the uncut text, cached tokens on a repeated prompt,
// and the engine's own load after a client disconnect.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SglangHttpEngine } from '../../src/engine/sglang_http.js';
import { startMocker, type MockerHandle } from '../../src/mocker/index.js';
import { qwen3, startStack, waitFor, type Stack } from './fixtures/stack.js';

let mockers: MockerHandle[];
let stack: Stack;
let model: string;

beforeAll(async () => {
  mockers = await Promise.all([0, 1].map(() => startMocker({ port: 0, pageSize: 16, speedupRatio: 50 })));
  const card = await new SglangHttpEngine(mockers[0]!.url).modelCard();
  model = card.servedModelName;
  stack = await startStack(mockers, { model: qwen3(model, card.contextLength) });
});

afterAll(async () => {
  await stack.close();
  await Promise.all(mockers.map((m) => m.close()));
});

const ask = (content: string) => [{ role: 'user' as const, content }];

async function load(m: MockerHandle): Promise<number> {
  const body = (await (await fetch(`${m.url}/get_load`)).json()) as { num_reqs: number }[];
  return body.reduce((n, r) => n + r.num_reqs, 0);
}

describe('with mocker engines', () => {
  it('answers chat and completions, streaming and not, with the same text and usage', async () => {
    const messages = ask('Explain prefix caching in two sentences.');
    const full = await stack.client.chat.completions.create({ model, messages, max_tokens: 40 });
    const text = full.choices[0]!.message.content!;
    expect(text.length).toBeGreaterThan(0);
    expect(['stop', 'length']).toContain(full.choices[0]!.finish_reason);
    const pre = qwen3().preprocessor;
    const promptTokens = (await pre.encodeChat(pre.renderChat({ messages, addGenerationPrompt: true }))).length;
    expect(full.usage!.prompt_tokens).toBe(promptTokens);
    expect(full.usage!.completion_tokens).toBeGreaterThan(0);
    expect(full.usage!.completion_tokens).toBeLessThanOrEqual(40);

    const stream = await stack.client.chat.completions.create({ model, messages, max_tokens: 40, stream: true, stream_options: { include_usage: true } });
    let streamed = '';
    let usage;
    for await (const c of stream) {
      streamed += c.choices[0]?.delta.content ?? '';
      if (c.usage) usage = c.usage;
    }
    expect(streamed).toBe(text);
    expect(usage!.completion_tokens).toBe(full.usage!.completion_tokens);

    const comp = await stack.client.completions.create({ model, prompt: 'Routers and caches', max_tokens: 12, ...({ ignore_eos: true } as object) });
    expect(comp.choices[0]!.finish_reason).toBe('length');
    expect(comp.usage!.completion_tokens).toBe(12);
    const ids = await stack.client.completions.create({ model, prompt: [9707, 1879], max_tokens: 5, ...({ ignore_eos: true } as object) });
    expect(ids.usage!.prompt_tokens).toBe(2);
    expect(ids.choices[0]!.text.length).toBeGreaterThan(0);
  });

  it('reports the prefix-cache hits the engine makes on a repeated prompt', async () => {
    const messages = ask('A long shared system context. '.repeat(40));
    const cached: number[] = [];
    // Round robin over two engines: the third request is the second on the same engine.
    for (let i = 0; i < 3; i++) cached.push((await stack.client.chat.completions.create({ model, messages, max_tokens: 4 })).usage!.prompt_tokens_details!.cached_tokens!);
    expect(cached[0]).toBe(0);
    expect(cached[2]).toBeGreaterThan(200);
    expect(cached[2]! % 16).toBe(0); // whole pages of 16 tokens
  });

  it('cuts at a stop string taken from the uncut output', async () => {
    const messages = ask('List some words.');
    const params = { model, messages, max_tokens: 40, ...({ ignore_eos: true } as object) };
    const text = (await stack.client.chat.completions.create(params)).choices[0]!.message.content!;
    const words = text.split(' ').filter(Boolean);
    const stop = ` ${words[Math.floor(words.length / 2)]}`;
    const cut = await stack.client.chat.completions.create({ ...params, stop });
    expect(cut.choices[0]!.message.content).toBe(text.slice(0, text.indexOf(stop)));
    expect(cut.choices[0]!.finish_reason).toBe('stop');
    const stream = await stack.client.chat.completions.create({ ...params, stop, stream: true });
    let streamed = '';
    for await (const c of stream) streamed += c.choices[0]?.delta.content ?? '';
    expect(streamed).toBe(text.slice(0, text.indexOf(stop)));
  });

  it('aborts the request in the engine when the client disconnects', async () => {
    const slow = await startMocker({ port: 0, pageSize: 16, speedupRatio: 1 });
    const single = await startStack([slow], { model: qwen3(model, 40960) });
    try {
      const stream = await single.client.chat.completions.create({ model, messages: ask('Go on forever.'), max_tokens: 20000, stream: true, ...({ ignore_eos: true } as object) });
      let chunks = 0;
      for await (const _ of stream) {
        if (++chunks === 2) expect(await load(slow)).toBe(1);
        if (chunks === 3) break;
      }
      await waitFor(async () => (await load(slow)) === 0, 10_000);
      await waitFor(() => single.frontend.inflight() === 0);
    } finally {
      await single.close();
      await slow.close();
    }
  });

  it('spreads requests over both engines', async () => {
    const text = await (await fetch(`${stack.url}/metrics`)).text();
    for (const m of mockers) expect(text).toMatch(new RegExp(`kvgate_frontend_worker_requests_total\\{model="${model.replace('/', '\\/')}",worker="${m.url}"\\} [1-9]`));
  });
});
