// kvgate router beside SGLang's own router (PyPI sglang-router 0.3.2, the smg-based Rust
// router) on the same command line and the same two mocker servers: each route's status and
// answer compared. Where they differ on purpose, the case says why (README, kvgate router).
// The router is installed in a venv under build/ on first use (about 20 s); a failed install
// fails this test.

import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MockerHandle } from '../../src/mocker/index.js';
import { closeAll, mocker } from '../mocker/helpers.js';
import { startKvgateRouter, stopAllProcesses, stopProcess, type RouterProcess } from './helpers.js';
import { SGLANG_ROUTER_VERSION as VERSION, sglangRouterPython } from './sglang_router_peer.js';
import { freePort } from '../../src/worker/ports.js';


interface Answer {
  status: number;
  type: string;
  text: string;
}

async function call(base: string, method: string, path: string, body?: string): Promise<Answer> {
  const res = await fetch(base + path, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body });
  return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() };
}

// The last SSE event before [DONE].
const lastEvent = (text: string): any => JSON.parse(text.trim().split('\n\n').at(-2)!.slice(6));

let workers: MockerHandle[] = [];
let ours: RouterProcess;
let theirs: { url: string; metrics: string; stop(): Promise<unknown> };

beforeAll(async () => {
  const python = sglangRouterPython();
  workers = [await mocker({ speedupRatio: 50 }), await mocker({ speedupRatio: 50 })];
  const common = ['--worker-urls', ...workers.map((w) => w.url), '--policy', 'round_robin', '--host', '127.0.0.1'];
  ours = await startKvgateRouter(common);
  const port = await freePort();
  const prom = await freePort();
  const proc = spawn(python, ['-m', 'sglang_router.launch_router', ...common, '--port', String(port), '--prometheus-port', String(prom), '--prometheus-host', '127.0.0.1', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  theirs = { url: `http://127.0.0.1:${port}`, metrics: `http://127.0.0.1:${prom}`, stop: () => stopProcess(proc) };
  // It registers workers in the background (about 0.5 s against the mocker since it closes an
  // HTTP/2 preface at once; 10.5 s before).
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await call(theirs.url, 'GET', '/readiness').catch(() => null);
    if (r?.status === 200 && JSON.parse(r.text).healthy_workers === 2) break;
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`sglang-router not ready: ${err.slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}, 400_000);

afterAll(async () => {
  await theirs?.stop();
  await stopAllProcesses();
  await closeAll();
});

const both = async (method: string, path: string, body?: string): Promise<[Answer, Answer]> => [await call(ours.url, method, path, body), await call(theirs.url, method, path, body)];

describe(`kvgate router and sglang-router ${VERSION}, route by route`, () => {
  it('health and readiness: same status and body', async () => {
    for (const path of ['/health', '/liveness']) {
      const [k, s] = await both('GET', path);
      expect([k.status, k.text]).toEqual([s.status, s.text]);
    }
    const [k, s] = await both('GET', '/readiness');
    expect(k.status).toBe(s.status);
    expect(JSON.parse(k.text)).toEqual(JSON.parse(s.text));
    // Both 200; the body is free text in both (SGLang's names its router, kvgate counts workers).
    const [kg, sg] = await both('GET', '/health_generate');
    expect(kg.status).toBe(200);
    expect(sg.status).toBe(200);
  });

  it('model info: the worker\'s answer in both', async () => {
    for (const path of ['/v1/models', '/get_model_info']) {
      const [k, s] = await both('GET', path);
      expect(k.status).toBe(s.status);
      const kj = JSON.parse(k.text);
      const sj = JSON.parse(s.text);
      if (path === '/v1/models') {
        // SGLang's router builds its own list (no created/root/max_model_len); kvgate relays the worker's.
        expect(kj.data.map((m: any) => m.id)).toEqual(sj.data.map((m: any) => m.id));
      } else {
        expect(kj).toEqual(sj);
      }
    }
    // Differs: sglang-router 0.3.2 answers /get_server_info with its own summary
    // ({router_manager, workers_count}); kvgate with the first worker's server info, as
    // the sgl-router era did and as clients reading dp_size or page_size expect.
    const [k, s] = await both('GET', '/get_server_info');
    expect(k.status).toBe(200);
    expect(s.status).toBe(200);
    expect(JSON.parse(s.text)).toHaveProperty('workers_count', 2);
    expect(JSON.parse(k.text)).toHaveProperty('dp_size', 1);
  });

  it('/generate: the same answers, single and streamed', async () => {
    const body = JSON.stringify({ text: 'The capital of France is', sampling_params: { max_new_tokens: 6, ignore_eos: true } });
    const [k, s] = await both('POST', '/generate', body);
    expect(k.status).toBe(200);
    expect(s.status).toBe(200);
    const kj = JSON.parse(k.text);
    const sj = JSON.parse(s.text);
    expect(kj.text).toBe(sj.text);
    expect(kj.output_ids).toEqual(sj.output_ids);
    expect(kj.meta_info.completion_tokens).toBe(sj.meta_info.completion_tokens);
    const streamBody = JSON.stringify({ input_ids: [1, 2, 3, 4], stream: true, sampling_params: { max_new_tokens: 4, ignore_eos: true } });
    const [ks, ss] = await both('POST', '/generate', streamBody);
    expect(ks.status).toBe(ss.status);
    expect(ks.type).toContain('text/event-stream');
    expect(ss.type).toContain('text/event-stream');
    expect(lastEvent(ks.text).output_ids).toEqual(lastEvent(ss.text).output_ids);
    expect(ks.text.endsWith('data: [DONE]\n\n')).toBe(ss.text.endsWith('data: [DONE]\n\n'));
  });

  it('errors: same statuses; kvgate\'s bodies are OpenAI error JSON', async () => {
    // Bad JSON: 400 in both; SGLang's router answers plain text, kvgate OpenAI's error JSON.
    const [k, s] = await both('POST', '/generate', '{bad');
    expect(k.status).toBe(400);
    expect(s.status).toBe(400);
    expect(JSON.parse(k.text).error.code).toBe('invalid_json');
    // OpenAI routes go to the worker as they are: the same answer through both (ids are fresh
    // per request, and the cached share depends on which worker saw the prompt before).
    const chat = JSON.stringify({ model: 'Qwen/Qwen3-0.6B', messages: [{ role: 'user', content: 'hi' }], n: 2, logprobs: true, top_logprobs: 1 });
    const [kc, sc] = await both('POST', '/v1/chat/completions', chat);
    expect(kc.status).toBe(200);
    expect(sc.status).toBe(200);
    const choices = (a: Answer) => JSON.parse(a.text).choices;
    expect(choices(kc)).toEqual(choices(sc));
    expect(choices(kc)[1].logprobs.content.length).toBeGreaterThan(0);
    // A worker's own error is passed through by both.
    const badChat = JSON.stringify({ model: 'Qwen/Qwen3-0.6B', messages: [] });
    const [kx, sx] = await both('POST', '/v1/chat/completions', badChat);
    expect(kx.status).toBe(sx.status);
    // Differs: sglang-router 0.3.2 refuses a batch /generate (list text) with 422 before any
    // worker sees it, though SGLang serves batches; kvgate passes it on, so the client gets
    // the worker's answer (a list of two).
    const batch = JSON.stringify({ text: ['a', 'b'], sampling_params: { max_new_tokens: 1 } });
    const [kb, sb] = await both('POST', '/generate', batch);
    expect(sb.status).toBe(422);
    expect(kb.status).toBe(200);
    expect(JSON.parse(kb.text)).toHaveLength(2);
    const [kn, sn] = await both('GET', '/no/such/route');
    expect(kn.status).toBe(404);
    expect(sn.status).toBe(404);
  });

  it('workers and cache: /workers and /flush_cache agree; the legacy API is kvgate\'s only', async () => {
    const [k, s] = await both('GET', '/workers');
    const kj = JSON.parse(k.text);
    const sj = JSON.parse(s.text);
    expect(kj.total).toBe(sj.total);
    expect(kj.stats).toEqual(sj.stats);
    const rows = (j: any) => j.workers.map((w: any) => [w.url, w.worker_type, w.is_healthy]).sort();
    expect(rows(kj)).toEqual(rows(sj));
    const [kf, sf] = await both('POST', '/flush_cache');
    expect(kf.status).toBe(sf.status);
    const { status, workers_flushed, total_http_workers } = JSON.parse(sf.text);
    expect(JSON.parse(kf.text)).toMatchObject({ status, workers_flushed, total_http_workers });
    // sglang-router 0.3.2 dropped /list_workers, /add_worker and /remove_worker (404);
    // kvgate keeps them for the older routers' users.
    const [kl, sl] = await both('GET', '/list_workers');
    expect(sl.status).toBe(404);
    expect(kl.status).toBe(200);
  });

  it('/metrics: the smg_* names dashboards query exist in both', async () => {
    // sglang-router serves /metrics on --prometheus-port only (404 on its port); kvgate on both.
    const [k, s] = [await call(`http://127.0.0.1:${ours.metricsPort}`, 'GET', '/metrics'), await call(theirs.metrics, 'GET', '/metrics')];
    expect(k.status).toBe(200);
    expect(s.status).toBe(200);
    expect((await call(theirs.url, 'GET', '/metrics')).status).toBe(404);
    expect((await call(ours.url, 'GET', '/metrics')).status).toBe(200);
    for (const name of ['smg_http_requests_total', 'smg_http_responses_total', 'smg_router_requests_total', 'smg_worker_cb_state']) {
      expect(s.text).toContain(`${name}{`);
      expect(k.text).toContain(`${name}{`);
    }
  });
});
