// Bad input and failures as a client sees them: OpenAI error JSON with the right status,
// raised as the openai client's error classes; random bodies never take the server down.

import fc from 'fast-check';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeSglang, type FakeSglang } from './fixtures/fake_sglang.js';
import { startStack, type Stack } from './fixtures/stack.js';
import { HTTP_SERVERS } from '../../src/http/wire.js';

type ApiError = InstanceType<typeof OpenAI.APIError>;

describe.each(HTTP_SERVERS)('over --http-server %s', (httpServer) => {
  let engine: FakeSglang;
  let stack: Stack;
  const messages = [{ role: 'user' as const, content: 'hi' }];

  beforeAll(async () => {
    engine = await startFakeSglang({ reply: () => [9707, 1879, 151645] });
    stack = await startStack([engine], { maxBodyBytes: 64 * 1024, httpServer });
  });

  afterAll(async () => {
    await stack.close();
    await engine.close();
  });

  async function post(path: string, body: string | Buffer, headers: Record<string, string> = { 'content-type': 'application/json' }) {
    const r = await fetch(`${stack.url}${path}`, { method: 'POST', body, headers });
    const text = await r.text();
    let json: unknown = null;
    try {
      json = JSON.parse(text);
    } catch {
      /* asserted by the caller */
    }
    return { status: r.status, json: json as { error: { message: string; type: string; param: string | null; code: string } }, text };
  }

  async function rejection(p: Promise<unknown>): Promise<ApiError> {
    try {
      await p;
    } catch (e) {
      return e as ApiError;
    }
    throw new Error('expected the request to fail');
  }

  describe('validation errors', () => {
    it('rejects malformed JSON and non-object bodies with 400 invalid_json / invalid_request', async () => {
      const bad = await post('/v1/chat/completions', '{"model": "qwen3", ');
      expect(bad.status).toBe(400);
      expect(bad.json.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_json', param: null });
      expect(bad.json.error.message).toMatch(/not valid JSON/);
      const arr = await post('/v1/completions', '[1,2]');
      expect(arr.status).toBe(400);
      expect(arr.json.error.code).toBe('invalid_request');
    });

    it('names missing and wrongly typed fields', async () => {
      const cases: [unknown, string, string][] = [
        [{ model: 'qwen3' }, 'missing_field', 'messages'],
        [{ messages }, 'missing_field', 'model'],
        [{ model: 'qwen3', messages, temperature: 'hot' }, 'invalid_type', 'temperature'],
        [{ model: 'qwen3', messages, temperature: 3 }, 'invalid_request', 'temperature'],
        [{ model: 'qwen3', messages, max_tokens: 0 }, 'invalid_request', 'max_tokens'],
        [{ model: 'qwen3', messages, max_tokens: 1.5 }, 'invalid_type', 'max_tokens'],
        [{ model: 'qwen3', messages: 'hi' }, 'invalid_type', 'messages'],
        [{ model: 'qwen3', messages: [] }, 'invalid_request', 'messages'],
        [{ model: 'qwen3', messages: [{ role: 'wizard', content: 'x' }] }, 'invalid_request', 'messages[0].role'],
        [{ model: 'qwen3', messages: [{ content: 'x' }] }, 'missing_field', 'messages[0].role'],
        [{ model: 'qwen3', messages: [{ role: 'user', content: 5 }] }, 'invalid_type', 'messages[0].content'],
        [{ model: 'qwen3', messages, stop: [1] }, 'invalid_type', 'stop[0]'],
        [{ model: 'qwen3', messages, stop: ['a', null] }, 'invalid_type', 'stop[1]'],
        [{ model: 'qwen3', messages, stop: 'x'.repeat(1001) }, 'invalid_request', 'stop'],
        [{ model: 'qwen3', messages, stop: Array.from({ length: 17 }, (_, i) => `s${i}`) }, 'invalid_request', 'stop'],
        [{ model: 'qwen3', messages, stream: 'yes' }, 'invalid_type', 'stream'],
        [{ model: 'qwen3', messages, stream_options: { include_usage: true } }, 'invalid_request', 'stream_options'],
        [{ model: 'qwen3', messages, tools: [{ type: 'function' }] }, 'invalid_request', 'tools[0]'],
      ];
      for (const [body, code, param] of cases) {
        const r = await post('/v1/chat/completions', JSON.stringify(body));
        expect({ status: r.status, code: r.json.error.code, param: r.json.error.param }).toEqual({ status: 400, code, param });
      }
      // The messages say what is wrong with the value sent.
      const huge = await post('/v1/chat/completions', JSON.stringify({ model: 'qwen3', messages, max_tokens: 1e30 }));
      expect(huge.json.error.message).toBe("'max_tokens' must be an integer from 1 to 2^53-1, got 1e+30");
      const stop = await post('/v1/chat/completions', JSON.stringify({ model: 'qwen3', messages, stop: [1] }));
      expect(stop.json.error.message).toBe("'stop[0]' must be a string, got number");
      const c = await post('/v1/completions', JSON.stringify({ model: 'qwen3', prompt: [1, -2] }));
      expect([c.status, c.json.error.code, c.json.error.param]).toEqual([400, 'invalid_type', 'prompt']);
    });

    it('raises BadRequestError for unsupported parameters instead of ignoring them', async () => {
      const unsupported: [Record<string, unknown>, string][] = [
        [{ n: 2 }, 'n'],
        [{ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: {} } } }, 'response_format'],
        [{ tool_choice: 'required' }, 'tool_choice'],
        [{ logit_bias: { '5': 10 } }, 'logit_bias'],
        [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'http://x' } }] }] }, 'messages[0].content[0].type'],
        [{ functions: [{ name: 'f', parameters: {} }] }, 'functions'],
        [{ function_call: { name: 'f' } }, 'function_call'],
        [{ reasoning_effort: 'low' }, 'reasoning_effort'],
        [{ verbosity: 'low' }, 'verbosity'],
        [{ modalities: ['text', 'audio'] }, 'modalities'],
        [{ web_search_options: {} }, 'web_search_options'],
      ];
      for (const [extra, param] of unsupported) {
        const e = await rejection(stack.client.chat.completions.create({ model: 'qwen3', messages, ...extra } as never));
        expect(e).toBeInstanceOf(OpenAI.BadRequestError);
        expect(e.code).toBe('unsupported_parameter');
        expect(e.param).toBe(param);
      }
      const batch = await rejection(stack.client.completions.create({ model: 'qwen3', prompt: ['a', 'b'] }));
      expect(batch).toBeInstanceOf(OpenAI.BadRequestError);
      expect(batch.message).toMatch(/batches of 2 prompts/);
      // Text content parts and the default response_format are fine.
      const ok = await stack.client.chat.completions.create({ model: 'qwen3', messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }], response_format: { type: 'text' }, n: 1 });
      expect(ok.choices[0]!.message.content).toBe('Hello world');
    });

    it('raises NotFoundError for an unknown model', async () => {
      const e = await rejection(stack.client.chat.completions.create({ model: 'gpt-9', messages }));
      expect(e).toBeInstanceOf(OpenAI.NotFoundError);
      expect(e.status).toBe(404);
      expect(e.code).toBe('model_not_found');
      expect(e.param).toBe('model');
    });

    it('rejects prompts longer than the context with context_length_exceeded', async () => {
      const long = 'word '.repeat(5000);
      const e = await rejection(stack.client.chat.completions.create({ model: 'qwen3', messages: [{ role: 'user', content: long }] }));
      expect(e).toBeInstanceOf(OpenAI.BadRequestError);
      expect(e.code).toBe('context_length_exceeded');
      expect(e.message).toMatch(/context length is 4096 tokens/);
      const withMax = await rejection(stack.client.completions.create({ model: 'qwen3', prompt: 'word '.repeat(3000), max_tokens: 2000 }));
      expect(withMax.code).toBe('context_length_exceeded');
      expect(withMax.param).toBe('max_tokens');
      expect(withMax.message).toMatch(/max_tokens asks for 2000 more/);
      // Chat names whichever of the two the client sent.
      for (const param of ['max_tokens', 'max_completion_tokens']) {
        const chat = await rejection(stack.client.chat.completions.create({ model: 'qwen3', messages: [{ role: 'user', content: 'word '.repeat(3000) }], [param]: 2000 }));
        expect(chat.param).toBe(param);
        expect(chat.message).toContain(`${param} asks for 2000 more`);
      }
      const ids = await rejection(stack.client.completions.create({ model: 'qwen3', prompt: [999999] }));
      expect(ids.message).toMatch(/outside the vocabulary/);
    });

    it('limits the body size (413) and the content type (415), and routes (404/405)', async () => {
      const big = await post('/v1/chat/completions', JSON.stringify({ model: 'qwen3', messages: [{ role: 'user', content: 'x'.repeat(100_000) }] }));
      expect(big.status).toBe(413);
      expect(big.json.error.code).toBe('payload_too_large');
      // Chunked upload (no content-length) over the limit is cut too.
      const chunked = await fetch(`${stack.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: new ReadableStream({
          start(c) {
            for (let i = 0; i < 10; i++) c.enqueue(new Uint8Array(16 * 1024).fill(32));
            c.close();
          },
        }),
        duplex: 'half',
      } as RequestInit);
      expect(chunked.status).toBe(413);
      expect(((await chunked.json()) as { error: { code: string } }).error.code).toBe('payload_too_large');
      const form = await post('/v1/chat/completions', 'a=b', { 'content-type': 'application/x-www-form-urlencoded' });
      expect([form.status, form.json.error.code]).toEqual([415, 'unsupported_media_type']);
      const missing = await fetch(`${stack.url}/v2/anything`);
      expect(missing.status).toBe(404);
      expect(((await missing.json()) as { error: { code: string } }).error.code).toBe('not_found');
      const wrong = await fetch(`${stack.url}/v1/completions`);
      expect(wrong.status).toBe(405);
      // Still serving after all that.
      expect((await stack.client.chat.completions.create({ model: 'qwen3', messages })).choices[0]!.message.content).toBe('Hello world');
    });

    it('never crashes on random bodies: every answer is JSON, errors in OpenAI shape', async () => {
      const valid = { model: 'qwen3', messages, max_tokens: 2 };
      const bodies = fc.oneof(
        fc.json().map((j) => Buffer.from(j)),
        fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
        fc.string({ unit: 'binary', maxLength: 200 }).map((s) => Buffer.from(s)),
        // Valid requests with one field replaced by anything.
        fc.tuple(fc.constantFrom('model', 'messages', 'max_tokens', 'stop', 'temperature', 'stream', 'prompt', 'tools', 'stream_options', 'n', 'seed', 'top_k'), fc.jsonValue()).map(([k, v]) => Buffer.from(JSON.stringify({ ...valid, [k]: v }))),
        fc.jsonValue().map((v) => Buffer.from(JSON.stringify({ ...valid, messages: [v] }))),
      );
      await fc.assert(
        fc.asyncProperty(bodies, fc.constantFrom('/v1/chat/completions', '/v1/completions'), async (body, path) => {
          const r = await post(path, body);
          // A random body can be a valid streaming request: then the answer is a whole SSE stream.
          if (r.status === 200 && r.text.startsWith('data: ')) {
            expect(r.text.trimEnd().endsWith('data: [DONE]')).toBe(true);
            return;
          }
          expect(r.json, r.text.slice(0, 200)).not.toBeNull();
          if (r.status === 200) return;
          expect([400, 404, 413]).toContain(r.status);
          expect(typeof r.json.error.message).toBe('string');
          expect(typeof r.json.error.type).toBe('string');
          expect(typeof r.json.error.code).toBe('string');
          expect(r.json.error.param === null || typeof r.json.error.param === 'string').toBe(true);
        }),
        { numRuns: 300 },
      );
      expect((await fetch(`${stack.url}/health`)).status).toBe(200);
    });
  });

  describe('API keys', () => {
    it('requires a Bearer key on /v1 routes when keys are set, and not on health/metrics', async () => {
      const keyed = await startStack([engine], { apiKeys: ['sk-one', 'sk-two'], apiKey: 'sk-two' });
      try {
        expect((await keyed.client.chat.completions.create({ model: 'qwen3', messages })).choices[0]!.message.content).toBe('Hello world');
        const wrong = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: 'sk-three', maxRetries: 0 });
        const e = await rejection(wrong.chat.completions.create({ model: 'qwen3', messages }));
        expect(e).toBeInstanceOf(OpenAI.AuthenticationError);
        expect(e.code).toBe('invalid_api_key');
        expect(e.type).toBe('authentication_error');
        await expect(wrong.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
        const none = await fetch(`${keyed.url}/v1/models`);
        expect(none.status).toBe(401);
        expect((await fetch(`${keyed.url}/health`)).status).toBe(200);
        expect((await fetch(`${keyed.url}/metrics`)).status).toBe(200);
      } finally {
        await keyed.close();
      }
    });
  });

  describe('engine failures', () => {
    it('maps a refusing engine to 400 and a failing one to 502, before any byte of a stream', async () => {
      const refusing = await startFakeSglang({ failStatus: 400 });
      const failing = await startFakeSglang({ failStatus: 500 });
      const a = await startStack([refusing]);
      const b = await startStack([failing]);
      try {
        const e1 = await rejection(a.client.chat.completions.create({ model: 'qwen3', messages, stream: true }));
        expect(e1).toBeInstanceOf(OpenAI.BadRequestError);
        expect(e1.message).toMatch(/engine .* returned 400/);
        const e2 = await rejection(b.client.chat.completions.create({ model: 'qwen3', messages }));
        expect(e2).toBeInstanceOf(OpenAI.InternalServerError);
        expect(e2.status).toBe(502);
        expect(e2.code).toBe('engine_error');
      } finally {
        await Promise.all([a.close(), b.close()]);
        await Promise.all([refusing.close(), failing.close()]);
      }
    });

    it('reports an engine that dies mid-stream as an error event, and an engine abort as an error', async () => {
      const dropping = await startFakeSglang({ reply: () => [9707, 1879, 11, 1879], dropAfter: 2 });
      const aborting = await startFakeSglang({ reply: () => [9707, 1879, 11, 1879], abortAfter: 2 });
      const a = await startStack([dropping]);
      const b = await startStack([aborting]);
      try {
        const stream = await a.client.chat.completions.create({ model: 'qwen3', messages, stream: true });
        let text = '';
        const e = await rejection(
          (async () => {
            for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
          })(),
        );
        expect(text).toBe('Hello world');
        expect(e).toBeInstanceOf(OpenAI.APIError);
        expect(e.message).toMatch(/stream broke|ended/);
        const e2 = await rejection(b.client.chat.completions.create({ model: 'qwen3', messages }));
        expect(e2.status).toBe(502);
        expect(e2.message).toMatch(/engine aborted the request: fake abort/);
      } finally {
        await Promise.all([a.close(), b.close()]);
        await Promise.all([dropping.close(), aborting.close()]);
      }
    });
  });
});
