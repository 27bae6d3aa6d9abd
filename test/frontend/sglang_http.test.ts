// The SGLang HTTP engine client against an SGLang-speaking server: disjoint chunks from
// cumulative and incremental streams, the request body, aborts the engine sees, errors.

import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { GenerateChunk, GenerateRequest } from '../../src/engine/client.js';
import { SglangHttpEngine, generateBody } from '../../src/engine/sglang_http.js';
import { KvgateError } from '../../src/errors.js';
import { startFakeSglang, type FakeSglang } from './fixtures/fake_sglang.js';

const engines: FakeSglang[] = [];
afterEach(async () => {
  await Promise.all(engines.splice(0).map((e) => e.close()));
});

async function fake(opts: Parameters<typeof startFakeSglang>[0]): Promise<FakeSglang> {
  const f = await startFakeSglang(opts);
  engines.push(f);
  return f;
}

function request(over: Partial<GenerateRequest> = {}): GenerateRequest {
  return { requestId: `r-${Math.random().toString(16).slice(2)}`, tokenIds: [1, 2, 3], sampling: { maxNewTokens: 16, temperature: 0, stopTokenIds: [99] }, ...over };
}

async function collect(it: AsyncIterable<GenerateChunk>): Promise<GenerateChunk[]> {
  const out: GenerateChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

async function waitFor(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('SglangHttpEngine.generate', () => {
  it('gives the same disjoint chunks for cumulative and incremental engine streams', async () => {
    const reply = () => [10, 11, 12, 13, 99, 14];
    for (const incremental of [false, true]) {
      const f = await fake({ reply, incremental, cachedTokens: 2, tokenDelayMs: 5 });
      const chunks = await collect(new SglangHttpEngine(f.url).generate(request()));
      expect(chunks.map((c) => c.tokenIds)).toEqual([[10], [11], [12], [13], [99]]);
      expect(chunks.at(-1)!.finishReason).toEqual({ type: 'stop', matched: 99 });
      expect(chunks.at(-1)!.usage).toEqual({ promptTokens: 3, completionTokens: 5, cachedTokens: 2 });
      expect(chunks[0]!.cachedTokens).toBe(2);
    }
  });

  it('passes on frames that arrived together as one chunk', async () => {
    // Without delays the engine's frames reach the client in fewer reads than frames.
    const f = await fake({ reply: () => Array.from({ length: 200 }, (_, i) => i + 1) });
    const chunks = await collect(new SglangHttpEngine(f.url).generate(request({ sampling: { maxNewTokens: 200 } })));
    expect(chunks.flatMap((c) => c.tokenIds)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(chunks.length).toBeLessThan(200);
    expect(chunks.at(-1)!.finishReason).toEqual({ type: 'length', length: 200 });
  });

  it('reports a length finish', async () => {
    const f = await fake({ reply: () => [5, 5, 5, 5, 5] });
    const chunks = await collect(new SglangHttpEngine(f.url).generate(request({ sampling: { maxNewTokens: 3 } })));
    expect(chunks.flatMap((c) => c.tokenIds)).toEqual([5, 5, 5]);
    expect(chunks.at(-1)!.finishReason).toEqual({ type: 'length', length: 3 });
  });

  it("sends input_ids and SGLang's sampling parameter names", async () => {
    const f = await fake({});
    const req = request({
      sampling: { maxNewTokens: 7, temperature: 0.5, topP: 0.9, topK: 20, minP: 0.1, seed: 42, frequencyPenalty: 0.1, presencePenalty: 0.2, repetitionPenalty: 1.1, minNewTokens: 2, ignoreEos: true, stopTokenIds: [151645] },
      dpRank: 1,
    });
    await collect(new SglangHttpEngine(f.url).generate(req));
    expect(f.received[0]).toEqual({
      rid: req.requestId,
      input_ids: [1, 2, 3],
      stream: true,
      data_parallel_rank: 1,
      sampling_params: {
        max_new_tokens: 7, temperature: 0.5, top_p: 0.9, top_k: 20, min_p: 0.1, sampling_seed: 42,
        frequency_penalty: 0.1, presence_penalty: 0.2, repetition_penalty: 1.1, min_new_tokens: 2, ignore_eos: true, stop_token_ids: [151645],
      },
    });
  });

  it('writes a 63-bit bootstrap_room exactly', () => {
    const room = (1n << 62n) + 12345n;
    const body = generateBody(request({ bootstrap: { host: '10.0.0.1', port: 8998, room } }));
    expect(body).toContain(`"bootstrap_room":${room.toString()}`);
    expect(JSON.parse(body).bootstrap_host).toBe('10.0.0.1');
  });

  it('aborts upstream when the signal fires: the engine sees the connection drop and /abort_request', async () => {
    const f = await fake({ reply: () => Array.from({ length: 100 }, (_, i) => i + 1), tokenDelayMs: 20 });
    const ctl = new AbortController();
    const req = request({ sampling: { maxNewTokens: 100 } });
    const got: number[] = [];
    const engine = new SglangHttpEngine(f.url);
    for await (const c of engine.generate(req, ctl.signal)) {
      got.push(...c.tokenIds);
      if (got.length === 3) ctl.abort();
    }
    expect(got.length).toBeLessThan(10);
    await waitFor(() => f.disconnected.includes(req.requestId) && f.abortRequests.includes(req.requestId));
    expect(f.running.size).toBe(0);
    // The aborted stream's connection is closed, not pooled; a finished one goes back idle.
    await waitFor(() => engine.connections.sockets === 0);
    await collect(engine.generate(request()));
    await waitFor(() => engine.connections.idle === 1);
    expect(engine.connections).toEqual({ sockets: 1, idle: 1, waiting: 0 });
    await engine.close();
    expect(engine.connections.sockets).toBe(0);
  });

  it('aborts upstream when the consumer stops reading', async () => {
    const f = await fake({ reply: () => Array.from({ length: 100 }, (_, i) => i + 1), tokenDelayMs: 20 });
    const req = request({ sampling: { maxNewTokens: 100 } });
    for await (const c of new SglangHttpEngine(f.url).generate(req)) if (c.tokenIds.length > 0) break;
    await waitFor(() => f.disconnected.includes(req.requestId));
  });

  it('passes through the abort finish reason', async () => {
    const f = await fake({ reply: () => [1, 2, 3, 4], abortAfter: 2 });
    const chunks = await collect(new SglangHttpEngine(f.url).generate(request()));
    expect(chunks.at(-1)!.finishReason).toEqual({ type: 'abort', message: 'fake abort', statusCode: 500 });
  });

  it('sends a request again on a new connection when the engine closed the kept-alive one under it', async () => {
    // Each connection answers one request, then resets when the next arrives on it: the
    // engine closing an idle pooled connection just as a request is written to it.
    const frame = (o: object) => `data: ${JSON.stringify(o)}\n\n`;
    const sse = frame({ output_ids: [5], meta_info: { prompt_tokens: 3, completion_tokens: 1, finish_reason: { type: 'length', length: 1 } } }) + 'data: [DONE]\n\n';
    let connections = 0;
    const server = createServer((socket) => {
      connections++;
      let seen = '';
      let answered = false;
      socket.on('error', () => undefined);
      socket.on('data', (d) => {
        if (answered) return socket.resetAndDestroy();
        seen += d.toString('latin1');
        const head = seen.indexOf('\r\n\r\n');
        const length = Number(/content-length: (\d+)/i.exec(seen)?.[1] ?? 0);
        if (head < 0 || seen.length < head + 4 + length) return;
        answered = true;
        socket.write(`HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: ${sse.length}\r\n\r\n${sse}`);
      });
    });
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
    const engine = new SglangHttpEngine(`http://127.0.0.1:${port}`);
    try {
      for (let i = 0; i < 3; i++) {
        const chunks = await collect(engine.generate(request()));
        expect(chunks.flatMap((c) => c.tokenIds)).toEqual([5]);
        await new Promise((r) => setTimeout(r, 50)); // the connection back in the pool
      }
      expect(connections).toBe(3);
    } finally {
      await engine.close();
      server.close();
    }
  });

  it('turns engine failures into KvgateErrors', async () => {
    const codeOf = async (url: string, opts?: Parameters<typeof startFakeSglang>[0]) => {
      const target = opts ? (await fake(opts)).url : url;
      try {
        await collect(new SglangHttpEngine(target).generate(request()));
        return 'none';
      } catch (e) {
        expect(e).toBeInstanceOf(KvgateError);
        return `${(e as KvgateError).code}: ${(e as KvgateError).message}`;
      }
    };
    expect(await codeOf('', { failStatus: 400 })).toMatch(/^invalid_request: .*400: fake engine refuses/);
    expect(await codeOf('', { failStatus: 500 })).toMatch(/^engine_error: .*500: fake engine refuses/);
    expect(await codeOf('', { failStatus: 503 })).toMatch(/^engine_unavailable: .*503/);
    expect(await codeOf('', { reply: () => [1, 2, 3, 4], dropAfter: 2 })).toMatch(/^engine_unavailable: .*stream broke/);
    // A port nothing listens on.
    const port = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    expect(await codeOf(`http://127.0.0.1:${port}`)).toMatch(/^engine_unavailable: .*unreachable: ECONNREFUSED/);
  });
});

describe('SglangHttpEngine.modelCard', () => {
  it('reads /server_info and /model_info', async () => {
    const f = await fake({ servedModelName: 'm1', contextLength: 8192, pageSize: 32 });
    const e = new SglangHttpEngine(f.url + '/');
    expect(e.url).toBe(f.url);
    expect(await e.healthy()).toBe(true);
    const card = await e.modelCard();
    expect(card).toMatchObject({ servedModelName: 'm1', modelPath: 'fake/model', contextLength: 8192, pageSize: 32, maxTotalNumTokens: 65536, totalKvBlocks: 2048, dpSize: 1, role: 'agg' });
  });
});
