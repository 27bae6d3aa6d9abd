// The OpenAI API as a client sees it: the official `openai` npm client against a running
// frontend over SGLang-protocol engines whose output is scripted (real Qwen3 token ids), so
// content, usage, stop strings and finish reasons can be checked exactly.

import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeSglang, type FakeSglang } from './fixtures/fake_sglang.js';
import { metric, qwen3, startStack, type Stack } from './fixtures/stack.js';
import { HTTP_SERVERS } from '../../src/http/wire.js';

type ApiError = InstanceType<typeof OpenAI.APIError>;

const TEXT = 'The quick brown fox jumps over the lazy dog. Café, 你好, 🫠 done.';
const EOS = 151645;

describe.each(HTTP_SERVERS)('over --http-server %s', (httpServer) => {
  let engine: FakeSglang;
  let stack: Stack;
  let replyIds: number[];

  beforeAll(async () => {
    const model = qwen3();
    replyIds = await model.preprocessor.tokenizer.encode(TEXT, false);
    engine = await startFakeSglang({ reply: () => [...replyIds, EOS, 7, 7], cachedTokens: 5 });
    stack = await startStack([engine], { model, httpServer });
  });

  afterAll(async () => {
    await stack.close();
    await engine.close();
  });

  async function promptTokens(messages: { role: string; content: string }[]): Promise<number> {
    const pre = qwen3().preprocessor;
    return (await pre.encodeChat(pre.renderChat({ messages, addGenerationPrompt: true }))).length;
  }

  describe('chat completions', () => {
    const messages = [
      { role: 'system' as const, content: 'You are terse.' },
      { role: 'user' as const, content: 'Say the pangram.' },
    ];

    it('answers with the detokenized engine output and usage', async () => {
      const r = await stack.client.chat.completions.create({ model: 'qwen3', messages });
      expect(r.object).toBe('chat.completion');
      expect(r.id).toMatch(/^chatcmpl-/);
      expect(r.model).toBe('qwen3');
      expect(r.choices).toHaveLength(1);
      expect(r.choices[0]!.message).toMatchObject({ role: 'assistant', content: TEXT });
      expect(r.choices[0]!.finish_reason).toBe('stop');
      const prompt = await promptTokens(messages);
      expect(r.usage).toEqual({
        prompt_tokens: prompt,
        completion_tokens: replyIds.length + 1, // the EOS token counts, its text does not show
        total_tokens: prompt + replyIds.length + 1,
        prompt_tokens_details: { cached_tokens: 5 },
      });
      // The engine got the chat template's token ids and the model's EOS ids as stop tokens.
      const sent = engine.received.at(-1)!;
      expect(sent.input_ids).toHaveLength(prompt);
      expect(sent.input_ids.slice(0, 3)).toEqual([151644, 8948, 198]);
      expect((sent.sampling_params['stop_token_ids'] as number[]).sort()).toEqual([151643, 151645]);
      expect(sent.sampling_params['max_new_tokens']).toBe(4096 - prompt);
    });

    it('streams the same text in OpenAI chunks, with a usage chunk when asked', async () => {
      const stream = await stack.client.chat.completions.create({ model: 'qwen3', messages, stream: true, stream_options: { include_usage: true } });
      const chunks = [];
      for await (const c of stream) chunks.push(c);
      expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
      const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
      expect(text).toBe(TEXT);
      const finish = chunks.filter((c) => c.choices[0]?.finish_reason);
      expect(finish).toHaveLength(1);
      expect(finish[0]!.choices[0]!.finish_reason).toBe('stop');
      const last = chunks.at(-1)!;
      expect(last.choices).toEqual([]);
      expect(last.usage).toMatchObject({ completion_tokens: replyIds.length + 1, prompt_tokens_details: { cached_tokens: 5 } });
      for (const c of chunks.slice(0, -1)) expect(c.usage).toBeNull();
      expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    });

    it('streams without usage by default', async () => {
      const stream = await stack.client.chat.completions.create({ model: 'qwen3', messages, stream: true });
      const chunks = [];
      for await (const c of stream) chunks.push(c);
      expect(chunks.every((c) => c.usage === undefined && c.choices.length === 1)).toBe(true);
    });

    it('stops at max_completion_tokens with finish_reason length', async () => {
      const r = await stack.client.chat.completions.create({ model: 'qwen3', messages, max_completion_tokens: 4 });
      expect(r.choices[0]!.finish_reason).toBe('length');
      expect(r.usage!.completion_tokens).toBe(4);
      expect(r.choices[0]!.message.content).toBe(qwen3().preprocessor.tokenizer.decode(replyIds.slice(0, 4)));
      expect(engine.received.at(-1)!.sampling_params['max_new_tokens']).toBe(4);
    });

    it('cuts at stop strings, streaming or not, without emitting them', async () => {
      const r = await stack.client.chat.completions.create({ model: 'qwen3', messages, stop: ['lazy', 'nothing'] });
      expect(r.choices[0]!.message.content).toBe('The quick brown fox jumps over the ');
      expect(r.choices[0]!.finish_reason).toBe('stop');
      const stream = await stack.client.chat.completions.create({ model: 'qwen3', messages, stream: true, stop: 'Café, 你' });
      let text = '';
      for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
      expect(text).toBe('The quick brown fox jumps over the lazy dog. ');
    });

    it('passes sampling parameters to the engine', async () => {
      await stack.client.chat.completions.create({
        model: 'qwen3',
        messages,
        temperature: 0.3,
        top_p: 0.8,
        seed: 7,
        frequency_penalty: 0.5,
        presence_penalty: -0.5,
        max_tokens: 20,
        // SGLang/vLLM extensions
        ...({ top_k: 40, min_p: 0.05, min_tokens: 2, repetition_penalty: 1.2, ignore_eos: true, stop_token_ids: [11] } as object),
      });
      expect(engine.received.at(-1)!.sampling_params).toEqual({
        max_new_tokens: 20, temperature: 0.3, top_p: 0.8, top_k: 40, min_p: 0.05, sampling_seed: 7,
        frequency_penalty: 0.5, presence_penalty: -0.5, repetition_penalty: 1.2, min_new_tokens: 2, ignore_eos: true,
        stop_token_ids: [11], // ignore_eos: the EOS ids are not sent
      });
    });

    it('honours x-request-id and generates one otherwise', async () => {
      const given = await stack.client.chat.completions.create({ model: 'qwen3', messages }, { headers: { 'x-request-id': 'trace-42' } }).withResponse();
      expect(given.request_id).toBe('trace-42');
      const generated = await stack.client.chat.completions.create({ model: 'qwen3', messages }).withResponse();
      expect(generated.request_id).toMatch(/^[0-9a-f-]{36}$/);
      const streamed = await stack.client.chat.completions.create({ model: 'qwen3', messages, stream: true }, { headers: { 'x-request-id': 'trace-43' } }).withResponse();
      expect(streamed.request_id).toBe('trace-43');
      for await (const _ of streamed.data) void _;
      const err = await stack.client.chat.completions.create({ model: 'nope', messages }, { headers: { 'x-request-id': 'trace-44' } }).catch((e: unknown) => e);
      expect((err as ApiError).requestID).toBe('trace-44');
    });
  });

  describe('completions', () => {
    it('completes a text prompt, streaming and not', async () => {
      const r = await stack.client.completions.create({ model: 'qwen3', prompt: 'Once upon a time' });
      expect(r.object).toBe('text_completion');
      expect(r.choices[0]!.text).toBe(TEXT);
      expect(r.usage!.prompt_tokens).toBe((await qwen3().preprocessor.encodeCompletion('Once upon a time')).length);
      const stream = await stack.client.completions.create({ model: 'qwen3', prompt: 'Once upon a time', stream: true, stream_options: { include_usage: true }, stop: ['.'] });
      const chunks = [];
      for await (const c of stream) chunks.push(c);
      expect(chunks.map((c) => c.choices[0]?.text ?? '').join('')).toBe('The quick brown fox jumps over the lazy dog');
      expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('stop');
      expect(chunks.at(-1)!.usage!.prompt_tokens).toBe(r.usage!.prompt_tokens);
    });

    it('takes token ids, and one-element prompt arrays', async () => {
      const ids = [9707, 1879, 11];
      const r = await stack.client.completions.create({ model: 'qwen3', prompt: ids, max_tokens: 3 });
      expect(engine.received.at(-1)!.input_ids).toEqual(ids);
      expect(r.usage!.prompt_tokens).toBe(3);
      expect(r.choices[0]!.finish_reason).toBe('length');
      await stack.client.completions.create({ model: 'qwen3', prompt: [ids], max_tokens: 1 });
      expect(engine.received.at(-1)!.input_ids).toEqual(ids);
      await stack.client.completions.create({ model: 'qwen3', prompt: ['Hello'], max_tokens: 1 });
      expect(engine.received.at(-1)!.input_ids).toEqual([9707]);
    });
  });

  describe('models, health, metrics', () => {
    it('lists the served model', async () => {
      const list = await stack.client.models.list();
      expect(list.data.map((m) => m.id)).toEqual(['qwen3']);
      expect((list.data[0] as unknown as { max_model_len: number }).max_model_len).toBe(4096);
      expect((await stack.client.models.retrieve('qwen3')).id).toBe('qwen3');
      await expect(stack.client.models.retrieve('other')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    });

    it('is live and ready', async () => {
      expect((await fetch(`${stack.url}/live`)).status).toBe(200);
      const h = await fetch(`${stack.url}/health`);
      expect(h.status).toBe(200);
      expect(await h.json()).toMatchObject({ status: 'healthy', models: { qwen3: 1 } });
    });

    it('exports request, latency, token, error and routing metrics', async () => {
      const text = await (await fetch(`${stack.url}/metrics`)).text();
      const m = (name: string, labels?: Record<string, string>) => metric(text, `kvgate_frontend_${name}`, labels);
      expect(m('requests_total', { endpoint: 'chat_completions', request_type: 'unary', status: 'success' })).toBeGreaterThan(3);
      expect(m('requests_total', { endpoint: 'completions', request_type: 'stream', status: 'success' })).toBeGreaterThan(0);
      expect(m('time_to_first_token_seconds_count', { model: 'qwen3' })).toBeGreaterThan(5);
      expect(m('inter_token_latency_seconds_count', { model: 'qwen3' })).toBeGreaterThan(10);
      expect(m('request_duration_seconds_count', { model: 'qwen3' })).toBeGreaterThan(5);
      expect(m('input_sequence_tokens_sum', { model: 'qwen3' })).toBeGreaterThan(20);
      expect(m('output_sequence_tokens_sum', { model: 'qwen3' })).toBeGreaterThan(20);
      expect(m('cached_tokens_sum', { model: 'qwen3' })).toBeGreaterThan(0);
      expect(m('worker_requests_total', { worker: engine.url })).toBeGreaterThan(5);
      expect(m('errors_total', { code: 'model_not_found' })).toBeGreaterThan(0);
      expect(m('inflight_requests', { model: 'qwen3' })).toBe(0);
      expect(m('preprocess_seconds_count', { model: 'qwen3' })).toBeGreaterThan(5);
    });
  });
});
