// The mocker's OpenAI routes over real sockets, in SGLang's shapes (issue 13): routers pass
// /v1/chat/completions and /v1/completions straight to the engine.

import { afterEach, describe, expect, it } from 'vitest';
import { closeAll, get, inFlight, mocker, post, sseEvents } from './helpers.js';
import { syntheticLogprob } from '../../src/mocker/logprobs.js';

afterEach(closeAll);

const chat = { model: 'm', messages: [{ role: 'user', content: 'Hello there' }] };

describe('POST /v1/chat/completions', () => {
  it('answers chat.completion with SGLang’s extras, the prompt rendered by the chat template', async () => {
    const m = await mocker();
    const r = await post(`${m.url}/v1/chat/completions`, { ...chat, max_tokens: 5, ignore_eos: true });
    expect(r.status).toBe(200);
    const b = r.json();
    expect(Object.keys(b)).toEqual(['id', 'object', 'created', 'model', 'choices', 'usage', 'metadata']);
    expect(b).toMatchObject({ object: 'chat.completion', model: 'm', metadata: { weight_version: 'default' } });
    expect(b.choices).toHaveLength(1);
    expect(b.choices[0]).toMatchObject({ index: 0, message: { role: 'assistant', reasoning_content: null, tool_calls: null }, logprobs: null, finish_reason: 'length', matched_stop: null });
    // Qwen3's template around the message, one token per byte: the same count /generate gives.
    const rendered = '<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n';
    const same = (await post(`${m.url}/generate`, { text: rendered, sampling_params: { max_new_tokens: 5, ignore_eos: true } })).json();
    expect(b.usage).toMatchObject({ prompt_tokens: Buffer.byteLength(rendered), completion_tokens: 5, total_tokens: Buffer.byteLength(rendered) + 5, reasoning_tokens: 0 });
    expect(b.choices[0].message.content).toBe(same.text);
    // The second request found the first's prefix cached.
    expect(same.meta_info.cached_tokens).toBeGreaterThan(0);
  });

  it('streams a role chunk, content deltas, a finish chunk, the usage chunk, then [DONE]', async () => {
    const m = await mocker();
    const r = await post(`${m.url}/v1/chat/completions`, { ...chat, max_tokens: 4, ignore_eos: true, stream: true, stream_options: { include_usage: true } });
    const ev = sseEvents(r.text) as any[];
    expect(ev.at(-1)).toBe('[DONE]');
    expect(ev[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    const content = ev.slice(1, -3);
    expect(content).toHaveLength(4);
    for (const c of content) expect(c).toMatchObject({ object: 'chat.completion.chunk', choices: [{ index: 0, finish_reason: null }] });
    expect(ev.at(-3).choices[0]).toMatchObject({ delta: {}, finish_reason: 'length' });
    expect(ev.at(-2)).toMatchObject({ choices: [], usage: { completion_tokens: 4 } });
    const whole = (await post(`${m.url}/v1/chat/completions`, { ...chat, max_tokens: 4, ignore_eos: true })).json();
    expect(content.map((c) => c.choices[0].delta.content).join('')).toBe(whole.choices[0].message.content);
  });

  it('answers n > 1 with n choices and logprobs in OpenAI’s shape', async () => {
    const m = await mocker();
    const b = (await post(`${m.url}/v1/chat/completions`, { ...chat, n: 3, max_tokens: 3, ignore_eos: true, logprobs: true, top_logprobs: 2 })).json();
    expect(b.choices.map((c: any) => c.index)).toEqual([0, 1, 2]);
    const lp = b.choices[0].logprobs.content;
    expect(lp).toHaveLength(3);
    expect(lp.map((e: any) => e.token).join('')).toBe(b.choices[0].message.content);
    for (const e of lp) {
      expect(e.bytes).toEqual([...Buffer.from(e.token)]);
      expect(e.top_logprobs).toHaveLength(2);
      expect(e.top_logprobs[0]).toEqual({ token: e.token, bytes: e.bytes, logprob: e.logprob });
    }
    // Prompt tokens count once for the n samples.
    expect(b.usage.completion_tokens).toBe(9);
    expect(b.usage.prompt_tokens).toBe(b.usage.total_tokens - 9);
    expect(b.usage.prompt_tokens).toBeLessThan(100);
    expect(await inFlight(m)).toBe(0);
  });

  it('answers bad bodies with SGLang’s OpenAI ErrorResponse', async () => {
    const m = await mocker();
    for (const [body, msg] of [
      [{ messages: [] }, /^messages: /],
      [{ ...chat, max_tokens: 'many' }, /^max_tokens: Input should be a valid integer/],
      [{ ...chat, messages: [{ role: 'wizard', content: 'x' }] }, /role/],
      ['{not json', /^JSON decode error/],
      [{ ...chat, max_tokens: 1 << 20 }, /maximum context length/],
    ] as const) {
      const r = await post(`${m.url}/v1/chat/completions`, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json()).toMatchObject({ object: 'error', type: 'BadRequestError', param: null, code: 400 });
      expect(r.json().message).toMatch(msg);
    }
    expect((await get(`${m.url}/v1/chat/completions`)).status).toBe(405);
  });
});

describe('POST /v1/completions', () => {
  it('answers text_completion for a prompt string, token ids and a list of prompts', async () => {
    const m = await mocker();
    const one = (await post(`${m.url}/v1/completions`, { prompt: 'The cache', max_tokens: 3, ignore_eos: true })).json();
    expect(one).toMatchObject({ object: 'text_completion', choices: [{ index: 0, logprobs: null, finish_reason: 'length' }], usage: { prompt_tokens: 9, completion_tokens: 3 } });
    const gen = (await post(`${m.url}/generate`, { text: 'The cache', sampling_params: { max_new_tokens: 3, ignore_eos: true } })).json();
    expect(one.choices[0].text).toBe(gen.text);
    const ids = (await post(`${m.url}/v1/completions`, { prompt: [1, 2, 3, 4], max_tokens: 1 })).json();
    expect(ids.usage.prompt_tokens).toBe(4);
    const list = (await post(`${m.url}/v1/completions`, { prompt: ['a', 'bb'], n: 2, max_tokens: 1 })).json();
    expect(list.choices).toHaveLength(4);
    expect(list.usage.prompt_tokens).toBe(3);
  });

  it('maps logprobs = k to top-k lists with text offsets, and streams deltas with the finish on the last', async () => {
    const m = await mocker();
    const b = (await post(`${m.url}/v1/completions`, { prompt: [7, 8], max_tokens: 3, ignore_eos: true, logprobs: 2 })).json();
    const lp = b.choices[0].logprobs;
    expect(lp.tokens.join('')).toBe(b.choices[0].text);
    expect(lp.token_logprobs).toHaveLength(3);
    expect(lp.text_offset[0]).toBe(0);
    expect(lp.text_offset[1]).toBe(lp.tokens[0].length);
    for (const top of lp.top_logprobs) expect(Object.keys(top).length).toBeLessThanOrEqual(2);
    const s = sseEvents((await post(`${m.url}/v1/completions`, { prompt: [7, 8], max_tokens: 3, ignore_eos: true, logprobs: 2, stream: true })).text) as any[];
    expect(s.at(-1)).toBe('[DONE]');
    const chunks = s.slice(0, -1);
    expect(chunks.map((c) => c.choices[0].finish_reason)).toEqual([null, null, 'length']);
    expect(chunks.map((c) => c.choices[0].text).join('')).toBe(b.choices[0].text);
    expect(chunks.flatMap((c) => c.choices[0].logprobs.token_logprobs)).toEqual(lp.token_logprobs);
    expect(chunks[1].choices[0].logprobs.text_offset[0]).toBe(chunks[0].choices[0].text.length);
    // The same values /generate reports for the same tokens (position 2: after the 2-token prompt).
    const gen = (await post(`${m.url}/generate`, { input_ids: [7, 8], sampling_params: { max_new_tokens: 3, ignore_eos: true } })).json();
    expect(lp.token_logprobs).toEqual(gen.output_ids.map((id: number, k: number) => syntheticLogprob(id, 2 + k)));
  });

  it('lists the model at /v1/models', async () => {
    const m = await mocker({ servedModelName: 'mock-model' });
    expect((await get(`${m.url}/v1/models`)).json()).toMatchObject({ object: 'list', data: [{ id: 'mock-model', object: 'model', owned_by: 'sglang' }] });
  });
});
