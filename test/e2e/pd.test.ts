// Disaggregated prefill/decode serving end to end: a real `kvgate serve` process over real
// mocker engines speaking SGLang's PD protocol (bootstrap server, rooms, KV handoff).
// - `serve --prefill-workers 1 --decode-workers 1`: requests stream through the official
//   `openai` client, usage counts the prompt once, cached_tokens come from the prefill's
//   cache, every exit path (finish, stop string, client abort, a prefill engine killed
//   mid-transfer) frees the room and the router's per-worker requests;
// - `serve --engine-urls` over a prefill mocker and a decode URL that takes requests and never
//   answers: the room times out, is freed, and both legs are aborted; a decode engine whose
//   page size differs is refused with the reason in /health;
// - retries before the first token: a prefill engine killed mid-transfer (two prefill
//   workers), and a room that timed out on a hanging decode (beside a working one), are
//   re-run on the other worker and the client gets its whole answer;
// - conditional disaggregation: a prompt the prefill pool holds goes to the decode worker
//   alone, and each decision is counted.

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMocker, type MockerHandle } from '../../src/mocker/index.js';
import { parseLogRecord } from '../../src/observability/log.js';
import { kill, listening, Processes, type Proc } from '../fixtures/processes.js';
import { metric, waitFor } from '../frontend/fixtures/stack.js';
import { freePort } from '../../src/worker/ports.js';

const MODEL = 'Qwen/Qwen3-0.6B';
const procs = new Processes();
afterAll(() => procs.reap());
const THE = 279; // Qwen3 " the"
const ids = (n: number, first = 1000) => Array.from({ length: n }, (_, i) => (i === 0 ? first : THE));

async function metricsText(url: string): Promise<string> {
  return (await fetch(`${url}/metrics`)).text();
}

// Sum of every sample of a metric (all labels).
function total(text: string, name: string): number {
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(m[1]);
  return sum;
}

// Gauges of work in progress: all read 0 once no request is open.
const ACTIVE = ['kvgate_router_pd_rooms_in_flight', 'kvgate_router_worker_active_requests', 'kvgate_router_worker_prefill_tokens', 'kvgate_frontend_inflight_requests'];

async function settled(url: string): Promise<Record<string, number>> {
  let last: Record<string, number> = {};
  const end = Date.now() + 5000;
  while (Date.now() < end) {
    const text = await metricsText(url);
    last = Object.fromEntries(ACTIVE.map((g) => [g, total(text, g)]));
    if (Object.values(last).every((v) => v === 0)) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return last;
}
const ZERO = Object.fromEntries(ACTIVE.map((g) => [g, 0]));

describe('kvgate serve --prefill-workers 1 --decode-workers 1 (mocker)', () => {
  let serve: Proc;
  let url: string;
  let client: OpenAI;

  beforeAll(async () => {
    // A slow simulated link (10 MB/s, 10x sped up): a 2,000-token prompt's handoff takes
    // ~2 s, long enough to kill the prefill engine in the middle of it.
    serve = procs.kvgate(['serve', '--prefill-workers', '1', '--decode-workers', '1', '--port', '0', '--idle-health-check', '0', '--log-level', 'info', '--', '--kv-transfer-bandwidth', '0.01']);
    url = await listening(serve, 60_000);
    client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
  }, 90_000);

  afterAll(() => kill(serve.proc));

  it('shows the pools in /health and /v1/models', async () => {
    const health = (await (await fetch(`${url}/health`)).json()) as { status: string; pools: Record<string, unknown>; workers: { role: string; healthy: boolean }[] };
    expect(health.status).toBe('healthy');
    expect(health.pools[MODEL]).toEqual({ mode: 'disaggregated', agg: 0, prefill: 1, decode: 1 });
    expect(health.workers.map((w) => w.role).sort()).toEqual(['decode', 'prefill']);
    const models = await client.models.list();
    expect(models.data[0]).toMatchObject({ id: MODEL, pools: { mode: 'disaggregated', prefill: 1, decode: 1 } });
  });

  it('streams the decode leg through the openai client; usage counts the prompt once; cached tokens come from the prefill cache', async () => {
    const prompt = ids(100);
    const run = async () => {
      const stream = await client.completions.create({ model: MODEL, prompt, max_tokens: 12, stream: true, stream_options: { include_usage: true }, ignore_eos: true } as never);
      let text = '';
      let chunks = 0;
      let usage: OpenAI.CompletionUsage | null | undefined;
      let finish: string | null | undefined;
      for await (const c of stream as unknown as AsyncIterable<OpenAI.Completion>) {
        chunks++;
        text += c.choices[0]?.text ?? '';
        finish = c.choices[0]?.finish_reason ?? finish;
        if (c.usage) usage = c.usage;
      }
      return { text, chunks, usage: usage!, finish };
    };
    const first = await run();
    expect(first.text.length).toBeGreaterThan(0);
    expect(first.chunks).toBeGreaterThan(2);
    expect(first.finish).toBe('length');
    expect(first.usage).toMatchObject({ prompt_tokens: 100, completion_tokens: 12, total_tokens: 112 });
    // The same prompt again: the prefill engine holds its full pages (page size 16).
    const second = await run();
    expect(second.text).toBe(first.text);
    expect(second.usage.prompt_tokens).toBe(100);
    expect(second.usage.prompt_tokens_details?.cached_tokens).toBe(96);
    const m = await metricsText(url);
    expect(metric(m, 'kvgate_router_pd_decisions_total', { decision: 'disaggregated' })).toBeGreaterThanOrEqual(2);
    // Every disaggregated request is a measured handoff, or its prefill answered after the first
    // decode token (the legs race; no gap is measured then).
    expect(total(m, 'kvgate_router_pd_handoffs') + metric(m, 'kvgate_router_pd_prefill_answered_after_first_token_total')).toBeGreaterThanOrEqual(2);
    expect(await settled(url)).toEqual(ZERO);
  });

  it('non-streaming chat works, and a stop string ends the request with its room freed', async () => {
    const messages = [{ role: 'user' as const, content: 'Tell me about routers' }];
    const full = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 16, ignore_eos: true } as never as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const text = full.choices[0]!.message.content!;
    expect(full.usage!.completion_tokens).toBe(16);
    const words = text.trim().split(/\s+/);
    expect(words.length).toBeGreaterThan(4);
    const stopAt = ` ${words[3]}`;
    const cut = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 16, ignore_eos: true, stop: [stopAt] } as never as OpenAI.ChatCompletionCreateParamsNonStreaming);
    expect(cut.choices[0]!.finish_reason).toBe('stop');
    expect(cut.choices[0]!.message.content).toBe(text.slice(0, text.indexOf(stopAt)));
    expect(await settled(url)).toEqual(ZERO);
  });

  it('a client that leaves mid-stream frees the room and both legs', async () => {
    const ctl = new AbortController();
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt: ids(50, 2000), max_tokens: 2000, ignore_eos: true, stream: true }),
      signal: ctl.signal,
    });
    const reader = res.body!.getReader();
    let text = '';
    while ((text.match(/^data: /gm) ?? []).length < 3) text += Buffer.from((await reader.read()).value!).toString();
    expect(metric(await metricsText(url), 'kvgate_router_pd_rooms_in_flight')).toBe(1);
    ctl.abort();
    expect(await settled(url)).toEqual(ZERO);
    expect(metric(await metricsText(url), 'kvgate_router_pd_rooms_failed_total')).toBeGreaterThanOrEqual(1);
  });

  // Last: the prefill worker is out of routing after it.
  it('killing the prefill engine mid-transfer fails the request cleanly and frees its room', async () => {
    const ready = serve
      .stderr()
      .split('\n')
      .map((l) => parseLogRecord(l))
      .map((r) => (r ? /kvgate worker ready: .*role=prefill .*engine_pid=(\d+)/.exec(String(r['msg'])) : null))
      .find((m) => m);
    const enginePid = Number(ready![1]);
    const started = Date.now();
    const pending = fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt: ids(2000, 3000), max_tokens: 20, stream: true }),
    }).then(async (r) => ({ status: r.status, body: await r.text() }));
    // In the handoff: the room has left Dispatched only once the prefill answers, which the
    // slow link holds back for ~2 s.
    await waitFor(async () => metric(await metricsText(url), 'kvgate_router_pd_rooms_in_flight') === 1, 5000);
    await new Promise((r) => setTimeout(r, 300));
    process.kill(enginePid, 'SIGKILL');
    const out = await pending;
    expect(Date.now() - started).toBeLessThan(15_000);
    // Before any token: an OpenAI error (status) or, once the stream began, an error event.
    if (out.status === 200) expect(out.body).toMatch(/"error":\{"message":"[^"]+"/);
    else expect(JSON.parse(out.body)).toMatchObject({ error: { message: expect.any(String), type: expect.any(String) } });
    expect(await settled(url)).toEqual(ZERO);
    // The agent restarts its engine; meanwhile a request waits for the pair to be back
    // (--worker-wait-timeout) instead of failing.
    const after = await client.completions.create({ model: MODEL, prompt: ids(30, 3001), max_tokens: 4, ignore_eos: true });
    expect(after.usage).toMatchObject({ prompt_tokens: 30, completion_tokens: 4 });
    expect(await settled(url)).toEqual(ZERO);
  }, 60_000);
});

describe('kvgate serve --prefill-workers 2 --decode-workers 1: a prefill engine killed before the first token', () => {
  let serve: Proc;
  let url: string;

  beforeAll(async () => {
    // The slow link again (a 2,000-token handoff takes ~2 s).
    serve = procs.kvgate(['serve', '--prefill-workers', '2', '--decode-workers', '1', '--port', '0', '--idle-health-check', '0', '--log-level', 'info', '--', '--kv-transfer-bandwidth', '0.01']);
    url = await listening(serve, 90_000);
    await waitFor(async () => ((await (await fetch(`${url}/health`)).json()) as { pools: Record<string, { prefill: number }> }).pools[MODEL]?.prefill === 2, 30_000);
  }, 120_000);

  afterAll(() => kill(serve.proc));

  it('re-runs the request on the other prefill worker with a fresh room: the client gets its whole answer', async () => {
    // The prefill agents' URLs and engine pids, from their ready lines.
    const prefills = new Map<string, number>();
    for (const line of serve.stderr().split('\n')) {
      const m = /kvgate worker ready: (\S+) .*role=prefill .*engine_pid=(\d+)/.exec(String(parseLogRecord(line)?.['msg'] ?? ''));
      if (m) prefills.set(m[1]!, Number(m[2]));
    }
    expect(prefills.size).toBe(2);
    const pending = fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt: ids(2000, 3100), max_tokens: 5, ignore_eos: true }),
    }).then(async (r) => ({ status: r.status, body: (await r.json()) as { usage?: { prompt_tokens: number; completion_tokens: number }; error?: unknown } }));
    // The prefill worker that holds it: the one with an active request.
    let holder = '';
    await waitFor(async () => {
      const text = await metricsText(url);
      holder = [...prefills.keys()].find((w) => metric(text, 'kvgate_router_worker_active_requests', { worker: w }) === 1) ?? '';
      return holder !== '' && metric(text, 'kvgate_router_pd_rooms_in_flight') === 1;
    }, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    process.kill(prefills.get(holder)!, 'SIGKILL');
    const out = await pending;
    expect(out.body.error).toBeUndefined();
    expect(out.status).toBe(200);
    expect(out.body.usage).toMatchObject({ prompt_tokens: 2000, completion_tokens: 5 });
    const text = await metricsText(url);
    expect(total(text, 'kvgate_router_retries_total')).toBe(1);
    // The other prefill worker served the retry (the dead one was set aside; its agent may
    // have restarted its engine since).
    const moved = serve
      .stderr()
      .split('\n')
      .map((l) => /disaggregated request moved from (\S+) > \S+ to (\S+) > /.exec(String(parseLogRecord(l)?.['msg'] ?? '')))
      .find((x) => x);
    expect(moved?.[1]).toBe(holder);
    expect(moved?.[2]).not.toBe(holder);
    expect(prefills.has(moved![2]!)).toBe(true);
    expect(await settled(url)).toEqual(ZERO);
  }, 60_000);
});

// An HTTP server that fronts a real decode mocker for its info routes, but takes /generate
// requests and never answers them (a decode engine that hangs); it records /abort_request.
async function hangingDecode(real: MockerHandle): Promise<{ url: string; generated: string[]; aborted: string[]; server: Server }> {
  const generated: string[] = [];
  const aborted: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (req.method === 'POST' && req.url === '/generate') {
        generated.push(String((JSON.parse(body) as { rid: string }).rid));
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        return; // never answered
      }
      if (req.method === 'POST' && req.url === '/abort_request') {
        aborted.push(String((JSON.parse(body) as { rid: string }).rid));
        res.writeHead(200).end();
        return;
      }
      void fetch(`${real.url}${req.url}`).then(async (r) => {
        res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' });
        res.end(await r.text());
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, generated, aborted, server };
}


describe('kvgate serve --engine-urls over a prefill mocker and a decode that never answers', () => {
  let prefill: MockerHandle;
  let decodeBehind: MockerHandle;
  let decode: Awaited<ReturnType<typeof hangingDecode>>;
  let odd: MockerHandle | null = null;
  let oddPort: number;
  let serve: Proc;
  let url: string;

  beforeAll(async () => {
    const common = { modelPath: MODEL, pageSize: 16, speedupRatio: 10 };
    prefill = await startMocker({ ...common, port: 0, disaggregationMode: 'prefill', disaggregationBootstrapPort: 0 });
    decodeBehind = await startMocker({ ...common, port: 0, disaggregationMode: 'decode' });
    await Promise.all([prefill.ready, decodeBehind.ready]);
    decode = await hangingDecode(decodeBehind);
    // A decode engine with another page size, started once serve runs (so the compatible
    // pair is up first): it must be refused, with the reason.
    oddPort = await freePort();
    serve = procs.kvgate([
      'serve',
      '--engine-urls',
      `${prefill.url},${decode.url},http://127.0.0.1:${oddPort}`,
      '--port',
      '0',
      '--pd-prefill-timeout',
      '1',
      '--log-level',
      'error',
      '--health-check-interval',
      '0',
    ]);
    url = await listening(serve, 60_000);
    await waitFor(async () => ((await (await fetch(`${url}/health`)).json()) as { pools: Record<string, { mode: string }> }).pools[MODEL]?.mode === 'disaggregated', 10_000);
    odd = await startMocker({ ...common, pageSize: 32, port: oddPort, disaggregationMode: 'decode' });
    await odd.ready;
  }, 60_000);

  afterAll(async () => {
    await kill(serve.proc);
    decode?.server.close();
    await Promise.all([prefill, decodeBehind, odd].map((m) => m?.close(0)));
  });

  it('refuses a decode engine whose page size differs, with the reason in /health', async () => {
    let workers: { name: string; healthy: boolean; reason?: string }[] = [];
    await waitFor(async () => {
      workers = ((await (await fetch(`${url}/health`)).json()) as { workers: typeof workers }).workers;
      return workers.some((w) => w.name.endsWith(`:${oddPort}`) && /cannot pair/.test(w.reason ?? ''));
    }, 15_000);
    const w = workers.find((x) => x.name.endsWith(`:${oddPort}`))!;
    expect(w.healthy).toBe(false);
    expect(w.reason).toMatch(/cannot pair with prefill worker .*different page sizes \(32 and 16\)/);
  }, 20_000);

  it('times the room out, frees it, and aborts both legs', async () => {
    const before = decode.aborted.length;
    const started = Date.now();
    const res = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, prompt: ids(64), max_tokens: 8 }) });
    const body = (await res.json()) as { error: { message: string; type: string } };
    expect(res.status).toBe(504);
    expect(body.error.message).toMatch(/timed out in state dispatched/);
    expect(Date.now() - started).toBeLessThan(5000);
    // The decode leg was aborted (its rid posted to /abort_request); the prefill leg too:
    // its engine holds nothing, where it would otherwise wait out its bootstrap timeout.
    await waitFor(() => decode.aborted.length > before, 3000);
    expect(decode.aborted.at(-1)).toBe(decode.generated.at(-1));
    await waitFor(async () => {
      const load = (await (await fetch(`${prefill.url}/get_load`)).json()) as { num_reqs: number }[];
      return load.every((l) => l.num_reqs === 0);
    }, 3000);
    const m = await metricsText(url);
    expect(metric(m, 'kvgate_router_pd_rooms_timed_out_total', { state: 'dispatched' })).toBe(1);
    expect(await settled(url)).toEqual(ZERO);
  }, 20_000);
});

describe('kvgate serve --engine-urls over a prefill mocker, a decode that never answers and a working decode', () => {
  let prefill: MockerHandle;
  let real: MockerHandle;
  let behind: MockerHandle;
  let hanging: Awaited<ReturnType<typeof hangingDecode>>;
  let serve: Proc;
  let url: string;

  beforeAll(async () => {
    const common = { modelPath: MODEL, pageSize: 16, speedupRatio: 10 };
    prefill = await startMocker({ ...common, port: 0, disaggregationMode: 'prefill', disaggregationBootstrapPort: 0 });
    real = await startMocker({ ...common, port: 0, disaggregationMode: 'decode' });
    behind = await startMocker({ ...common, port: 0, disaggregationMode: 'decode' });
    await Promise.all([prefill.ready, real.ready, behind.ready]);
    hanging = await hangingDecode(behind);
    serve = procs.kvgate(['serve', '--engine-urls', `${prefill.url},${hanging.url},${real.url}`, '--port', '0', '--pd-prefill-timeout', '1', '--log-level', 'error', '--health-check-interval', '0']);
    url = await listening(serve, 60_000);
    await waitFor(async () => ((await (await fetch(`${url}/health`)).json()) as { pools: Record<string, { decode: number }> }).pools[MODEL]?.decode === 2, 10_000);
  }, 60_000);

  afterAll(async () => {
    await kill(serve.proc);
    hanging?.server.close();
    await Promise.all([prefill, real, behind].map((m) => m?.close(0)));
  });

  it('re-runs a request whose room timed out on the other decode worker', async () => {
    // Concurrent: the decode router spreads them by load, so the hanging decode gets some.
    const outs = await Promise.all(
      Array.from({ length: 4 }, async (_, i) => {
        const r = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, prompt: ids(64, 2000 + i), max_tokens: 8, ignore_eos: true }) });
        return { status: r.status, body: (await r.json()) as { usage?: unknown; error?: unknown } };
      }),
    );
    for (const o of outs) expect(o).toMatchObject({ status: 200, body: { usage: { prompt_tokens: 64, completion_tokens: 8 } } });
    const hung = hanging.generated.length;
    expect(hung).toBeGreaterThan(0);
    await waitFor(() => hanging.aborted.length === hung, 3000);
    const m = await metricsText(url);
    expect(metric(m, 'kvgate_router_pd_rooms_timed_out_total', { state: 'dispatched' })).toBe(hung);
    expect(total(m, 'kvgate_router_retries_total')).toBe(hung);
    expect(await settled(url)).toEqual(ZERO);
  }, 30_000);
});

describe('conditional disaggregation (--pd-local-prefill-tokens)', () => {
  let serve: Proc;
  let url: string;

  beforeAll(async () => {
    serve = procs.kvgate(['serve', '--prefill-workers', '1', '--decode-workers', '1', '--port', '0', '--pd-local-prefill-tokens', '32', '--idle-health-check', '0', '--log-level', 'error']);
    url = await listening(serve, 60_000);
  }, 90_000);

  afterAll(() => kill(serve.proc));

  it('sends a prompt the prefill pool holds to the decode worker alone, and counts each decision', async () => {
    const req = (prompt: number[]) =>
      fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, prompt, max_tokens: 8, ignore_eos: true }) }).then(
        async (r) => ({ status: r.status, json: (await r.json()) as { choices: { text: string }[]; usage: { prompt_tokens: number } } }),
      );
    const prompt = ids(200, 4000);
    const short = ids(20, 4001);
    const a = await req(prompt); // 200 uncached tokens: disaggregated
    const b = await req(short); // 20 tokens: local (short prompt)
    // The prefill engine's KV events must have reached the index before the repeat.
    await waitFor(async () => total(await metricsText(url), 'kvgate_router_worker_cached_blocks') >= 12, 5000);
    const c = await req(prompt); // cached on the prefill pool: 8 uncached tokens, local
    for (const r of [a, b, c]) expect(r.status).toBe(200);
    expect(c.json.choices[0]!.text).toBe(a.json.choices[0]!.text);
    expect(c.json.usage.prompt_tokens).toBe(200);
    const m = await metricsText(url);
    expect(metric(m, 'kvgate_router_pd_decisions_total', { decision: 'disaggregated' })).toBe(1);
    expect(metric(m, 'kvgate_router_pd_decisions_total', { decision: 'local_short_prompt' })).toBe(2);
    expect(await settled(url)).toEqual(ZERO);
  }, 30_000);
});

// Data-parallel engines: the router picks a (worker, dp rank) on each side. Over HTTP the
// prefill leg names its rank and the decode leg is told it (disagg_prefill_dp_rank); over
// gRPC, which cannot say it, the prefill's rank follows the room as SGLang's decode assumes.
// A decode that looked for the KV on the wrong prefill rank would never get it.
describe.each([['http'], ['grpc']])('dp size 2 on both sides, --engine-protocol %s', (protocol) => {
  let serve: Proc;
  let url: string;

  beforeAll(async () => {
    serve = procs.kvgate(['serve', '--prefill-workers', '1', '--decode-workers', '1', '--engine-protocol', protocol, '--port', '0', '--pd-prefill-timeout', '10', '--idle-health-check', '0', '--log-level', 'error', '--', '--dp-size', '2']);
    url = await listening(serve, 60_000);
  }, 90_000);

  afterAll(() => kill(serve.proc));

  it('serves requests spread over the prefill ranks, each handed to the right decode rank', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, prompt: ids(64, 5000 + i), max_tokens: 4, ignore_eos: true }) }).then(
          async (r) => ({ status: r.status, body: await r.text() }),
        ),
      ),
    );
    for (const r of results) expect(r, r.body).toMatchObject({ status: 200 });
    // The prefill engine's KV events of both ranks reached their ranks' indexes.
    const health = (await (await fetch(`${url}/health`)).json()) as { workers: { name: string; role: string }[] };
    const prefill = health.workers.find((w) => w.role === 'prefill')!.name;
    await waitFor(async () => {
      const m = await metricsText(url);
      return [0, 1].every((rank) => metric(m, 'kvgate_router_worker_cached_blocks', { worker: prefill, dp_rank: String(rank) }) > 0);
    }, 15_000); // (a loaded CI machine once took longer than 5 s to deliver both ranks' events)
    expect(await settled(url)).toEqual(ZERO);
  }, 30_000);
});

// A model with aggregated workers and prefill/decode pools is served disaggregated while a
// prefill and a decode worker are up, and by its aggregated workers otherwise.
describe('aggregated workers beside the PD pools', () => {
  let agg: MockerHandle;
  let prefill: MockerHandle;
  let decode: MockerHandle;
  let serve: Proc;
  let url: string;

  beforeAll(async () => {
    const common = { modelPath: MODEL, pageSize: 16, speedupRatio: 10 };
    [agg, prefill, decode] = await Promise.all([
      startMocker({ ...common, port: 0 }),
      startMocker({ ...common, port: 0, disaggregationMode: 'prefill', disaggregationBootstrapPort: 0 }),
      startMocker({ ...common, port: 0, disaggregationMode: 'decode' }),
    ]);
    await Promise.all([agg.ready, prefill.ready, decode.ready]);
    serve = procs.kvgate(['serve', '--engine-urls', [agg.url, prefill.url, decode.url].join(','), '--port', '0', '--health-check-interval', '0.2', '--worker-wait-timeout', '0', '--log-level', 'error']);
    url = await listening(serve, 60_000);
    await waitFor(async () => ((await (await fetch(`${url}/health`)).json()) as { pools: Record<string, { mode: string }> }).pools[MODEL]?.mode === 'disaggregated', 10_000);
  }, 60_000);

  afterAll(async () => {
    await kill(serve.proc);
    await Promise.all([agg, prefill, decode].map((m) => m?.close(0)));
  });

  it('serves disaggregated while both pools are up, then falls back to the aggregated worker', async () => {
    const req = () =>
      fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, prompt: ids(40), max_tokens: 4, ignore_eos: true }) }).then((r) => r.status);
    const health = async () => (await (await fetch(`${url}/health`)).json()) as { models: Record<string, number>; pools: Record<string, unknown> };
    expect((await health()).pools[MODEL]).toEqual({ mode: 'disaggregated', agg: 1, prefill: 1, decode: 1 });
    expect((await health()).models[MODEL]).toBe(3);
    expect(await req()).toBe(200);
    await decode.close(0);
    await waitFor(async () => ((await health()).pools[MODEL] as { mode: string }).mode === 'aggregated', 5000);
    expect((await health()).models[MODEL]).toBe(1);
    expect(await req()).toBe(200);
    const m = await metricsText(url);
    expect(metric(m, 'kvgate_router_pd_decisions_total', { decision: 'disaggregated' })).toBe(1);
    expect(metric(m, 'kvgate_router_decisions_total', { worker: agg.url })).toBe(1);
    expect(await settled(url)).toEqual(ZERO);
  }, 20_000);
});
