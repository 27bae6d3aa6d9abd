// Load readings in the engine's three formats, and the model card read from a real engine
// (the mocker's SGLang HTTP API) or refused when the engine does not report a field.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SglangHttpEngine } from '../../src/engine/sglang_http.js';
import { startMocker, type MockerHandle } from '../../src/mocker/index.js';
import { parseGetLoad, parseMetrics, parseV1Loads } from '../../src/worker/load_poller.js';
import { readModelCard, type GetJson } from '../../src/engine/model_card.js';

const cap = { pageSize: 16, maxTotalNumTokens: 1600, dpSize: 2 };

describe('load readings', () => {
  it('reads /v1/loads', () => {
    const body = {
      timestamp: '2026-01-01T00:00:00Z',
      loads: [
        { dp_rank: 1, num_running_reqs: 2, num_waiting_reqs: 1, num_used_tokens: 33, max_total_num_tokens: 1600, token_usage: 0.02 },
        { dp_rank: 0, num_running_reqs: 5, num_waiting_reqs: 0, num_used_tokens: 160, max_total_num_tokens: 1600, token_usage: 0.1 },
      ],
    };
    expect(parseV1Loads(body, cap)).toEqual([
      { dpRank: 0, running: 5, queued: 0, kvUsedTokens: 160, kvTotalTokens: 1600, kvUsedBlocks: 10, kvTotalBlocks: 100, tokenUsage: 0.1 },
      { dpRank: 1, running: 2, queued: 1, kvUsedTokens: 33, kvTotalTokens: 1600, kvUsedBlocks: 3, kvTotalBlocks: 100, tokenUsage: 0.02 },
    ]);
    expect(parseV1Loads({ loads: [] }, cap)).toBeNull();
    expect(parseV1Loads('nope', cap)).toBeNull();
  });

  it('reads /get_load (num_reqs counts the waiting ones too)', () => {
    const body = [{ dp_rank: 0, num_reqs: 7, num_waiting_reqs: 3, num_tokens: 400, num_pending_tokens: 80, ts_tic: 1.5 }];
    expect(parseGetLoad(body, cap)).toEqual([
      { dpRank: 0, running: 4, queued: 3, kvUsedTokens: 320, kvTotalTokens: 1600, kvUsedBlocks: 20, kvTotalBlocks: 100, tokenUsage: 0.2 },
    ]);
    expect(parseGetLoad([{ dp_rank: 0 }], cap)).toBeNull();
  });

  it('reads Prometheus /metrics with either prefix, per dp rank', () => {
    const text = [
      '# HELP sglang:num_running_reqs The number of running requests.',
      '# TYPE sglang:num_running_reqs gauge',
      'sglang:num_running_reqs{model_name="m",engine_type="unified",tp_rank="0",dp_rank="0"} 3.0',
      'sglang:num_running_reqs{model_name="m",engine_type="unified",tp_rank="0",dp_rank="1"} 1.0',
      'sglang:num_queue_reqs{model_name="m",dp_rank="0"} 2.0',
      'sglang:num_queue_reqs{model_name="m",dp_rank="1"} 0.0',
      'sglang_num_used_tokens{model_name="m",dp_rank="0"} 48.0',
      'sglang_num_used_tokens{model_name="m",dp_rank="1"} 16.0',
      'sglang:token_usage{model_name="m",dp_rank="0"} 0.03',
      'sglang:prompt_tokens_total{model_name="m"} 1234.0',
    ].join('\n');
    expect(parseMetrics(text, cap)).toEqual([
      { dpRank: 0, running: 3, queued: 2, kvUsedTokens: 48, kvTotalTokens: 1600, kvUsedBlocks: 3, kvTotalBlocks: 100, tokenUsage: 0.03 },
      { dpRank: 1, running: 1, queued: 0, kvUsedTokens: 16, kvTotalTokens: 1600, kvUsedBlocks: 1, kvTotalBlocks: 100, tokenUsage: 0.01 },
    ]);
    expect(parseMetrics('# nothing here\n', cap)).toBeNull();
  });
});

describe('model card', () => {
  let mocker: MockerHandle;
  beforeAll(async () => {
    mocker = await startMocker({
      port: 0,
      pageSize: 16,
      maxTotalTokens: 1000,
      maxRunningRequests: 48,
      dpSize: 2,
      servedModelName: 'served-name',
      modelPath: 'Qwen/Qwen3-0.6B',
      contextLength: 8192,
      disaggregationMode: 'prefill',
      disaggregationBootstrapPort: 0,
    });
    await mocker.ready;
  });
  afterAll(() => mocker.close());

  it('is read from the engine, not guessed', async () => {
    const engine = new SglangHttpEngine(mocker.url);
    const card = await readModelCard((p) => engine.getJson(p), { role: 'prefill', engine: 'mocker', migrationLimit: 2, advertiseHost: '10.0.0.7', engineUrl: 'http://10.0.0.7:30001' });
    expect(card).toMatchObject({
      servedModelName: 'served-name',
      modelPath: 'Qwen/Qwen3-0.6B',
      tokenizerPath: 'Qwen/Qwen3-0.6B',
      contextLength: 8192,
      pageSize: 16,
      maxTotalNumTokens: 1000,
      totalKvBlocks: 63, // ceil(1000 / 16)
      maxRunningRequests: 48,
      dpSize: 2,
      role: 'prefill',
      bootstrapHost: '10.0.0.7',
      bootstrapPort: mocker.bootstrapPort,
      migrationLimit: 2,
      engine: 'mocker',
      engineUrl: 'http://10.0.0.7:30001',
    });
  });

  it('refuses a role the engine does not run', async () => {
    const engine = new SglangHttpEngine(mocker.url);
    await expect(readModelCard((p) => engine.getJson(p), { role: 'agg', engine: 'mocker', migrationLimit: 0, advertiseHost: 'h', engineUrl: 'http://h:1' })).rejects.toThrow(
      /disaggregation mode 'prefill', but the worker role is agg/,
    );
  });

  it('names a field the engine does not report instead of inventing it', async () => {
    const server = { served_model_name: 'm', model_path: 'p', tokenizer_path: 'p', page_size: 16, dp_size: 1, context_length: 4096 };
    const get: GetJson = async (path) =>
      path === '/server_info' ? { status: 200, body: server } : path === '/model_info' ? { status: 200, body: { model_path: 'p' } } : { status: 404, body: '' };
    await expect(readModelCard(get, { role: 'agg', engine: 'sglang', migrationLimit: 0, advertiseHost: 'h', engineUrl: 'http://h:1' })).rejects.toThrow(/max_total_num_tokens/);
    // Old route names are followed on 404.
    const old: GetJson = async (path) =>
      path === '/get_server_info'
        ? { status: 200, body: { ...server, max_total_num_tokens: 320 } }
        : path === '/get_model_info'
          ? { status: 200, body: { model_path: 'p' } }
          : { status: 404, body: '' };
    expect((await readModelCard(old, { role: 'agg', engine: 'sglang', migrationLimit: 0, advertiseHost: 'h', engineUrl: 'http://h:1' })).totalKvBlocks).toBe(20);
  });
});
