// `kvgate router` as SGLang's router users run it: the CLI process, workers given by URL
// (kvgate mocker servers, as plain SGLang servers), every route checked for what a client sees.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { closeAll, get, mocker, post, sseEvents } from '../mocker/helpers.js';
import { KVGATE } from '../e2e/stack.js';
import { spawnSync } from 'node:child_process';
import { metricValue, startKvgateRouter, stopAllProcesses } from './helpers.js';
import { syntheticLogprob } from '../../src/mocker/logprobs.js';

afterEach(async () => {
  await stopAllProcesses();
  await closeAll();
});

const kvgate = (args: string[]) => spawnSync(KVGATE[0]!, [...KVGATE.slice(1), ...args], { encoding: 'utf8', timeout: 30_000 });

async function metrics(url: string): Promise<string> {
  const r = await get(`${url}/metrics`);
  expect(r.status).toBe(200);
  return r.text;
}

// Polls the router's metrics until `ok` holds for them (or 5 s pass); returns the last body.
async function metricsWhen(url: string, ok: (text: string) => boolean): Promise<string> {
  let text = await metrics(url);
  for (let i = 0; i < 250 && !ok(text); i++) {
    await new Promise((res) => setTimeout(res, 20));
    text = await metrics(url);
  }
  return text;
}

// Requests sent to each worker, from the router's own counter.
async function perWorker(url: string, workers: string[]): Promise<number[]> {
  const text = await metrics(url);
  return workers.map((w) => metricValue(text, 'sgl_router_processed_requests_total', `worker="${w}"`) || 0);
}

const prompt = (n: number, seed: string) => Array.from({ length: n }, (_, i) => `${seed}${i}`).join(' ');

describe('kvgate router: command line', () => {
  it('refuses an unknown flag with a hint, and --prefill without --pd-disaggregation', () => {
    const r = kvgate(['router', '--worker-url', 'http://127.0.0.1:1']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("unknown option --worker-url for 'kvgate router'; did you mean --worker-urls?");
    const pd = kvgate(['router', '--prefill', 'http://127.0.0.1:1', '8998']);
    expect(pd.status).not.toBe(0);
    expect(pd.stderr).toContain('--prefill/--decode need --pd-disaggregation');
    const bad = kvgate(['router', '--pd-disaggregation', '--prefill', 'http://127.0.0.1:1', 'x', '--decode', 'http://127.0.0.1:2']);
    expect(bad.stderr).toContain('bootstrap port must be 1-65535 or none');
  });

  it('lists SGLang\'s defaults in --help', () => {
    const r = kvgate(['router', '--help']);
    expect(r.status).toBe(0);
    for (const line of [/--policy .*\(default: "cache_aware"\)/, /--cache-threshold .*\(default: 0.3\)/, /--balance-abs-threshold .*\(default: 64\)/, /--max-tree-size .*\(default: 67108864\)/, /--retry-max-retries .*\(default: 5\)/, /--cb-failure-threshold .*\(default: 10\)/, /--prometheus-port .*\(default: 29000\)/]) {
      expect(r.stdout).toMatch(line);
    }
  });

  it('fails to start when a worker never passes its health check', async () => {
    await expect(startKvgateRouter(['--worker-urls', 'http://127.0.0.1:9', '--worker-startup-timeout-secs', '0.5'])).rejects.toThrow(/did not pass its health check/);
  });
});

describe('kvgate router: routes', () => {
  // On both servers clients can talk to (--http-server is kvgate's own flag).
  it.each(['node', 'uws'])('serves /generate (text, input_ids, streamed), info routes and errors (--http-server %s)', async (server) => {
    const [a, b] = [await mocker(), await mocker()];
    const r = await startKvgateRouter(['--worker-urls', a.url, b.url, '--policy', 'round_robin', '--http-server', server]);
    const text = await post(`${r.url}/generate`, { text: 'hello world', sampling_params: { max_new_tokens: 4, ignore_eos: true } });
    expect(text.status).toBe(200);
    expect(text.json().meta_info.completion_tokens).toBe(4);
    expect(typeof text.json().text).toBe('string');
    const ids = await post(`${r.url}/generate`, { input_ids: [10, 11, 12], sampling_params: { max_new_tokens: 2, ignore_eos: true } });
    expect(ids.json().meta_info.prompt_tokens).toBe(3);
    const stream = await post(`${r.url}/generate`, { input_ids: [10, 11, 12], stream: true, sampling_params: { max_new_tokens: 3, ignore_eos: true } });
    expect(stream.headers.get('content-type')).toBe('text/event-stream');
    const events = sseEvents(stream.text);
    expect(events.at(-1)).toBe('[DONE]');
    expect((events.at(-2) as any).meta_info.completion_tokens).toBe(3);
    // A batch goes to one worker, and its list comes back as it is.
    const batch = await post(`${r.url}/generate`, { text: ['a', 'b'], sampling_params: { max_new_tokens: 1 } });
    expect(batch.status).toBe(200);
    expect(batch.json().map((x: any) => x.meta_info.prompt_tokens)).toEqual([1, 1]);
    // The worker's own errors come back as they are.
    const refused = await post(`${r.url}/generate`, { text: ['a', 'b'], rid: ['x'] });
    expect(refused.status).toBe(400);
    expect(refused.json().error.message).toBe('rid has 1 entries but the batch has 2 prompts.');
    const badJson = await post(`${r.url}/generate`, '{bad');
    expect(badJson.status).toBe(400);
    expect(badJson.json().error.code).toBe('invalid_json');

    const health = await get(`${r.url}/health`);
    expect(health.text).toBe('OK');
    // uWS names itself in a header of every answer; node:http does not.
    expect(health.headers.has('uwebsockets')).toBe(server === 'uws');
    expect((await get(`${r.url}/liveness`)).status).toBe(200);
    expect((await get(`${r.url}/readiness`)).json()).toMatchObject({ status: 'ready', healthy_workers: 2, total_workers: 2 });
    expect((await get(`${r.url}/health_generate`)).status).toBe(200);
    expect((await get(`${r.url}/v1/models`)).json().data[0].id).toBe('Qwen/Qwen3-0.6B');
    expect((await get(`${r.url}/get_model_info`)).json().model_path).toBe('Qwen/Qwen3-0.6B');
    expect((await get(`${r.url}/get_server_info`)).json()).toHaveProperty('dp_size', 1);
    expect((await get(`${r.url}/nope`)).status).toBe(404);
    const flushed = await post(`${r.url}/flush_cache`, '');
    expect(flushed.status).toBe(200);
    expect(flushed.json()).toMatchObject({ status: 'success', workers_flushed: 2 });
  });

  it('adds and removes workers (legacy query API and /workers), and routes to them', async () => {
    const [a, b] = [await mocker(), await mocker()];
    const r = await startKvgateRouter(['--worker-urls', a.url, '--policy', 'round_robin']);
    expect((await get(`${r.url}/list_workers`)).json()).toEqual({ urls: [a.url] });
    const added = await post(`${r.url}/add_worker?url=${encodeURIComponent(b.url)}`, '');
    expect(added.status).toBe(200);
    expect(added.text).toBe(`Successfully added worker: ${b.url}`);
    expect((await get(`${r.url}/list_workers`)).json()).toEqual({ urls: [a.url, b.url] });
    for (let i = 0; i < 4; i++) expect((await post(`${r.url}/generate`, { input_ids: [1, 2], sampling_params: { max_new_tokens: 1 } })).status).toBe(200);
    expect(await perWorker(r.url, [a.url, b.url])).toEqual([2, 2]);
    expect((await post(`${r.url}/add_worker`, '')).status).toBe(400);
    expect((await post(`${r.url}/remove_worker?url=${encodeURIComponent(a.url)}`, '')).text).toBe(`Successfully removed worker: ${a.url}`);
    expect((await post(`${r.url}/remove_worker?url=${encodeURIComponent(a.url)}`, '')).status).toBe(404);
    const list = (await get(`${r.url}/workers`)).json();
    expect(list).toMatchObject({ total: 1, stats: { regular_count: 1, prefill_count: 0, decode_count: 0 } });
    expect(list.workers[0]).toMatchObject({ url: b.url, worker_type: 'regular', is_healthy: true, load: 0 });
    const queued = await post(`${r.url}/workers`, { url: a.url });
    expect(queued.status).toBe(202);
    expect(queued.json().status).toBe('accepted');
    for (let i = 0; i < 50 && (await get(`${r.url}/workers`)).json().total < 2; i++) await new Promise((res) => setTimeout(res, 50));
    expect((await get(`${r.url}/workers`)).json().total).toBe(2);
    const del = await fetch(`${r.url}/workers/${encodeURIComponent(b.url)}`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect((await get(`${r.url}/list_workers`)).json()).toEqual({ urls: [a.url] });
    // No workers left: 503 with OpenAI's error shape.
    await fetch(`${r.url}/workers/${encodeURIComponent(a.url)}`, { method: 'DELETE' });
    const none = await post(`${r.url}/generate`, { input_ids: [1], sampling_params: { max_new_tokens: 1 } });
    expect(none.status).toBe(503);
    expect(none.json().error.code).toBe('no_workers');
  });

  it('passes OpenAI requests through with unknown fields, streamed or not, and echoes request ids', async () => {
    // An OpenAI server that answers with what it received (the mocker has no OpenAI routes).
    const seen: { url: string; body: string; headers: Record<string, unknown> }[] = [];
    const echo: Server = createServer((req, res) => {
      if (req.url === '/health') return void res.end('ok');
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        seen.push({ url: req.url!, body, headers: req.headers });
        if (JSON.parse(body).stream) {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write(`data: ${JSON.stringify({ echo: JSON.parse(body) })}\n\n`);
          res.end('data: [DONE]\n\n');
        } else {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ echo: JSON.parse(body) }));
        }
      });
    });
    await new Promise<void>((res) => echo.listen(0, '127.0.0.1', res));
    try {
      const url = `http://127.0.0.1:${(echo.address() as AddressInfo).port}`;
      const r = await startKvgateRouter(['--worker-urls', url, '--api-key', 'sk-worker']);
      const body = '{"model":"m","messages":[{"role":"user","content":"hi"}],"my_extension":{"x":[1,2]},"seed":12345678901234567890}';
      const chat = await post(`${r.url}/v1/chat/completions`, body, { headers: { 'content-type': 'application/json', 'x-correlation-id': 'corr-1' } });
      expect(chat.status).toBe(200);
      expect(chat.json().echo.my_extension).toEqual({ x: [1, 2] });
      expect(chat.headers.get('x-request-id')).toBe('corr-1');
      // Byte for byte: a 20-digit integer is not rounded through a double.
      expect(seen.at(-1)!.body).toBe(body);
      expect(seen.at(-1)!.headers['authorization']).toBe('Bearer sk-worker');
      const streamed = await post(`${r.url}/v1/completions`, { prompt: 'p', stream: true, extra: true });
      expect(streamed.headers.get('content-type')).toBe('text/event-stream');
      expect(sseEvents(streamed.text)).toEqual([{ echo: { prompt: 'p', stream: true, extra: true } }, '[DONE]']);
      expect(seen.at(-1)!.url).toBe('/v1/completions');
    } finally {
      await new Promise((res) => echo.close(res));
    }
  });

  it('serves /metrics under sgl_router_*, smg_* and kvgate_router_* names, on --port and the Prometheus port', async () => {
    const a = await mocker();
    const r = await startKvgateRouter(['--worker-urls', a.url]);
    await post(`${r.url}/generate`, { input_ids: [5, 6], sampling_params: { max_new_tokens: 1 } });
    const text = await metrics(r.url);
    expect(metricValue(text, 'sgl_router_requests_total', 'route="/generate"')).toBe(1);
    expect(metricValue(text, 'smg_router_requests_total', 'route="/generate"')).toBe(1);
    expect(metricValue(text, 'kvgate_router_requests_total', 'status="200"')).toBeGreaterThanOrEqual(1);
    expect(metricValue(text, 'sgl_router_active_workers')).toBe(1);
    expect(metricValue(text, 'smg_worker_pool_size')).toBe(1);
    expect(metricValue(text, 'smg_worker_cb_state', `worker="${a.url}"`)).toBe(0);
    expect(metricValue(text, 'kvgate_router_inflight_requests')).toBe(0);
    const prom = await get(`http://127.0.0.1:${r.metricsPort}/metrics`);
    expect(metricValue(prom.text, 'sgl_router_requests_total', 'route="/generate"')).toBe(1);
  });
});

describe('kvgate router: policies and failures', () => {
  it('cache_aware sends a shared prefix to the worker that cached it; round_robin does not', async () => {
    const [a, b] = [await mocker(), await mocker()];
    const shared = prompt(200, 'sys');
    const run = async (policy: string) => {
      await post(`${a.url}/flush_cache`, '');
      await post(`${b.url}/flush_cache`, '');
      const r = await startKvgateRouter(['--worker-urls', a.url, b.url, '--policy', policy]);
      let cached = 0;
      for (let i = 0; i < 6; i++) {
        const res = await post(`${r.url}/generate`, { text: `${shared} question ${i}`, sampling_params: { max_new_tokens: 1 } });
        expect(res.status).toBe(200);
        cached += res.json().meta_info.cached_tokens;
      }
      const counts = await perWorker(r.url, [a.url, b.url]);
      await r.stop();
      return { cached, counts };
    };
    const aware = await run('cache_aware');
    expect(aware.counts.sort()).toEqual([0, 6]);
    const rr = await run('round_robin');
    expect(rr.counts).toEqual([3, 3]);
    // Five of six requests hit the shared prefix under cache_aware, four under round_robin.
    expect(aware.cached).toBeGreaterThan(rr.cached);
  });

  it('cache_aware spreads distinct prompts to the worker with the smallest tree', async () => {
    const [a, b] = [await mocker(), await mocker()];
    const r = await startKvgateRouter(['--worker-urls', a.url, b.url]);
    for (let i = 0; i < 4; i++) await post(`${r.url}/generate`, { text: prompt(30, `distinct${i}-`), sampling_params: { max_new_tokens: 1 } });
    expect(await perWorker(r.url, [a.url, b.url])).toEqual([2, 2]);
    const text = await metrics(r.url);
    expect(metricValue(text, 'sgl_router_cache_misses_total')).toBe(4);
    expect(metricValue(text, 'sgl_router_tree_size')).toBeGreaterThan(0);
  });

  it('retries a dead worker\'s requests on another and opens its circuit', async () => {
    const [a, b] = [await mocker(), await mocker()];
    const r = await startKvgateRouter(['--worker-urls', a.url, b.url, '--policy', 'round_robin', '--cb-failure-threshold', '2', '--retry-initial-backoff-ms', '1']);
    await a.close(0);
    for (let i = 0; i < 6; i++) {
      const res = await post(`${r.url}/generate`, { input_ids: [1, 2, 3], sampling_params: { max_new_tokens: 1 } });
      expect(res.status).toBe(200);
    }
    const text = await metrics(r.url);
    expect(metricValue(text, 'smg_worker_cb_state', `worker="${a.url}"`)).toBe(1);
    expect(metricValue(text, 'smg_worker_cb_transitions_total', `worker="${a.url}",from_state="closed",to_state="open"`)).toBe(1);
    expect(metricValue(text, 'sgl_router_retries_total')).toBe(2);
    expect(metricValue(text, 'kvgate_router_inflight_requests')).toBe(0);
    // With retries off, a request on the dead worker fails with 502.
    const once = await startKvgateRouter(['--worker-urls', a.url.replace(/:\d+$/, ':9'), '--disable-health-check', '--disable-retries']);
    const failed = await post(`${once.url}/generate`, { input_ids: [1], sampling_params: { max_new_tokens: 1 } });
    expect(failed.status).toBe(502);
    expect(failed.json().error.code).toBe('engine_error');
  });

  it('--request-timeout-secs answers 504; a client that leaves mid-stream releases its worker', async () => {
    const a = await mocker({ speedupRatio: 1 });
    const r = await startKvgateRouter(['--worker-urls', a.url, '--request-timeout-secs', '0.3', '--disable-retries']);
    const slow = { input_ids: [1, 2], sampling_params: { max_new_tokens: 400, ignore_eos: true } };
    const late = await post(`${r.url}/generate`, slow);
    expect(late.status).toBe(504);
    expect(late.json().error.code).toBe('engine_timeout');
    const r2 = await startKvgateRouter(['--worker-urls', a.url]);
    const ctl = new AbortController();
    const res = await fetch(`${r2.url}/generate`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...slow, stream: true }), signal: ctl.signal });
    const reader = res.body!.getReader();
    await reader.read();
    ctl.abort();
    let inflight = NaN;
    for (let i = 0; i < 40 && inflight !== 0; i++) {
      await new Promise((res) => setTimeout(res, 50));
      inflight = metricValue(await metrics(r2.url), 'kvgate_router_inflight_requests');
    }
    expect(inflight).toBe(0);
    // The engine saw the disconnect too: nothing left running there.
    for (let i = 0; i < 40 && (await get(`${a.url}/get_load`)).json()[0]?.num_reqs > 0; i++) await new Promise((res) => setTimeout(res, 50));
    expect((await get(`${a.url}/get_load`)).json()[0].num_reqs).toBe(0);
  });

  it('--max-concurrent-requests queues, then refuses with 429', async () => {
    const a = await mocker({ speedupRatio: 1 });
    const r = await startKvgateRouter(['--worker-urls', a.url, '--max-concurrent-requests', '1', '--queue-size', '1']);
    const slow = { input_ids: [1, 2], sampling_params: { max_new_tokens: 40, ignore_eos: true } };
    const results = await Promise.all([0, 1, 2].map((i) => new Promise((res) => setTimeout(res, i * 30)).then(() => post(`${r.url}/generate`, slow))));
    expect(results.map((x) => x.status).sort()).toEqual([200, 200, 429]);
    expect(results.find((x) => x.status === 429)!.json().error.code).toBe('too_many_requests');
    expect(metricValue(await metrics(r.url), 'kvgate_router_inflight_requests')).toBe(0);
  });

  it('--dp-aware routes to each data-parallel rank with data_parallel_rank', async () => {
    const a = await mocker({ dpSize: 2 });
    const r = await startKvgateRouter(['--worker-urls', a.url, '--dp-aware', '--policy', 'round_robin']);
    const list = (await get(`${r.url}/workers`)).json();
    expect(list.workers.map((w: any) => w.id)).toEqual([`${a.url}@0`, `${a.url}@1`]);
    for (let i = 0; i < 4; i++) expect((await post(`${r.url}/generate`, { input_ids: [7, 8], sampling_params: { max_new_tokens: 1 } })).status).toBe(200);
    expect(await perWorker(r.url, [`${a.url}@0`, `${a.url}@1`])).toEqual([2, 2]);
    const loads = (await get(`${a.url}/v1/loads`)).json();
    expect(JSON.stringify(loads)).toContain('dp_rank');
  });
});

describe('kvgate router: PD disaggregation', () => {
  it('injects the bootstrap triple, sends both legs and returns decode\'s answer', async () => {
    const prefill = await mocker({ disaggregationMode: 'prefill', disaggregationBootstrapPort: 0 });
    const decode = await mocker({ disaggregationMode: 'decode' });
    const r = await startKvgateRouter(['--pd-disaggregation', '--prefill', prefill.url, String(prefill.bootstrapPort), '--decode', decode.url, '--policy', 'round_robin']);
    const input = Array.from({ length: 20 }, (_, i) => 100 + i);
    const res = await post(`${r.url}/generate`, { input_ids: input, sampling_params: { max_new_tokens: 5, ignore_eos: true } });
    expect(res.status).toBe(200);
    expect(res.json().meta_info).toMatchObject({ prompt_tokens: 20, completion_tokens: 5 });
    const streamed = await post(`${r.url}/generate`, { input_ids: input, stream: true, sampling_params: { max_new_tokens: 3, ignore_eos: true } });
    const events = sseEvents(streamed.text);
    // Page size 1: the second request finds all but the last prompt token in prefill's cache.
    expect((events.at(-2) as any).meta_info).toMatchObject({ completion_tokens: 3, cached_tokens: 19 });
    const text = await metrics(r.url);
    expect(metricValue(text, 'sgl_router_pd_prefill_requests_total')).toBe(2);
    expect(metricValue(text, 'sgl_router_pd_decode_requests_total')).toBe(2);
    expect(metricValue(text, 'kvgate_router_inflight_requests')).toBe(0);
    const workers = (await get(`${r.url}/workers`)).json();
    expect(workers.stats).toEqual({ prefill_count: 1, decode_count: 1, regular_count: 0 });
  });

  // The legs carry routed_dp_rank (and decode disagg_prefill_dp_rank); the mocker's decode side
  // would also find the prefill rank by asking the bootstrap server, so this checks that DP-aware
  // PD serves across rank pairs, not that the fields are read.
  it('--dp-aware PD: one target per rank on each side, requests served across rank pairs', async () => {
    const prefill = await mocker({ disaggregationMode: 'prefill', disaggregationBootstrapPort: 0, dpSize: 2 });
    const decode = await mocker({ disaggregationMode: 'decode', dpSize: 2 });
    const r = await startKvgateRouter(['--pd-disaggregation', '--prefill', prefill.url, String(prefill.bootstrapPort), '--decode', decode.url, '--dp-aware', '--policy', 'round_robin', '--decode-policy', 'random']);
    expect((await get(`${r.url}/workers`)).json().stats).toEqual({ prefill_count: 2, decode_count: 2, regular_count: 0 });
    for (let i = 0; i < 6; i++) {
      const res = await post(`${r.url}/generate`, { input_ids: [40 + i, 41, 42, 43], sampling_params: { max_new_tokens: 2, ignore_eos: true } });
      expect(res.status).toBe(200);
      expect(res.json().meta_info.completion_tokens).toBe(2);
    }
    expect(await perWorker(r.url, [`${prefill.url}@0`, `${prefill.url}@1`])).toEqual([3, 3]);
  });
});

describe('kvgate router: PD logprobs and the kv policy', () => {
  const pdPair = async (extra: string[] = []) => {
    const prefill = await mocker({ disaggregationMode: 'prefill', disaggregationBootstrapPort: 0 });
    const decode = await mocker({ disaggregationMode: 'decode' });
    const r = await startKvgateRouter(['--pd-disaggregation', '--prefill', prefill.url, String(prefill.bootstrapPort), '--decode', decode.url, '--policy', 'round_robin', ...extra]);
    return { prefill, decode, r };
  };
  // What the prefill engine computes for a prompt from position 0 (the decode engine sends none).
  const promptLogprobs = (ids: number[]) => ids.map((id, p) => [p === 0 ? null : syntheticLogprob(id, p), id, null]);

  it('puts prefill\'s input_token_logprobs in front of decode\'s, in JSON and in every streamed event', async () => {
    const { r } = await pdPair();
    const ids = [31, 32, 33, 34, 35];
    const body = { input_ids: ids, return_logprob: true, logprob_start_len: 0, sampling_params: { max_new_tokens: 3, ignore_eos: true } };
    const plain = (await post(`${r.url}/generate`, body)).json();
    expect(plain.meta_info.input_token_logprobs).toEqual(promptLogprobs(ids));
    expect(plain.meta_info.output_token_logprobs).toHaveLength(3);
    const streamed = await post(`${r.url}/generate`, { ...body, input_ids: [...ids, 36], stream: true });
    expect(streamed.headers.get('content-type')).toBe('text/event-stream');
    const events = sseEvents(streamed.text);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1) as any[];
    expect(chunks).toHaveLength(3);
    for (const c of chunks) expect(c.meta_info.input_token_logprobs).toEqual(promptLogprobs([...ids, 36]));
    expect(chunks.map((c) => c.meta_info.output_token_logprobs.length)).toEqual([1, 2, 3]);
    // Without logprobs the stream is relayed as decode sent it.
    const bare = sseEvents((await post(`${r.url}/generate`, { input_ids: ids, stream: true, sampling_params: { max_new_tokens: 2 } })).text) as any[];
    expect(bare[0].meta_info).not.toHaveProperty('input_token_logprobs');
  });

  it('merges a streamed batch item by item (by "index")', async () => {
    const { r } = await pdPair();
    const prompts = [[51, 52, 53], [61, 62]];
    const res = await post(`${r.url}/generate`, { input_ids: prompts, return_logprob: true, logprob_start_len: 0, stream: true, sampling_params: { max_new_tokens: 2, ignore_eos: true } });
    expect(res.status).toBe(200);
    const chunks = sseEvents(res.text).slice(0, -1) as any[];
    expect(new Set(chunks.map((c) => c.index))).toEqual(new Set([0, 1]));
    for (const c of chunks) expect(c.meta_info.input_token_logprobs).toEqual(promptLogprobs(prompts[c.index]!));
  });

  it('--policy kv in PD mode: the prefill leg by KV events, the decode leg by load', async () => {
    const events = { publisher: 'zmq' as const, endpoint: 'tcp://127.0.0.1:0', replay_endpoint: 'tcp://127.0.0.1:0', bind: true, topic: 'kv' };
    const prefills = [
      await mocker({ disaggregationMode: 'prefill', disaggregationBootstrapPort: 0, pageSize: 16, kvEventsConfig: events }),
      await mocker({ disaggregationMode: 'prefill', disaggregationBootstrapPort: 0, pageSize: 16, kvEventsConfig: events }),
    ];
    const decodes = [await mocker({ disaggregationMode: 'decode', pageSize: 16 }), await mocker({ disaggregationMode: 'decode', pageSize: 16 })];
    const args = ['--pd-disaggregation', ...prefills.flatMap((p) => ['--prefill', p.url, String(p.bootstrapPort)]), ...decodes.flatMap((d) => ['--decode', d.url])];
    const r = await startKvgateRouter([...args, '--policy', 'kv']);
    // A prompt served by the second prefill engine without this router (a warm-up, another
    // router): only its KV events tell the router where it is cached.
    const warm = prompt(100, 'pdwarm');
    const legs = { text: warm, sampling_params: { max_new_tokens: 1 }, bootstrap_room: 1, bootstrap_host: '127.0.0.1', bootstrap_port: prefills[1]!.bootstrapPort };
    const direct = await Promise.all([post(`${prefills[1]!.url}/generate`, legs), post(`${decodes[0]!.url}/generate`, legs)]);
    expect(direct.map((d) => d.status)).toEqual([200, 200]);
    await new Promise((res) => setTimeout(res, 300));
    let cached = 0;
    for (let i = 0; i < 4; i++) cached += (await post(`${r.url}/generate`, { text: `${warm} q${i}`, sampling_params: { max_new_tokens: 2, ignore_eos: true } })).json().meta_info.cached_tokens;
    expect(await perWorker(r.url, prefills.map((p) => p.url))).toEqual([0, 4]);
    expect(cached).toBeGreaterThan(4 * 500);
    const text = await metrics(r.url);
    expect(metricValue(text, 'kvgate_router_kv_decisions_total', 'by="kv_events"')).toBe(4);
    // Decode legs go by load (power_of_two), one per request.
    expect(metricValue(text, 'sgl_router_pd_decode_requests_total')).toBe(4);
    expect(metricValue(text, 'kvgate_router_inflight_requests')).toBe(0);
  });
});

describe('kvgate router: kv policy', () => {
  const events = { publisher: 'zmq' as const, endpoint: 'tcp://127.0.0.1:0', replay_endpoint: 'tcp://127.0.0.1:0', bind: true, topic: 'kv' };

  it('routes on the engines\' KV events: a cached prefix goes where the engine holds it', async () => {
    const [a, b] = [await mocker({ pageSize: 16, kvEventsConfig: events }), await mocker({ pageSize: 16, kvEventsConfig: events })];
    const r = await startKvgateRouter(['--worker-urls', a.url, b.url, '--policy', 'kv']);
    // Two long distinct prompts, one per worker (the second is routed away from the first's load).
    const prompts = [prompt(120, 'alpha'), prompt(120, 'beta')];
    for (const p of prompts) expect((await post(`${r.url}/generate`, { text: p, sampling_params: { max_new_tokens: 1 } })).status).toBe(200);
    const first = await perWorker(r.url, [a.url, b.url]);
    expect(first).toEqual([1, 1]);
    // Give the KV events time to arrive, then each prompt's follow-ups find their own cache.
    await new Promise((res) => setTimeout(res, 300));
    let cached = 0;
    let total = 0;
    for (let i = 0; i < 6; i++) {
      const p = prompts[i % 2]!;
      const res = await post(`${r.url}/generate`, { text: `${p} more ${i}`, sampling_params: { max_new_tokens: 1 } });
      cached += res.json().meta_info.cached_tokens;
      total += res.json().meta_info.prompt_tokens;
    }
    expect(cached / total).toBeGreaterThan(0.9);
    // input_ids are routed on as given.
    const ids = Array.from({ length: 64 }, (_, i) => 1000 + i);
    await post(`${r.url}/generate`, { input_ids: ids, sampling_params: { max_new_tokens: 1 } });
    await new Promise((res) => setTimeout(res, 300));
    const again = await post(`${r.url}/generate`, { input_ids: [...ids, 5], sampling_params: { max_new_tokens: 1 } });
    expect(again.json().meta_info.cached_tokens).toBe(64);
    const text = await metrics(r.url);
    // The first sight of each prompt is cache_aware's (no engine holds it); the rest are the events'.
    expect(metricValue(text, 'kvgate_router_kv_decisions_total', 'by="kv_events"')).toBe(7);
    expect(metricValue(text, 'kvgate_router_kv_decisions_total', 'by="cache_aware"')).toBe(3);
    expect(metricValue(text, 'kvgate_router_kv_overlap_blocks_total')).toBeGreaterThan(40);
    expect(metricValue(text, 'kvgate_router_inflight_requests')).toBe(0);
  });

  it('finds a prefix an engine cached without this router (another replica, a warm-up): cache_aware cannot', async () => {
    const [a, b] = [await mocker({ pageSize: 16, kvEventsConfig: events }), await mocker({ pageSize: 16, kvEventsConfig: events })];
    const warm = prompt(100, 'warm');
    const run = async (policy: string) => {
      await post(`${a.url}/flush_cache`, '');
      await post(`${b.url}/flush_cache`, '');
      const r = await startKvgateRouter(['--worker-urls', a.url, b.url, '--policy', policy]);
      // One prompt through the router: its tree now holds text for a, none for b.
      await post(`${r.url}/generate`, { text: prompt(20, 'other'), sampling_params: { max_new_tokens: 1 } });
      // The warm prompt straight to a's engine, as another router replica would send it.
      await post(`${a.url}/generate`, { text: warm, sampling_params: { max_new_tokens: 1 } });
      await new Promise((res) => setTimeout(res, 300));
      const res = await post(`${r.url}/generate`, { text: `${warm} and more`, sampling_params: { max_new_tokens: 1 } });
      await r.stop();
      return res.json().meta_info.cached_tokens as number;
    };
    // kv sees a's cache in its events; cache_aware sends the prompt to b, whose tree is smaller.
    expect(await run('kv')).toBeGreaterThan(500);
    expect(await run('cache_aware')).toBe(0);
  });

  it('holds a prompt whose long prefix its worker is still prefilling for another request: the engine computes the prefix once', async () => {
    // Slow steps, so that the burst below arrives while the engine prefills an unrelated prompt
    // and would otherwise be prefilled in one batch, each request computing the shared prefix.
    const a = await mocker({ pageSize: 16, kvEventsConfig: events, speedupRatio: 0.25 });
    const r = await startKvgateRouter(['--worker-urls', a.url, '--policy', 'kv']);
    const shared = prompt(150, 'delta');
    const busy = post(`${r.url}/generate`, { text: prompt(300, 'busy'), sampling_params: { max_new_tokens: 1 } });
    await metricsWhen(r.url, (t) => metricValue(t, 'kvgate_router_inflight_requests') === 1);
    const burst = await Promise.all(Array.from({ length: 6 }, (_, i) => post(`${r.url}/generate`, { text: `${shared} question ${i}`, sampling_params: { max_new_tokens: 1 } })));
    expect((await busy).status).toBe(200);
    const cached = burst.map((res) => res.json().meta_info.cached_tokens as number).sort((x, y) => x - y);
    // One request computes the prefix; the five others waited for it and found it stored.
    const prefixPages = Math.floor(Buffer.byteLength(`${shared} question `) / 16) * 16;
    expect(cached[0]).toBe(0);
    expect(cached.slice(1)).toEqual(Array(5).fill(prefixPages));
    const text = await metricsWhen(r.url, (t) => metricValue(t, 'kvgate_router_inflight_requests') === 0);
    expect(metricValue(text, 'kvgate_router_kv_prefill_waits_total')).toBe(5);
    // Everything the requests took is released once they are answered.
    expect(metricValue(text, 'kvgate_router_inflight_requests')).toBe(0);
    expect(metricValue(text, 'kvgate_router_kv_prefilling_requests')).toBe(0);
    expect(metricValue(text, 'kvgate_router_kv_prefill_waiting_requests')).toBe(0);
  });

  it('does not hold a burst on an idle worker: the engine starts the first prefill at once and batches the rest after it', async () => {
    const a = await mocker({ pageSize: 16, kvEventsConfig: events, speedupRatio: 0.25 });
    const r = await startKvgateRouter(['--worker-urls', a.url, '--policy', 'kv']);
    const shared = prompt(150, 'zeta');
    const burst = await Promise.all(Array.from({ length: 6 }, (_, i) => post(`${r.url}/generate`, { text: `${shared} question ${i}`, sampling_params: { max_new_tokens: 1 } })));
    const cached = burst.map((res) => res.json().meta_info.cached_tokens as number).sort((x, y) => x - y);
    const prefixPages = Math.floor(Buffer.byteLength(`${shared} question `) / 16) * 16;
    expect(cached).toEqual([0, ...Array(5).fill(prefixPages)]);
    expect(metricValue(await metrics(r.url), 'kvgate_router_kv_prefill_waits_total')).toBe(0);
  });

  it('a client that leaves while its prompt waits for a prefill takes nothing with it', async () => {
    const a = await mocker({ pageSize: 16, kvEventsConfig: events, speedupRatio: 0.25 });
    const r = await startKvgateRouter(['--worker-urls', a.url, '--policy', 'kv']);
    const shared = prompt(150, 'epsilon');
    const busy = post(`${r.url}/generate`, { text: prompt(300, 'busy'), sampling_params: { max_new_tokens: 1 } });
    await metricsWhen(r.url, (t) => metricValue(t, 'kvgate_router_inflight_requests') === 1);
    const first = post(`${r.url}/generate`, { text: `${shared} first`, sampling_params: { max_new_tokens: 1 } });
    await metricsWhen(r.url, (t) => metricValue(t, 'kvgate_router_inflight_requests') === 2);
    const leaving = new AbortController();
    const left = post(`${r.url}/generate`, { text: `${shared} second`, sampling_params: { max_new_tokens: 1 } }, { signal: leaving.signal }).catch((err: Error) => err);
    expect(metricValue(await metricsWhen(r.url, (t) => metricValue(t, 'kvgate_router_kv_prefill_waiting_requests') === 1), 'kvgate_router_kv_prefill_waiting_requests')).toBe(1);
    leaving.abort();
    expect(await left).toBeInstanceOf(Error);
    expect((await first).status).toBe(200);
    expect((await busy).status).toBe(200);
    const text = await metricsWhen(r.url, (t) => metricValue(t, 'kvgate_router_inflight_requests') === 0);
    expect(metricValue(text, 'kvgate_router_kv_prefill_waits_total')).toBe(1);
    expect(metricValue(text, 'kvgate_router_kv_prefill_waiting_requests')).toBe(0);
    expect(metricValue(text, 'kvgate_router_kv_prefilling_requests')).toBe(0);
    expect(metricValue(text, 'kvgate_router_inflight_requests')).toBe(0);
    // Only the two requests that stayed reached the engine.
    expect(metricValue(text, 'sgl_router_processed_requests_total')).toBe(2);
  });

  it('falls back to cache_aware when a worker publishes no events', async () => {
    const [a, b] = [await mocker({ pageSize: 16, kvEventsConfig: events }), await mocker({ pageSize: 16 })];
    const r = await startKvgateRouter(['--worker-urls', a.url, b.url, '--policy', 'kv']);
    const shared = prompt(150, 'gamma');
    let cached = 0;
    for (let i = 0; i < 5; i++) cached += (await post(`${r.url}/generate`, { text: `${shared} q${i}`, sampling_params: { max_new_tokens: 1 } })).json().meta_info.cached_tokens;
    // cache_aware keeps the shared prefix on one worker: four of five requests hit it.
    expect(cached).toBeGreaterThan(0);
    expect((await perWorker(r.url, [a.url, b.url])).sort()).toEqual([0, 5]);
    expect(metricValue(await metrics(r.url), 'kvgate_router_kv_decisions_total', 'by="cache_aware"')).toBe(5);
  });
});
