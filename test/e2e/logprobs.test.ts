// Log probabilities through a real `kvgate serve` over mocker engines and the official openai
// client: chat (logprobs + top_logprobs, unary and streamed) and completions (logprobs N), on
// an aggregated worker and on a prefill/decode pair; bad values get OpenAI error JSON; an
// engine reached over gRPC refuses them with a 400 naming the protocol.

import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTIVE_GAUGES, metricSums } from '../../bench/chaos/load.js';
import { syntheticLogprob } from '../../src/mocker/logprobs.js';
import { kill, listening, Processes, type Proc } from '../fixtures/processes.js';

const MODEL = 'Qwen/Qwen3-0.6B';
const procs = new Processes();
afterAll(() => procs.reap());

type ChatLp = OpenAI.Chat.Completions.ChatCompletionTokenLogprob;

function checkEntry(e: { token: string; logprob: number; bytes: number[] | null }): void {
  expect(Number.isFinite(e.logprob)).toBe(true);
  expect(e.logprob).toBeLessThanOrEqual(0);
  expect(e.bytes).toEqual([...Buffer.from(e.token, 'utf8')]);
}

// The mocker lists the sampled token first among its alternatives, at its own logprob.
function checkChat(content: ChatLp[], top: number): void {
  for (const e of content) {
    checkEntry(e);
    expect(e.top_logprobs).toHaveLength(top);
    for (const t of e.top_logprobs) checkEntry(t);
    if (top > 0) expect(e.top_logprobs[0]).toEqual({ token: e.token, logprob: e.logprob, bytes: e.bytes });
  }
}

async function postJson(url: string, body: unknown): Promise<{ status: number; body: any }> {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

function servingSuite(name: string, args: string[]): void {
  describe(name, () => {
    let serve: Proc;
    let url: string;
    let client: OpenAI;

    beforeAll(async () => {
      serve = procs.kvgate(['serve', ...args, '--port', '0', '--idle-health-check', '0']);
      url = await listening(serve, 60_000);
      client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
    }, 90_000);

    afterAll(() => kill(serve.proc));

    it('chat: logprobs and top_logprobs in the unary answer, one entry per completion token', async () => {
      const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'tell me a story' }], max_tokens: 9, logprobs: true, top_logprobs: 3, ignore_eos: true } as never);
      const c = (r as OpenAI.Chat.ChatCompletion).choices[0]!;
      const content = c.logprobs!.content!;
      expect(content).toHaveLength((r as OpenAI.Chat.ChatCompletion).usage!.completion_tokens);
      expect(content).toHaveLength(9);
      checkChat(content, 3);
      expect(content.map((e) => e.token).join('')).toBe(c.message.content);
      // Without logprobs: null, as before.
      const plain = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'tell me a story' }], max_tokens: 3 });
      expect(plain.choices[0]!.logprobs).toBeNull();
    });

    it('chat: each streamed chunk carries its own tokens\' logprobs', async () => {
      const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'count' }], max_tokens: 12, logprobs: true, top_logprobs: 0, stream: true, stream_options: { include_usage: true }, ignore_eos: true } as never);
      let text = '';
      const all: ChatLp[] = [];
      let usage: OpenAI.CompletionUsage | null | undefined;
      for await (const chunk of stream as unknown as AsyncIterable<OpenAI.Chat.ChatCompletionChunk>) {
        if (chunk.usage) usage = chunk.usage;
        const ch = chunk.choices[0];
        if (!ch) continue;
        const lp = ch.logprobs?.content ?? [];
        // A chunk's logprobs spell out exactly its text.
        expect(lp.map((e) => e.token).join('')).toBe(ch.delta.content ?? '');
        text += ch.delta.content ?? '';
        all.push(...lp);
      }
      expect(all).toHaveLength(12);
      expect(usage!.completion_tokens).toBe(12);
      checkChat(all, 0);
      expect(all.map((e) => e.token).join('')).toBe(text);
    });

    it('completions: logprobs N gives tokens, token_logprobs, N top alternatives and text offsets', async () => {
      const r = await client.completions.create({ model: MODEL, prompt: 'once upon a time', max_tokens: 7, logprobs: 5, ignore_eos: true } as never);
      const c = (r as OpenAI.Completion).choices[0]!;
      const lp = c.logprobs!;
      expect(lp.tokens).toHaveLength(7);
      expect(lp.token_logprobs).toHaveLength(7);
      expect(lp.top_logprobs).toHaveLength(7);
      expect(lp.tokens!.join('')).toBe(c.text);
      let at = 0;
      lp.tokens!.forEach((t, i) => {
        expect(lp.text_offset![i]).toBe(at);
        at += t.length;
        const v = lp.token_logprobs![i]!;
        expect(Number.isFinite(v) && v <= 0).toBe(true);
        const top = lp.top_logprobs![i]!;
        expect(Object.keys(top).length).toBeGreaterThan(0);
        expect(Object.keys(top).length).toBeLessThanOrEqual(5);
        expect(top[t]).toBe(v);
      });
      // Streamed: the offsets go on across chunks.
      const stream = await client.completions.create({ model: MODEL, prompt: 'once upon a time', max_tokens: 7, logprobs: 0, stream: true, ignore_eos: true } as never);
      const tokens: string[] = [];
      const offsets: number[] = [];
      for await (const chunk of stream as unknown as AsyncIterable<OpenAI.Completion>) {
        const l = chunk.choices[0]?.logprobs;
        if (!l) continue;
        expect(l.top_logprobs).toBeNull();
        tokens.push(...l.tokens!);
        offsets.push(...l.text_offset!);
      }
      expect(tokens).toHaveLength(7);
      expect(offsets).toEqual(tokens.map((_, i) => tokens.slice(0, i).join('').length));
    });

    it('completions: echo with logprobs returns the prompt\'s logprobs (the engine\'s, from the prefill in PD), the first null', async () => {
      const prompt = Array.from({ length: 10 }, (_, i) => 1000 + i * 7);
      const r = (await client.completions.create({ model: MODEL, prompt, max_tokens: 4, logprobs: 2, echo: true, ignore_eos: true } as never)) as OpenAI.Completion;
      const c = r.choices[0]!;
      const lp = c.logprobs!;
      expect(lp.tokens).toHaveLength(14);
      expect(lp.tokens!.join('')).toBe(c.text);
      expect(lp.token_logprobs![0]).toBeNull();
      expect(lp.top_logprobs![0]).toBeNull();
      // The mocker's logprob of prompt token i is a function of (id, position): these are its.
      expect(lp.token_logprobs!.slice(1, 10)).toEqual(prompt.slice(1).map((id, i) => syntheticLogprob(id, i + 1)));
      for (const v of lp.token_logprobs!.slice(10)) expect(Number.isFinite(v) && v! <= 0).toBe(true);
      expect(lp.text_offset![10]).toBe(lp.tokens!.slice(0, 10).join('').length);
      expect(r.usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 4 });

      // Streamed: the first chunk is the prompt with its logprobs.
      const stream = await client.completions.create({ model: MODEL, prompt, max_tokens: 4, logprobs: 0, echo: true, stream: true, ignore_eos: true } as never);
      const chunks: OpenAI.Completion[] = [];
      for await (const chunk of stream as unknown as AsyncIterable<OpenAI.Completion>) chunks.push(chunk);
      const head = chunks[0]!.choices[0]!;
      expect(head.logprobs!.tokens).toHaveLength(10);
      expect(head.logprobs!.tokens!.join('')).toBe(head.text);
      expect(head.logprobs!.token_logprobs![0]).toBeNull();
      expect(chunks.flatMap((ch) => ch.choices[0]?.logprobs?.tokens ?? [])).toHaveLength(14);

      // Echo alone: the text begins with the prompt.
      const plain = (await client.completions.create({ model: MODEL, prompt: 'once upon a time', max_tokens: 3, echo: true } as never)) as OpenAI.Completion;
      expect(plain.choices[0]!.text.startsWith('once upon a time')).toBe(true);
      expect(plain.choices[0]!.logprobs).toBeNull();
    });

    it('a stop string and a client that leaves mid-stream end cleanly; nothing stays counted', async () => {
      const r = await client.completions.create({ model: MODEL, prompt: 'once upon a time', max_tokens: 30, logprobs: 1, stop: [' the'], ignore_eos: true } as never);
      const c = (r as OpenAI.Completion).choices[0]!;
      expect(c.finish_reason).toBe('stop');
      expect(c.logprobs!.tokens!.length).toBeGreaterThan(0);
      const ctl = new AbortController();
      const stream = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'go on' }], max_tokens: 500, logprobs: true, top_logprobs: 5, stream: true, ignore_eos: true } as never, { signal: ctl.signal });
      let got = 0;
      try {
        for await (const chunk of stream as unknown as AsyncIterable<OpenAI.Chat.ChatCompletionChunk>) {
          got += chunk.choices[0]?.logprobs?.content?.length ?? 0;
          if (got >= 3) ctl.abort();
        }
      } catch {
        /* the abort */
      }
      expect(got).toBeGreaterThanOrEqual(3);
      const zero = Object.fromEntries(ACTIVE_GAUGES.map((g) => [g, 0]));
      let sums: Record<string, number> = {};
      for (let i = 0; i < 100; i++) {
        sums = await metricSums(url, ACTIVE_GAUGES);
        if (Object.values(sums).every((v) => v === 0)) break;
        await new Promise((res) => setTimeout(res, 50));
      }
      expect(sums).toEqual(zero);
    });

    it('refuses bad values with OpenAI error JSON', async () => {
      const chat = `${url}/v1/chat/completions`;
      const cmpl = `${url}/v1/completions`;
      const messages = [{ role: 'user', content: 'hi' }];
      const cases: [string, unknown, string][] = [
        [chat, { model: MODEL, messages, logprobs: true, top_logprobs: 21 }, 'top_logprobs'],
        [chat, { model: MODEL, messages, top_logprobs: 2 }, 'top_logprobs'],
        [chat, { model: MODEL, messages, logprobs: 1 }, 'logprobs'],
        [cmpl, { model: MODEL, prompt: 'hi', logprobs: 6 }, 'logprobs'],
        [cmpl, { model: MODEL, prompt: 'hi', logprobs: true }, 'logprobs'],
        [cmpl, { model: MODEL, prompt: 'hi', logprobs: 2, echo: 'yes' }, 'echo'],
      ];
      for (const [u, body, param] of cases) {
        const r = await postJson(u, body);
        expect(r.status, JSON.stringify(body)).toBe(400);
        expect(r.body.error).toMatchObject({ type: 'invalid_request_error', param });
        expect(typeof r.body.error.message).toBe('string');
      }
    });
  });
}

servingSuite('kvgate serve --workers 1 (aggregated mocker)', ['--workers', '1']);
servingSuite('kvgate serve --prefill-workers 1 --decode-workers 1 (mocker)', ['--prefill-workers', '1', '--decode-workers', '1']);

describe('kvgate serve over a gRPC engine', () => {
  it('refuses logprobs with a 400 that names the engine protocol', async () => {
    const serve = procs.kvgate(['serve', '--workers', '1', '--engine', 'mocker', '--engine-protocol', 'grpc', '--port', '0', '--idle-health-check', '0']);
    try {
      const url = await listening(serve, 60_000);
      const r = await postJson(`${url}/v1/chat/completions`, { model: MODEL, messages: [{ role: 'user', content: 'hi' }], logprobs: true });
      expect(r.status).toBe(400);
      expect(r.body.error).toMatchObject({ param: 'logprobs' });
      expect(r.body.error.message).toMatch(/gRPC/);
      const ok = await postJson(`${url}/v1/chat/completions`, { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
      expect(ok.status).toBe(200);
    } finally {
      kill(serve.proc);
    }
  }, 90_000);
});
