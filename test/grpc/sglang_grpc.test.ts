// The gRPC engine client (src/engine/sglang_grpc.ts) against the mocker's gRPC server
// (--grpc-mode) over a real socket: streamed disjoint token ids equal to what the same
// engine gives over HTTP, finish reasons, cached tokens, abort (the call cancelled, and the
// Abort RPC) freeing the engine's slot, health, model/server info, loads, flush, errors.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerateChunk, GenerateRequest } from '../../src/engine/client.js';
import { SglangGrpcEngine } from '../../src/engine/sglang_grpc.js';
import { KvgateError } from '../../src/errors.js';
import { startMocker, type MockerHandle } from '../../src/mocker/index.js';
import { generate as httpGenerate } from '../mocker/helpers.js';

const EOS = 151645;
let grpcMocker: MockerHandle;
let httpMocker: MockerHandle;
let client: SglangGrpcEngine;

beforeAll(async () => {
  const opts = { port: 0, pageSize: 16, speedupRatio: 20, seed: 7 };
  grpcMocker = await startMocker({ ...opts, grpcMode: true });
  httpMocker = await startMocker(opts);
  await Promise.all([grpcMocker.ready, httpMocker.ready]);
  client = new SglangGrpcEngine(grpcMocker.url);
});

afterAll(async () => {
  await client?.close();
  await Promise.all([grpcMocker?.close(0), httpMocker?.close(0)]);
});

let n = 0;
function request(tokenIds: number[], sampling: GenerateRequest['sampling']): GenerateRequest {
  return { requestId: `g-${n++}`, tokenIds, sampling };
}

async function collect(it: AsyncIterable<GenerateChunk>): Promise<GenerateChunk[]> {
  const out: GenerateChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

async function until(cond: () => Promise<boolean>, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const prompt = (seed: number, len: number) => Array.from({ length: len }, (_, i) => 1000 + ((seed * 7919 + i * 31) % 50000));
const running = async () => (await client.loads()).loads.reduce((a, l) => a + l.num_running_reqs + l.num_waiting_reqs, 0);

describe('SglangGrpcEngine against the mocker in gRPC mode', () => {
  it('streams disjoint token ids, the same as the engine gives over HTTP, with usage and cached tokens', async () => {
    const ids = prompt(1, 64);
    const chunks = await collect(client.generate(request(ids, { maxNewTokens: 12, ignoreEos: true, temperature: 0 })));
    const last = chunks.at(-1)!;
    expect(chunks.slice(0, -1).every((c) => c.tokenIds.length > 0 && !c.finishReason)).toBe(true);
    expect(last.finishReason).toEqual({ type: 'length', length: 12 });
    expect(last.usage).toEqual({ promptTokens: 64, completionTokens: 12, cachedTokens: 0 });
    const got = chunks.flatMap((c) => c.tokenIds);
    const http = await httpGenerate(httpMocker, { input_ids: ids, sampling_params: { max_new_tokens: 12, ignore_eos: true, temperature: 0 } });
    expect(got).toEqual(http.output_ids);

    // The same prompt again: its full pages come from the prefix cache, on every chunk.
    const again = await collect(client.generate(request(ids, { maxNewTokens: 4, ignoreEos: true })));
    expect(again[0]!.cachedTokens).toBe(48);
    expect(again.at(-1)!.usage!.cachedTokens).toBe(48);
  });

  it('reports a stop on EOS with the matched token id', async () => {
    const chunks = await collect(client.generate(request(prompt(2, 20), { maxNewTokens: 2000 })));
    const last = chunks.at(-1)!;
    expect(last.finishReason).toEqual({ type: 'stop', matched: EOS });
    expect(chunks.flatMap((c) => c.tokenIds).at(-1)).toBe(EOS);
    expect(last.usage!.completionTokens).toBe(chunks.flatMap((c) => c.tokenIds).length);
  });

  it('aborting the signal mid-stream cancels the call and frees the engine slot', async () => {
    const ctl = new AbortController();
    const seen: number[] = [];
    for await (const c of client.generate(request(prompt(3, 32), { maxNewTokens: 20000, ignoreEos: true }), ctl.signal)) {
      seen.push(...c.tokenIds);
      if (seen.length >= 3) ctl.abort();
    }
    expect(seen.length).toBeGreaterThanOrEqual(3);
    expect(seen.length).toBeLessThan(20000);
    await until(async () => (await running()) === 0);
    expect((await client.serverInfo()).active_requests).toBe(0);
  });

  it('a consumer that stops reading early aborts the request upstream', async () => {
    for await (const c of client.generate(request(prompt(4, 32), { maxNewTokens: 20000, ignoreEos: true }))) {
      if (c.tokenIds.length > 0) break;
    }
    await until(async () => (await running()) === 0);
  });

  it('the Abort RPC ends a running request with a gRPC error the client reports', async () => {
    const req = request(prompt(5, 32), { maxNewTokens: 20000, ignoreEos: true });
    const stream = client.generate(req)[Symbol.asyncIterator]();
    await stream.next();
    const res = await client.abort(req.requestId);
    expect(res).toMatchObject({ success: true });
    const err = await (async () => {
      for (;;) if ((await stream.next()).done) return null;
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KvgateError);
    expect((err as KvgateError).code).toBe('engine_error');
    expect((err as KvgateError).message).toMatch(/INTERNAL: Aborted/);
    await until(async () => (await running()) === 0);
  });

  it('health, model info, server info and loads describe the engine', async () => {
    expect(await client.healthCheck()).toEqual(expect.objectContaining({ healthy: true, message: 'Health check passed' }));
    const info = await client.modelInfo();
    expect(info).toMatchObject({ model_path: 'Qwen/Qwen3-0.6B', served_model_name: 'Qwen/Qwen3-0.6B', is_generation: true, max_context_length: 40960, vocab_size: 151936 });
    expect(info.eos_token_ids).toEqual([EOS]);
    const server = await client.serverInfo();
    expect(server.server_type).toBe('grpc');
    expect(server.max_total_num_tokens).toBe(262144);
    const loads = await client.loads();
    expect(loads.dp_rank_count).toBe(1);
    expect(loads.loads[0]).toMatchObject({ dp_rank: 0, num_running_reqs: 0, max_total_num_tokens: 262144 });
    const card = await client.modelCard();
    expect(card).toMatchObject({ servedModelName: 'Qwen/Qwen3-0.6B', pageSize: 16, contextLength: 40960, maxTotalNumTokens: 262144, dpSize: 1, role: 'agg', engine: 'mocker' });
    await expect(client.loads(['bogus'])).rejects.toMatchObject({ code: 'invalid_request' });
  });

  it('flushes the cache only when idle', async () => {
    const ids = prompt(6, 64);
    await collect(client.generate(request(ids, { maxNewTokens: 2, ignoreEos: true })));
    const ctl = new AbortController();
    const busy = client.generate(request(prompt(7, 16), { maxNewTokens: 20000, ignoreEos: true }), ctl.signal)[Symbol.asyncIterator]();
    await busy.next();
    expect(await client.flushCache(0)).toMatchObject({ success: false });
    ctl.abort();
    await busy.next();
    await until(async () => (await running()) === 0);
    expect(await client.flushCache(0)).toMatchObject({ success: true });
    const after = await collect(client.generate(request(ids, { maxNewTokens: 2, ignoreEos: true })));
    expect(after.at(-1)!.usage!.cachedTokens).toBe(0);
  });

  it('reports an invalid request and an unreachable engine as registry errors', async () => {
    await expect(collect(client.generate(request([200000], { maxNewTokens: 2 })))).rejects.toMatchObject({ code: 'invalid_request', message: expect.stringMatching(/out-of-vocabulary/) });
    const dead = new SglangGrpcEngine('grpc://127.0.0.1:1');
    try {
      await expect(collect(dead.generate(request([1, 2], { maxNewTokens: 2 })))).rejects.toMatchObject({ code: 'engine_unavailable', message: expect.stringMatching(/UNAVAILABLE/) });
      expect(await dead.healthy()).toBe(false);
    } finally {
      await dead.close();
    }
  });
});
