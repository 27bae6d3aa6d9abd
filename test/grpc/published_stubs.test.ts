// kvgate's gRPC ends against the contract's published implementation: smg-grpc-proto's
// generated Python stubs on grpcio (test/grpc/published_stubs.py), so neither side is
// checked only against kvgate's own .proto.
// - The published client drives the mocker's gRPC server: streamed chunks of new ids with
//   running counts, the Complete repeating the last chunk's ids, a non-streamed Complete with
//   all ids, the Abort RPC ending the stream with a status, errors as status codes, loads,
//   flush.
// - kvgate's client reads a server made of the published message classes, and sends every
//   sampling field (the engine's defaults where the request leaves them open).
// SGLang's servicer itself (smg-grpc-servicer) cannot run here: it imports SGLang's runtime
// (sglang.srt, torch) and needs its scheduler processes and a model.

import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GenerateChunk } from '../../src/engine/client.js';
import { SglangGrpcEngine } from '../../src/engine/sglang_grpc.js';
import { fromStruct } from '../../src/engine/sglang_grpc_schema.js';
import { startMocker, type MockerHandle } from '../../src/mocker/index.js';
import { publishedStubsPython } from './published_proto.js';

const script = fileURLToPath(new URL('./published_stubs.py', import.meta.url));
let py: string;

beforeAll(() => {
  py = publishedStubsPython();
}, 180_000);

async function collect(it: AsyncIterable<GenerateChunk>): Promise<GenerateChunk[]> {
  const out: GenerateChunk[] = [];
  for await (const c of it) out.push(c);
  return out;
}

describe('the published stubs drive the mocker in gRPC mode', () => {
  let m: MockerHandle;
  beforeAll(async () => {
    m = await startMocker({ port: 0, grpcMode: true, pageSize: 16, speedupRatio: 20 });
    await m.ready;
  });
  afterAll(() => m?.close(0));

  it('streams, completes, aborts and reports as SGLang\'s servicer does', async () => {
    const { stdout } = await promisify(execFile)(py, [script, 'client', m.url.replace('grpc://', '')], { timeout: 60_000 });
    const r = JSON.parse(stdout);
    expect(r.health).toEqual({ healthy: true });
    expect(r.model_info).toEqual({ served_model_name: 'Qwen/Qwen3-0.6B', max_context_length: 40960, eos_token_ids: [151645] });
    expect(r.server_info).toEqual({ server_type: 'grpc', page_size: 16, max_total_num_tokens: 262144 });
    const chunks = r.stream.chunks as { token_ids: number[]; completion_tokens: number }[];
    const ids = chunks.flatMap((c) => c.token_ids);
    expect(ids).toHaveLength(8);
    expect(chunks.map((c) => c.completion_tokens)).toEqual(chunks.map((_, i) => chunks.slice(0, i + 1).flatMap((c) => c.token_ids).length));
    expect(r.stream.complete).toEqual({ output_ids: chunks.at(-1)!.token_ids, finish_reason: 'length', prompt_tokens: 40, completion_tokens: 8, cached_tokens: 0 });
    // Not streamed: one Complete with every id (the prompt's full pages cached by then).
    expect(r.unary).toEqual([{ kind: 'complete', output_ids: ids, cached_tokens: 32 }]);
    expect(r.abort_rpc).toEqual({ success: true });
    expect(r.abort_status).toBe('INTERNAL');
    expect(r.bad_status).toBe('INVALID_ARGUMENT');
    expect(r.loads).toEqual({ dp_rank_count: 1, running: [0] });
    expect(r.flush).toEqual({ success: true });

    // kvgate's client gets the same ids for the same request.
    const client = new SglangGrpcEngine(m.url);
    try {
      const mine = await collect(client.generate({ requestId: 'ts-same', tokenIds: Array.from({ length: 40 }, (_, i) => 1000 + i), sampling: { maxNewTokens: 8, ignoreEos: true, temperature: 0 } }));
      expect(mine.flatMap((c) => c.tokenIds)).toEqual(ids);
    } finally {
      await client.close();
    }
  });
});

describe('kvgate\'s client against a server of the published message classes', () => {
  let server: ChildProcess;
  let client: SglangGrpcEngine;
  beforeAll(async () => {
    server = spawn(py, [script, 'server'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const port = await new Promise<string>((resolve, reject) => {
      let out = '';
      server.stdout!.on('data', (d) => {
        out += d;
        const m = /listening (\d+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      server.on('exit', (code) => reject(new Error(`published_stubs.py server exited with ${code}`)));
    });
    client = new SglangGrpcEngine(`grpc://127.0.0.1:${port}`);
  });
  afterAll(async () => {
    await client?.close();
    server?.stdin!.end();
    if (server && server.exitCode === null) await new Promise((r) => server.once('exit', r));
  });

  it('reads chunks, the finish and usage, and sends every sampling field', async () => {
    const chunks = await collect(client.generate({ requestId: 'ts-1', tokenIds: [5, 6, 7, 8], sampling: { maxNewTokens: 5, stopTokenIds: [151645] }, dpRank: 0 }));
    expect(chunks.flatMap((c) => c.tokenIds)).toEqual([10, 11, 151645]);
    expect(chunks.at(-1)!.finishReason).toEqual({ type: 'stop', matched: 151645 });
    expect(chunks.at(-1)!.usage).toEqual({ promptTokens: 4, completionTokens: 3, cachedTokens: 3 });
    expect(chunks[0]!.cachedTokens).toBe(3);
    const sent = fromStruct((await client.serverInfo()).server_args)['last_request'];
    expect(sent).toEqual({
      request_id: 'ts-1',
      input_ids: [5, 6, 7, 8],
      stream: true,
      // Left open by the request: the engine's default_sampling_params_json, then SGLang's neutral values.
      temperature: 0.6,
      top_p: 0.95,
      top_k: -1,
      min_p: 0,
      repetition_penalty: 1,
      max_new_tokens: 5,
      stop_token_ids: [151645],
      skip_special_tokens: true,
      n: 1,
      ignore_eos: false,
      data_parallel_rank: 0,
    });
  });

  it('reads the model card from SGLang-shaped info (context length from GetModelInfo when ServerArgs has none)', async () => {
    expect(await client.modelCard()).toMatchObject({
      servedModelName: 'scripted',
      modelPath: '/models/scripted',
      pageSize: 16,
      contextLength: 4096,
      maxTotalNumTokens: 8192,
      totalKvBlocks: 512,
      maxRunningRequests: 128,
      dpSize: 1,
      role: 'agg',
      engine: 'sglang',
      engineVersion: '0.5.23',
    });
  });

  it('reports the engine\'s INVALID_ARGUMENT as invalid_request', async () => {
    await expect(collect(client.generate({ requestId: 'ts-2', tokenIds: [1], sampling: { maxNewTokens: 0 } }))).rejects.toMatchObject({
      code: 'invalid_request',
      message: expect.stringMatching(/INVALID_ARGUMENT: max_new_tokens must be positive/),
    });
  });
});
