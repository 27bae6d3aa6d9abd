// The mocker's SGLang HTTP API over real sockets: /generate shapes (JSON and SSE), finish reasons,
// SGLang's error bodies, and the info/load/control endpoints.

import { afterEach, describe, expect, it } from 'vitest';
import { closeAll, generate, get, inFlight, mocker, post, sseEvents, until } from './helpers.js';
import { WORDS } from '../../src/mocker/tokens.js';

afterEach(closeAll);

const EOS = 151645;
const wordIds = new Set(WORDS.map(([id]) => id));
const wordText = new Map(WORDS.map(([id, t]) => [id, t]));

function expectMeta(meta: any, rid: string, promptTokens: number) {
  expect(meta.id).toBe(rid);
  expect(meta.prompt_tokens).toBe(promptTokens);
  expect(meta.weight_version).toBe('default');
  expect(meta.num_retractions).toBe(0);
  expect(meta.reasoning_tokens).toBe(0);
  expect(typeof meta.completion_tokens).toBe('number');
  expect(typeof meta.cached_tokens).toBe('number');
}

describe('POST /generate (non-streaming)', () => {
  it('answers SGLang’s response shape with a length finish under ignore_eos', async () => {
    const m = await mocker();
    const r = await generate(m, { rid: 'req-1', input_ids: [11, 12, 13, 14, 15], sampling_params: { max_new_tokens: 16, ignore_eos: true, temperature: 0 } });
    expect(Object.keys(r)).toEqual(['text', 'output_ids', 'meta_info']);
    expect(r.output_ids).toHaveLength(16);
    for (const id of r.output_ids) expect(wordIds.has(id)).toBe(true);
    expect(r.text).toBe(r.output_ids.map((id: number) => wordText.get(id)).join(''));
    expectMeta(r.meta_info, 'req-1', 5);
    expect(r.meta_info.finish_reason).toEqual({ type: 'length', length: 16 });
    expect(r.meta_info.completion_tokens).toBe(16);
    expect(r.meta_info.cached_tokens).toBe(0);
    expect(r.meta_info.e2e_latency).toBeGreaterThan(0);
  });

  it('is deterministic per prompt and stops at EOS or the length limit', async () => {
    const m = await mocker();
    const body = { input_ids: [3, 1, 4, 1, 5, 9, 2, 6], sampling_params: { max_new_tokens: 40 } };
    const a = await generate(m, body);
    const b = await generate(m, body);
    expect(b.output_ids).toEqual(a.output_ids);
    const fr = a.meta_info.finish_reason;
    if (fr.type === 'stop') {
      // EOS ends the ids (SGLang keeps it in output_ids) and is not in the text.
      expect(fr.matched).toBe(EOS);
      expect(a.output_ids.at(-1)).toBe(EOS);
      expect(a.output_ids.length).toBeLessThanOrEqual(40);
      expect(a.text).toBe(a.output_ids.slice(0, -1).map((id: number) => wordText.get(id)).join(''));
    } else {
      expect(fr).toEqual({ type: 'length', length: 40 });
      expect(a.output_ids).toHaveLength(40);
    }
    // Over many prompts both endings occur.
    const kinds = new Set<string>();
    for (let i = 0; i < 30; i++) kinds.add((await generate(m, { input_ids: [i + 100, 5, 5], sampling_params: { max_new_tokens: 8 } })).meta_info.finish_reason.type);
    expect([...kinds].sort()).toEqual(['length', 'stop']);
  });

  it('reports the real prefix-cache hit in cached_tokens (page-aligned, never the whole prompt)', async () => {
    const m = await mocker({ pageSize: 4 });
    const prompt = Array.from({ length: 18 }, (_, i) => 1000 + i);
    const first = await generate(m, { input_ids: prompt, sampling_params: { max_new_tokens: 2, ignore_eos: true } });
    expect(first.meta_info.cached_tokens).toBe(0);
    const second = await generate(m, { input_ids: prompt, sampling_params: { max_new_tokens: 2, ignore_eos: true } });
    expect(second.meta_info.cached_tokens).toBe(16);
    // A prompt sharing 9 tokens hits two full pages.
    const third = await generate(m, { input_ids: [...prompt.slice(0, 9), 5, 5, 5, 5, 5, 5], sampling_params: { max_new_tokens: 1 } });
    expect(third.meta_info.cached_tokens).toBe(8);
    // Generated tokens are cached too: prompt + output continues the hit.
    const cont = [...prompt, ...second.output_ids, 7, 7, 7, 7, 7];
    const fourth = await generate(m, { input_ids: cont, sampling_params: { max_new_tokens: 1 } });
    expect(fourth.meta_info.cached_tokens).toBe(16);
  });

  it('honours stop_token_ids, stop strings and max_new_tokens 0', async () => {
    const m = await mocker();
    const base = await generate(m, { input_ids: [42, 43, 44], sampling_params: { max_new_tokens: 12, ignore_eos: true } });
    const third = base.output_ids[2];
    const firstAt = base.output_ids.indexOf(third);
    const stopped = await generate(m, { input_ids: [42, 43, 44], sampling_params: { max_new_tokens: 12, stop_token_ids: [third] } });
    expect(stopped.meta_info.finish_reason).toEqual({ type: 'stop', matched: third });
    expect(stopped.output_ids).toEqual(base.output_ids.slice(0, firstAt + 1));
    const word = wordText.get(base.output_ids[1])!;
    const byString = await generate(m, { input_ids: [42, 43, 44], sampling_params: { max_new_tokens: 12, stop: [word], ignore_eos: true } });
    expect(byString.meta_info.finish_reason).toEqual({ type: 'stop', matched: word });
    expect(byString.text.includes(word)).toBe(false);
    const none = await generate(m, { input_ids: [42, 43, 44], sampling_params: { max_new_tokens: 0 } });
    expect(none.output_ids).toEqual([]);
    expect(none.meta_info.finish_reason).toEqual({ type: 'length', length: 0 });
  });

  it('tokenizes text one id per UTF-8 byte and generates a rid when none is given', async () => {
    const m = await mocker();
    const r = await generate(m, { text: 'héllo', sampling_params: { max_new_tokens: 2 } });
    expect(r.meta_info.prompt_tokens).toBe(Buffer.byteLength('héllo'));
    expect(r.meta_info.id).toMatch(/^[0-9a-f]{32}$/);
  });
});

describe('POST /generate (streaming)', () => {
  it('streams cumulative text and output_ids, then [DONE]', async () => {
    const m = await mocker();
    const events = await generate(m, { rid: 's1', input_ids: [9, 8, 7], sampling_params: { max_new_tokens: 6, ignore_eos: true }, stream: true });
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1) as any[];
    expect(chunks).toHaveLength(6);
    chunks.forEach((c, i) => {
      expect(c.output_ids).toHaveLength(i + 1);
      expectMeta(c.meta_info, 's1', 3);
      expect(c.meta_info.completion_tokens).toBe(i + 1);
      if (i > 0) expect(c.output_ids.slice(0, i)).toEqual(chunks[i - 1].output_ids);
      if (i < 5) {
        expect(c.meta_info.finish_reason).toBeNull();
        expect(c.meta_info.e2e_latency).toBeUndefined();
      }
    });
    expect(chunks[5].meta_info.finish_reason).toEqual({ type: 'length', length: 6 });
    expect(chunks[5].meta_info.e2e_latency).toBeGreaterThan(0);
    expect(chunks[5].text).toBe(chunks[5].output_ids.map((id: number) => wordText.get(id)).join(''));
  });

  it('streams disjoint pieces with --incremental-streaming-output, and honours stream_interval', async () => {
    const m = await mocker({ incrementalStreamingOutput: true });
    const events = await generate(m, { input_ids: [9, 8, 7], sampling_params: { max_new_tokens: 6, ignore_eos: true }, stream: true });
    const chunks = events.slice(0, -1) as any[];
    expect(chunks.every((c) => c.output_ids.length === 1)).toBe(true);
    const full = await generate(m, { input_ids: [9, 8, 7], sampling_params: { max_new_tokens: 6, ignore_eos: true } });
    expect(chunks.flatMap((c) => c.output_ids)).toEqual(full.output_ids);
    expect(chunks.map((c) => c.text).join('')).toBe(full.text);
    const spaced = await generate(m, { input_ids: [9, 8, 7], sampling_params: { max_new_tokens: 6, ignore_eos: true, stream_interval: 4 }, stream: true });
    expect((spaced.slice(0, -1) as any[]).map((c) => c.output_ids.length)).toEqual([4, 2]);
  });

  it('drops text under --skip-tokenizer-init', async () => {
    const m = await mocker({ skipTokenizerInit: true });
    const events = await generate(m, { input_ids: [1, 2], sampling_params: { max_new_tokens: 3, ignore_eos: true }, stream: true });
    for (const c of events.slice(0, -1) as any[]) {
      expect(Object.keys(c)).toEqual(['output_ids', 'meta_info']);
    }
  });
});

describe('bad requests', () => {
  it('answers the schema gate’s 400 {"error": text} for wrong types and unknown sampling keys', async () => {
    const m = await mocker();
    const unknown = await post(`${m.url}/generate`, { input_ids: [1], sampling_params: { max_tokens: 5 } });
    expect(unknown.status).toBe(400);
    expect(typeof unknown.json().error).toBe('string');
    expect(unknown.json().error).toMatch(/^unknown field `max_tokens`, expected one of `max_new_tokens`/);
    const wrongType = await post(`${m.url}/generate`, { input_ids: [1], sampling_params: { max_new_tokens: 'ten' } });
    expect(wrongType.status).toBe(400);
    expect(wrongType.json()).toEqual({ error: 'invalid type: string "ten", expected i64' });
    // Unknown top-level keys are ignored.
    const extra = await post(`${m.url}/generate`, { input_ids: [1, 2], sampling_params: { max_new_tokens: 1 }, something_new: true });
    expect(extra.status).toBe(200);
  });

  it('answers ValueErrors as 400 {"error": {"message"}}, or in-stream when streaming', async () => {
    const m = await mocker({ skipTokenizerInit: true, contextLength: 64 });
    const cases: [unknown, RegExp][] = [
      [{ sampling_params: {} }, /Either text, input_ids or input_embeds should be provided/],
      [{ text: 'hi' }, /skip_tokenizer_init=True cannot accept text prompts/],
      [{ input_ids: [[1], [2]], sampling_params: { max_new_tokens: 1 }, rid: ['a'] }, /^rid has 1 entries but the batch has 2 prompts\.$/],
      [{ input_ids: [[1], [2]], sampling_params: { max_new_tokens: 1 }, rid: ['a', 'a'] }, /^Duplicate request IDs/],
      [{ input_ids: [1], sampling_params: { max_new_tokens: -1 } }, /^max_new_tokens must be at least 0, got -1\.$/],
      [{ input_ids: [1], sampling_params: { temperature: -0.5 } }, /^temperature must be a non-negative finite number/],
      [{ input_ids: Array(70).fill(1) }, /^The input \(70 tokens\) is longer than the model's context length \(64 tokens\)\.$/],
      [{ input_ids: [1, 2], sampling_params: { max_new_tokens: 100 } }, /^Requested token count exceeds the model's maximum context length of 64 tokens/],
      [{ input_ids: [999999] }, /out-of-vocabulary token id 999999/],
      [{ input_ids: [1, 2], return_logprob: true, logprob_start_len: 2, sampling_params: { max_new_tokens: 1 } }, /^logprob_start_len \(2\) is larger than the number of input tokens \(2\)/],
    ];
    for (const [body, msg] of cases) {
      const r = await post(`${m.url}/generate`, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(Object.keys(r.json())).toEqual(['error']);
      expect(r.json().error.message).toMatch(msg);
      const s = await post(`${m.url}/generate`, { ...(body as object), stream: true });
      expect(s.status).toBe(200);
      const events = sseEvents(s.text) as any[];
      expect(events).toHaveLength(2);
      expect(events[0].error).toMatchObject({ type: 'invalid_request_error', code: 400, retryable: false });
      expect(events[0].error.message).toMatch(msg);
      expect(events[1]).toBe('[DONE]');
    }
  });

  it('answers FastAPI’s shapes for a non-JSON body, unknown paths and wrong methods', async () => {
    const m = await mocker();
    const bad = await post(`${m.url}/generate`, '{not json');
    expect(bad.status).toBe(400);
    expect(bad.json()).toMatchObject({ object: 'error', type: 'Bad Request', param: null, code: 400 });
    expect((await get(`${m.url}/nope`)).status).toBe(404);
    expect((await get(`${m.url}/nope`)).json()).toEqual({ detail: 'Not Found' });
    const wrong = await get(`${m.url}/generate`);
    expect(wrong.status).toBe(405);
    expect(wrong.json()).toEqual({ detail: 'Method Not Allowed' });
  });

  it('rejects a duplicate in-flight rid and an out-of-range DP rank', async () => {
    const m = await mocker({ speedupRatio: 0.5 });
    const slow = post(`${m.url}/generate`, { rid: 'dup', input_ids: [1, 2, 3], sampling_params: { max_new_tokens: 5000, ignore_eos: true } });
    await until(async () => (await inFlight(m)) === 1);
    const dup = await post(`${m.url}/generate`, { rid: 'dup', input_ids: [1], sampling_params: { max_new_tokens: 1 } });
    expect(dup.status).toBe(400);
    expect(dup.json().error.message).toBe('Duplicate request ID detected: dup');
    await post(`${m.url}/abort_request`, { rid: 'dup' });
    expect((await slow).json().meta_info.finish_reason.type).toBe('abort');
    const rank = await post(`${m.url}/generate`, { input_ids: [1], routed_dp_rank: 3 });
    expect(rank.status).toBe(400);
    expect(rank.json().error.message).toMatch(/routed_dp_rank 3 is out of range \[0, 1\)/);
  });

  it('rejects a prompt over the KV pool as a scheduler abort (400)', async () => {
    const m = await mocker({ maxTotalTokens: 64 });
    const r = await post(`${m.url}/generate`, { input_ids: Array(60).fill(3) });
    expect(r.status).toBe(400);
    expect(r.json().error.message).toBe('Input length (60 tokens) exceeds the maximum allowed length (58 tokens). Use a shorter input or enable --allow-auto-truncate.');
    const s = await post(`${m.url}/generate`, { input_ids: Array(60).fill(3), stream: true });
    const events = sseEvents(s.text) as any[];
    expect(events[0].meta_info.finish_reason).toEqual({
      type: 'abort',
      message: 'Input length (60 tokens) exceeds the maximum allowed length (58 tokens). Use a shorter input or enable --allow-auto-truncate.',
      status_code: 400,
      err_type: 'BadRequestError',
    });
    expect(events[1]).toBe('[DONE]');
  });
});

describe('aborts', () => {
  it('POST /abort_request aborts by rid prefix with finish_reason abort', async () => {
    const m = await mocker({ speedupRatio: 0.5 });
    const long = { sampling_params: { max_new_tokens: 5000, ignore_eos: true } };
    const a = post(`${m.url}/generate`, { rid: 'batch_0', input_ids: [1, 2], ...long, stream: true });
    const b = post(`${m.url}/generate`, { rid: 'batch_1', input_ids: [3, 4], ...long });
    const other = post(`${m.url}/generate`, { rid: 'other', input_ids: [5, 6], ...long });
    await until(async () => (await inFlight(m)) === 3);
    const ack = await post(`${m.url}/abort_request`, { rid: 'batch' });
    expect(ack.status).toBe(200);
    expect(ack.text).toBe('');
    const streamed = sseEvents((await a).text) as any[];
    expect(streamed.at(-1)).toBe('[DONE]');
    expect((streamed.at(-2) as any).meta_info.finish_reason).toEqual({ type: 'abort', message: 'Aborted', status_code: null, err_type: null });
    const plain = (await b).json();
    expect(plain.meta_info.finish_reason.type).toBe('abort');
    expect(plain.output_ids.length).toBeLessThan(5000);
    // 'other' does not share the prefix and keeps running; unknown and empty rids are no-ops.
    expect((await post(`${m.url}/abort_request`, { rid: 'nobody' })).status).toBe(200);
    expect((await post(`${m.url}/abort_request`, {})).status).toBe(200);
    expect(await inFlight(m)).toBe(1);
    await post(`${m.url}/abort_request`, { rid: 'other' });
    expect((await other).json().meta_info.finish_reason.type).toBe('abort');
  });

  it('a client that disconnects aborts its request (the engine frees the slot)', async () => {
    const m = await mocker({ speedupRatio: 0.5, enableMetrics: true });
    const ac = new AbortController();
    const res = await fetch(`${m.url}/generate`, {
      method: 'POST',
      body: JSON.stringify({ input_ids: [1, 2, 3], sampling_params: { max_new_tokens: 1000, ignore_eos: true }, stream: true }),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    await reader.read();
    expect((await get(`${m.url}/get_load`)).json()[0].num_reqs).toBe(1);
    ac.abort();
    await until(async () => (await inFlight(m)) === 0);
    const metrics = (await get(`${m.url}/metrics`)).text;
    expect(metrics).toMatch(/^sglang:num_aborted_requests_total\{model_name="Qwen\/Qwen3-0.6B",engine_type="unified"\} 1$/m);
  });
});

describe('info, load and control endpoints', () => {
  it('serves /health, /health_generate, /server_info, /model_info and their aliases', async () => {
    const m = await mocker({ pageSize: 16, dpSize: 2, maxTotalTokens: 4096, servedModelName: 'qwen', kvEventsConfig: { publisher: 'zmq', endpoint: 'tcp://127.0.0.1:0', bind: true, topic: 'kv' } });
    const h = await get(`${m.url}/health`);
    expect(h.status).toBe(200);
    expect(h.text).toBe('');
    expect((await get(`${m.url}/health_generate`)).status).toBe(200);
    for (const path of ['/server_info', '/get_server_info']) {
      const info = (await get(`${m.url}${path}`)).json();
      expect(info).toMatchObject({
        page_size: 16,
        dp_size: 2,
        max_total_num_tokens: 4096,
        max_running_requests: 1024,
        disaggregation_mode: 'null',
        served_model_name: 'qwen',
        model_path: 'Qwen/Qwen3-0.6B',
        context_length: 40960,
      });
      expect(info.kv_events).toEqual({ publisher: 'zmq', endpoint_host: '127.0.0.1', endpoint_port_base: m.kvEventPorts[0], topic: 'kv', block_size: 16, dp_size: 2 });
      expect(info.internal_states).toHaveLength(2);
    }
    for (const path of ['/model_info', '/get_model_info']) {
      expect((await get(`${m.url}${path}`)).json()).toMatchObject({ model_path: 'Qwen/Qwen3-0.6B', served_model_name: 'qwen', is_generation: true });
    }
    expect((await get(`${m.url}/v1/models`)).json().data[0]).toMatchObject({ id: 'qwen', max_model_len: 40960 });
  });

  it('answers 503 on /health during --startup-delay', async () => {
    const { startMocker } = await import('../../src/mocker/index.js');
    const m = await startMocker({ port: 0, startupDelay: 0.5 });
    try {
      expect((await get(`${m.url}/health`)).status).toBe(503);
      expect((await post(`${m.url}/generate`, { input_ids: [1] })).status).toBe(503);
      await m.ready;
      expect((await get(`${m.url}/health`)).status).toBe(200);
    } finally {
      await m.close(0);
    }
  });

  it('reports queued requests beyond max_running_requests in /get_load, /v1/loads and /metrics', async () => {
    const m = await mocker({ maxRunningRequests: 2, speedupRatio: 0.5, enableMetrics: true });
    const pending = [1, 2, 3, 4, 5].map((i) => post(`${m.url}/generate`, { rid: `q${i}`, input_ids: [i, i, i], sampling_params: { max_new_tokens: 200, ignore_eos: true } }));
    // Two run, three wait (admission happens at step boundaries).
    await until(async () => (await get(`${m.url}/get_load`)).json()[0].num_waiting_reqs === 3);
    const load = (await get(`${m.url}/get_load`)).json();
    expect(load).toHaveLength(1);
    expect(load[0]).toMatchObject({ dp_rank: 0, num_reqs: 5, num_waiting_reqs: 3 });
    expect(load[0].num_tokens).toBeGreaterThan(0);
    const loads = (await get(`${m.url}/v1/loads`)).json();
    expect(loads.loads[0]).toMatchObject({ dp_rank: 0, num_running_reqs: 2, num_waiting_reqs: 3, max_running_requests: 2, max_total_num_tokens: 262144 });
    expect(loads.loads[0].queues).toEqual({ waiting: 3, grammar: 0, paused: 0, retracted: 0 });
    expect(Object.keys((await get(`${m.url}/v1/loads?include=core`)).json().loads[0])).not.toContain('memory');
    expect((await get(`${m.url}/v1/loads?include=bogus`)).status).toBe(400);
    const prom = (await get(`${m.url}/v1/loads?format=prometheus`)).text;
    expect(prom).toMatch(/^sglang_num_waiting_reqs\{dp_rank="0"\} 3$/m);
    const metrics = (await get(`${m.url}/metrics`)).text;
    const labels = 'model_name="Qwen/Qwen3-0.6B",engine_type="unified",tp_rank="0",pp_rank="0",moe_ep_rank="0"';
    expect(metrics).toContain(`sglang:num_running_reqs{${labels}} 2`);
    expect(metrics).toContain(`sglang:num_queue_reqs{${labels}} 3`);
    expect(metrics).toMatch(new RegExp(`^sglang:token_usage\\{${labels}\\} 0\\.\\d+`, 'm'));
    await post(`${m.url}/abort_request`, { rid: 'q' });
    await Promise.all(pending);
  });

  it('counts prompt, generation and cached tokens and latency histograms in /metrics', async () => {
    const m = await mocker({ enableMetrics: true, pageSize: 2 });
    await generate(m, { input_ids: [1, 2, 3, 4, 5], sampling_params: { max_new_tokens: 4, ignore_eos: true } });
    await generate(m, { input_ids: [1, 2, 3, 4, 5], sampling_params: { max_new_tokens: 4, ignore_eos: true }, stream: true });
    const text = (await get(`${m.url}/metrics`)).text;
    const l = 'model_name="Qwen/Qwen3-0.6B",engine_type="unified"';
    expect(text).toContain(`sglang:prompt_tokens_total{${l}} 10`);
    expect(text).toContain(`sglang:generation_tokens_total{${l}} 8`);
    expect(text).toContain(`sglang:cached_tokens_total{${l}} 4`);
    expect(text).toContain(`sglang:num_requests_total{${l}} 2`);
    expect(text).toContain(`sglang:time_to_first_token_seconds_count{${l},is_streaming="true"} 1`);
    expect(text).toContain(`sglang:e2e_request_latency_seconds_count{${l},is_streaming="false"} 1`);
    expect(text).toContain(`sglang:inter_token_latency_seconds_count{${l}} 6`);
  });

  it('serves /metrics only with --enable-metrics', async () => {
    const m = await mocker();
    expect((await get(`${m.url}/metrics`)).status).toBe(404);
  });

  it('POST /flush_cache drops the prefix cache, and refuses while requests run', async () => {
    const m = await mocker({ pageSize: 2, speedupRatio: 0.5 });
    const body = { input_ids: [1, 2, 3, 4, 5], sampling_params: { max_new_tokens: 1 } };
    await generate(m, body);
    expect((await generate(m, body)).meta_info.cached_tokens).toBe(4);
    const ok = await post(`${m.url}/flush_cache`, '');
    expect(ok.status).toBe(200);
    expect(ok.text).toMatch(/^Cache flushed\./);
    expect((await generate(m, body)).meta_info.cached_tokens).toBe(0);
    const busy = post(`${m.url}/generate`, { input_ids: [9], sampling_params: { max_new_tokens: 5000, ignore_eos: true } });
    await until(async () => (await inFlight(m)) === 1);
    const refused = await post(`${m.url}/flush_cache`, '');
    expect(refused.status).toBe(400);
    await post(`${m.url}/abort_request`, { abort_all: true });
    await busy;
  });
});

describe('--api-key (as SGLang)', () => {
  it('wants Authorization: Bearer <key> everywhere but OPTIONS, /health* and /metrics*, before routing', async () => {
    const m = await mocker({ apiKey: 'mk-1', enableMetrics: true });
    const body = JSON.stringify({ input_ids: [1, 2, 3], sampling_params: { max_new_tokens: 2 } });
    const call = (path: string, init: RequestInit = {}) => fetch(`${m.url}${path}`, init);
    const noKey = await call('/generate', { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    expect(noKey.status).toBe(401);
    expect(await noKey.json()).toEqual({ error: 'Unauthorized' });
    expect((await call('/generate', { method: 'POST', body, headers: { authorization: 'Bearer mk-2' } })).status).toBe(401);
    expect((await call('/generate', { method: 'POST', body, headers: { authorization: 'Bearer mk-1' } })).status).toBe(200);
    expect((await call('/model_info', { headers: { authorization: 'bearer mk-1' } })).status).toBe(200);
    for (const path of ['/model_info', '/server_info', '/v1/loads', '/flush_cache', '/nowhere']) expect((await call(path)).status, path).toBe(401);
    for (const path of ['/health', '/health_generate', '/metrics']) expect((await call(path)).status, path).toBe(200);
    // Without a key nothing is asked.
    const open = await mocker();
    expect((await fetch(`${open.url}/model_info`)).status).toBe(200);
  });
});
