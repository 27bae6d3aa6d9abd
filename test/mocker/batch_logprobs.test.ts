// What SGLang's routers need from the mocker (issue 13), over real sockets: an HTTP/2 preface
// closed at once, batch /generate and n > 1 in SGLang's shapes, and logprobs in meta_info.

import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { closeAll, generate, inFlight, mocker, post, sseEvents, until } from './helpers.js';
import { syntheticLogprob } from '../../src/mocker/logprobs.js';

afterEach(closeAll);

const long = { sampling_params: { max_new_tokens: 400, ignore_eos: true } };

describe('connections', () => {
  it('closes a connection that opens with an HTTP/2 (gRPC) preface at once', async () => {
    const m = await mocker();
    const sock = net.connect(m.port, '127.0.0.1');
    const got: Buffer[] = [];
    sock.on('data', (d: Buffer) => got.push(d));
    // The preface and an empty SETTINGS frame, as a gRPC client's probe sends them.
    sock.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
    const closed = await new Promise<boolean>((resolve) => {
      sock.on('close', () => resolve(true));
      setTimeout(() => resolve(false), 2000).unref();
    });
    sock.destroy();
    expect(closed).toBe(true);
    expect(Buffer.concat(got).toString()).not.toMatch(/^HTTP\/1/);
    // HTTP/1.1 still works on the same port.
    expect((await generate(m, { input_ids: [1, 2], sampling_params: { max_new_tokens: 1 } })).output_ids).toHaveLength(1);
  });
});

describe('batch /generate and n > 1', () => {
  it('answers a list text batch with a list in prompt order, rids "<rid>_<i>"', async () => {
    const m = await mocker();
    const r = await generate(m, { rid: 'b', text: ['first prompt', 'second one', 'third'], sampling_params: { max_new_tokens: 4, ignore_eos: true } });
    expect(Array.isArray(r)).toBe(true);
    expect(r.map((x: any) => x.meta_info.id)).toEqual(['b_0', 'b_1', 'b_2']);
    expect(r.map((x: any) => x.meta_info.prompt_tokens)).toEqual([12, 10, 5]);
    for (const x of r) {
      expect(Object.keys(x)).toEqual(['text', 'output_ids', 'meta_info']);
      expect(x.output_ids).toHaveLength(4);
    }
    // Each item is what the same prompt alone gets.
    const alone = await generate(m, { text: 'second one', sampling_params: { max_new_tokens: 4, ignore_eos: true } });
    expect(r[1].output_ids).toEqual(alone.output_ids);
  });

  it('takes input_ids lists with per-item sampling_params and rid lists', async () => {
    const m = await mocker({ skipTokenizerInit: true });
    const r = await generate(m, {
      rid: ['x', 'y'],
      input_ids: [[1, 2, 3], [4, 5]],
      sampling_params: [{ max_new_tokens: 2, ignore_eos: true }, { max_new_tokens: 5, ignore_eos: true }],
    });
    expect(r.map((x: any) => [x.meta_info.id, x.output_ids.length, x.meta_info.prompt_tokens])).toEqual([
      ['x', 2, 3],
      ['y', 5, 2],
    ]);
  });

  it('streams a batch as interleaved chunks tagged with "index", then one [DONE]', async () => {
    const m = await mocker();
    const r = await post(`${m.url}/generate`, { text: ['aa', 'bbbb'], stream: true, sampling_params: [{ max_new_tokens: 3, ignore_eos: true }, { max_new_tokens: 6, ignore_eos: true }] });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = sseEvents(r.text);
    expect(events.at(-1)).toBe('[DONE]');
    expect(events.filter((e) => e === '[DONE]')).toHaveLength(1);
    const chunks = events.slice(0, -1) as any[];
    for (const c of chunks) expect(Object.keys(c)).toEqual(['text', 'output_ids', 'meta_info', 'index']);
    const last = (i: number) => chunks.filter((c) => c.index === i).at(-1);
    expect(last(0).output_ids).toHaveLength(3);
    expect(last(1).output_ids).toHaveLength(6);
    expect(last(0).meta_info.finish_reason).toEqual({ type: 'length', length: 3 });
  });

  it('answers n > 1 as a list of n samples of the prompt, cached after a first prefill', async () => {
    const m = await mocker({ pageSize: 1 });
    const prompt = 'a prompt long enough to be cached '.repeat(4);
    const r = await generate(m, { text: prompt, sampling_params: { n: 3, max_new_tokens: 8, ignore_eos: true } });
    expect(r).toHaveLength(3);
    const ids = new Set(r.map((x: any) => x.meta_info.id));
    expect(ids.size).toBe(3);
    for (const x of r) {
      expect(x.meta_info.prompt_tokens).toBe(Buffer.byteLength(prompt));
      expect(x.meta_info.cached_tokens).toBeGreaterThan(0);
      expect(x.output_ids).toHaveLength(8);
    }
    // Samples differ from one another.
    expect(new Set(r.map((x: any) => x.output_ids.join())).size).toBeGreaterThan(1);
    // A list of two prompts with n = 2: four answers, prompt-major.
    const b = await generate(m, { text: ['p one', 'p two two'], sampling_params: { n: 2, max_new_tokens: 1 } });
    expect(b.map((x: any) => x.meta_info.prompt_tokens)).toEqual([5, 5, 9, 9]);
    expect(await inFlight(m)).toBe(0);
  });

  it('refuses n that differs across a batch, empty batches, n < 1, stray lists, and list logprob parameters with n > 1', async () => {
    const m = await mocker();
    const differ = await post(`${m.url}/generate`, { text: ['a', 'b'], sampling_params: [{ n: 2 }, { n: 1 }] });
    expect(differ.status).toBe(400);
    expect(differ.json().error.message).toBe('The parallel_sample_num should be the same for all samples in sample params.');
    for (const [body, msg] of [
      [{ text: [] }, 'The batch is empty: text or input_ids must hold at least one prompt.'],
      [{ text: 'a', sampling_params: { n: 0 } }, 'sampling_params.n must be at least 1, got 0.'],
      [{ text: 'a', rid: ['x'] }, 'rid is a list but the request is not a batch: text or input_ids must be a list too.'],
    ] as const) {
      const r = await post(`${m.url}/generate`, body);
      expect(r.status).toBe(400);
      expect(r.json().error.message).toBe(msg);
    }
    const lists = await post(`${m.url}/generate`, { text: ['a', 'b'], return_logprob: [true, false], sampling_params: { n: 2 } });
    expect(lists.status).toBe(400);
    expect(lists.json().error.message).toMatch(/^return_logprob cannot be a list when n > 1/);
  });

  it('refuses a batch with a rid already in flight before queueing any of it', async () => {
    const m = await mocker();
    const running = post(`${m.url}/generate`, { rid: 'busy', text: 'x', ...long });
    await until(async () => (await inFlight(m)) === 1);
    const r = await post(`${m.url}/generate`, { rid: ['free', 'busy'], text: ['a', 'b'], stream: true, ...long });
    const events = sseEvents(r.text) as any[];
    expect(events).toHaveLength(2);
    expect(events[0].error.message).toBe('Duplicate request ID detected: busy');
    expect(await inFlight(m)).toBe(1);
    await post(`${m.url}/abort_request`, { rid: 'busy' });
    await running;
  });

  it('a client that drops a streamed batch aborts every item', async () => {
    const m = await mocker();
    const ctl = new AbortController();
    const res = await fetch(`${m.url}/generate`, { method: 'POST', body: JSON.stringify({ text: ['one', 'two', 'three'], stream: true, ...long }), signal: ctl.signal });
    const reader = res.body!.getReader();
    await reader.read();
    expect(await inFlight(m)).toBe(3);
    ctl.abort();
    await until(async () => (await inFlight(m)) === 0);
  });
});

describe('logprobs', () => {
  it('answers return_logprob with SGLang’s meta_info lists, values fixed per (token, position)', async () => {
    const m = await mocker();
    const ids = [11, 12, 13, 14];
    const r = await generate(m, {
      input_ids: ids,
      return_logprob: true,
      logprob_start_len: 0,
      top_logprobs_num: 2,
      token_ids_logprob: [279, 315],
      sampling_params: { max_new_tokens: 3, ignore_eos: true },
    });
    const meta = r.meta_info;
    expect(meta.input_token_logprobs).toEqual(ids.map((id, p) => [p === 0 ? null : syntheticLogprob(id, p), id, null]));
    expect(meta.output_token_logprobs).toEqual(r.output_ids.map((id: number, k: number) => [syntheticLogprob(id, ids.length + k), id, null]));
    expect(meta.input_top_logprobs[0]).toBeNull();
    expect(meta.input_top_logprobs).toHaveLength(4);
    for (const top of meta.output_top_logprobs) {
      expect(top).toHaveLength(2);
      expect(top[0][0]).toBeGreaterThan(top[1][0]);
    }
    expect(meta.output_top_logprobs.map((t: any) => t[0][1])).toEqual(r.output_ids);
    expect(meta.output_token_ids_logprobs).toHaveLength(3);
    expect(meta.output_token_ids_logprobs[0].map((e: any) => e[1])).toEqual([279, 315]);
    expect(meta.input_token_ids_logprobs[0]).toBeNull();
    for (const [lp] of meta.output_token_logprobs) expect(lp).toBeLessThan(0);
  });

  it('returns output lists only by default (logprob_start_len -1), with text when asked', async () => {
    const m = await mocker();
    const r = await generate(m, { text: 'hello', return_logprob: true, return_text_in_logprobs: true, sampling_params: { max_new_tokens: 2, ignore_eos: true } });
    expect(r.meta_info.input_token_logprobs).toEqual([]);
    expect(r.meta_info.output_token_logprobs).toHaveLength(2);
    expect(r.meta_info.output_token_logprobs.map((e: any) => e[2]).join('')).toBe(r.text);
    expect(r.meta_info).not.toHaveProperty('output_top_logprobs');
    const plain = await generate(m, { text: 'hello', sampling_params: { max_new_tokens: 2 } });
    expect(plain.meta_info).not.toHaveProperty('output_token_logprobs');
  });

  it('streams cumulative lists, or slices them per chunk with --incremental-streaming-output', async () => {
    const body = { input_ids: [5, 6, 7], return_logprob: true, logprob_start_len: 1, stream: true, sampling_params: { max_new_tokens: 4, ignore_eos: true } };
    const cumulative = await mocker();
    const c = (sseEvents((await post(`${cumulative.url}/generate`, body)).text).slice(0, -1) as any[]).map((e) => e.meta_info);
    expect(c.map((x) => x.output_token_logprobs.length)).toEqual([1, 2, 3, 4]);
    for (const x of c) expect(x.input_token_logprobs).toEqual([[syntheticLogprob(6, 1), 6, null], [syntheticLogprob(7, 2), 7, null]]);
    const inc = await mocker({ incrementalStreamingOutput: true });
    const d = (sseEvents((await post(`${inc.url}/generate`, body)).text).slice(0, -1) as any[]).map((e) => e.meta_info);
    expect(d.map((x) => x.output_token_logprobs.length)).toEqual([1, 1, 1, 1]);
    expect(d.map((x) => x.input_token_logprobs.length)).toEqual([2, 0, 0, 0]);
    expect(d.flatMap((x) => x.output_token_logprobs)).toEqual(c.at(-1).output_token_logprobs);
  });

  it('a batch carries each item’s own logprob settings', async () => {
    const m = await mocker();
    const r = await generate(m, { text: ['ab', 'cd'], return_logprob: [true, false], sampling_params: { max_new_tokens: 1 } });
    expect(r[0].meta_info.output_token_logprobs).toHaveLength(1);
    expect(r[1].meta_info).not.toHaveProperty('output_token_logprobs');
  });
});
