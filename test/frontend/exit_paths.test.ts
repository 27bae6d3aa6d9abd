// Every way a request can end releases what it took: a real `kvgate serve` routes to a
// scripted SGLang-protocol engine, each exit path runs unary and streaming, and afterwards
// every gauge of active work on /metrics is back to zero (the router's per-worker requests,
// blocks and prefill tokens, the frontend's in-flight requests, stalled streams and bytes
// held for slow clients). A leak on any one path shows as a gauge left above zero.

import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTP_SERVERS } from '../../src/http/wire.js';
import { startFakeSglang, type FakeSglang, type FakeSglangOptions } from './fixtures/fake_sglang.js';
import { kill, listening, Processes, type Proc } from '../fixtures/processes.js';
import { FAULT_TOKEN } from './fixtures/fault_token.js';
import { metric } from './fixtures/stack.js';

const MODEL = 'Qwen/Qwen3-0.6B';
const THE = 279; // Qwen3 " the"
const HELLO = 9707; // Qwen3 "Hello"
const EOS = 151645;
const VOCAB = 151669; // Qwen3's ids are 0 to 151668, added tokens included
const faultInjector = fileURLToPath(new URL('./fixtures/fault_token.ts', import.meta.url));
const words = (n: number) => Array.from({ length: n }, () => THE);

// Gauges of work in progress: all must read 0 when no request is open.
const ACTIVE = [
  'kvgate_router_worker_active_requests',
  'kvgate_router_worker_active_blocks',
  'kvgate_router_worker_prefill_tokens',
  'kvgate_frontend_inflight_requests',
  'kvgate_frontend_stalled_streams',
  'kvgate_frontend_client_buffered_bytes',
];

// Three engines that share one script (the options object), so that a case that takes one
// out of routing for a while (a dropped connection does) leaves others for the next case.
const options: FakeSglangOptions = { servedModelName: MODEL, contextLength: 4096 };
describe.each(HTTP_SERVERS)('over --http-server %s', (httpServer) => {
  let engines: FakeSglang[];
  let serve: Proc;
  let url: string;

  beforeAll(async () => {
    engines = await Promise.all([0, 1, 2].map(() => startFakeSglang(options)));
    serve = new Processes().kvgate(['serve', '--engine-urls', engines.map((e) => e.url).join(','), '--port', '0', '--health-check-interval', '0.1', '--log-level', 'error', '--http-server', httpServer], { nodeArgs: ['--import', faultInjector] });
    url = await listening(serve);
  }, 60_000);

  afterAll(async () => {
    await kill(serve.proc);
    await Promise.all(engines.map((e) => e.close()));
  });

  async function metricsText(): Promise<string> {
    return (await fetch(`${url}/metrics`)).text();
  }

  // Sum of every sample of a gauge (all workers, ranks and models).
  function total(text: string, name: string): number {
    let sum = 0;
    for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) sum += Number(m[1]);
    return sum;
  }

  // Some engine is routed to (a dropped connection takes one out of routing for 5 s).
  async function workerUp(): Promise<void> {
    const end = Date.now() + 10_000;
    while (metric(await metricsText(), 'kvgate_router_workers', { state: 'up' }) === 0) {
      if (Date.now() > end) throw new Error('the engine did not come back up');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async function settled(): Promise<Record<string, number>> {
    let last: Record<string, number> = {};
    const end = Date.now() + 5000;
    while (Date.now() < end) {
      const text = await metricsText();
      last = Object.fromEntries(ACTIVE.map((g) => [g, total(text, g)]));
      if (Object.values(last).every((v) => v === 0)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    return last;
  }

  interface Outcome {
    status: number;
    body: string;
  }

  const body = (stream: boolean, extra: object) =>
    JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'count' }], stream, ...extra });

  async function send(stream: boolean, extra: object, abortAfterChunks?: number): Promise<Outcome> {
    const ctl = new AbortController();
    const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(stream, extra), signal: ctl.signal });
    if (abortAfterChunks === undefined) return { status: res.status, body: await res.text() };
    const reader = res.body!.getReader();
    let text = '';
    for (let n = 0; n < abortAfterChunks; ) {
      const r = await reader.read();
      if (r.done) break;
      text += Buffer.from(r.value).toString();
      n = (text.match(/^data: /gm) ?? []).length;
    }
    // The request is open here: the router counts it on the worker.
    const during = await metricsText();
    ctl.abort();
    return { status: res.status, body: `${text}\n[active ${total(during, 'kvgate_router_worker_active_requests')}]` };
  }

  async function unaryAbort(extra: object): Promise<Outcome> {
    const ctl = new AbortController();
    const pending = fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body(false, extra), signal: ctl.signal }).catch(() => null);
    const received = () => engines.reduce((n, e) => n + e.received.length, 0);
    const before = received();
    const end = Date.now() + 5000;
    while (received() === before && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    const during = await metricsText();
    ctl.abort();
    await pending;
    return { status: 0, body: `[active ${total(during, 'kvgate_router_worker_active_requests')}]` };
  }

  interface Case {
    name: string;
    engine: FakeSglangOptions;
    request: object;
    // What the client must see, to know the intended path ran.
    expect: (o: Outcome, stream: boolean) => void;
    abort?: boolean;
  }

  const cases: Case[] = [
    { name: 'finish (EOS)', engine: { reply: () => [...words(5), EOS] }, request: {}, expect: (o) => expect(o.body).toContain('"stop"') },
    {
      name: 'stop string in the first chunk',
      engine: { reply: () => words(20) },
      request: { stop: [' the'] },
      expect: (o, stream) => {
        expect(o.status).toBe(200);
        expect(o.body).toContain('"finish_reason":"stop"');
        if (stream) expect(o.body).not.toMatch(/"content":" the"/);
      },
    },
    { name: 'stop string later', engine: { reply: () => [HELLO, ...words(20)] }, request: { stop: [' the the'] }, expect: (o) => expect(o.body).toContain('Hello') },
    { name: 'max_tokens', engine: { reply: () => words(50) }, request: { max_tokens: 3 }, expect: (o) => expect(o.body).toContain('"length"') },
    { name: 'engine refuses (error before the first token)', engine: { failStatus: 500 }, request: {}, expect: (o) => expect(o.status).toBe(502) },
    {
      name: 'engine connection drops mid-stream',
      engine: { reply: () => words(20), dropAfter: 3 },
      request: {},
      expect: (o) => expect(o.body).toContain('"code":"engine_unavailable"'),
    },
    { name: 'engine aborts', engine: { reply: () => words(20), abortAfter: 3 }, request: {}, expect: (o) => expect(o.body).toContain('"error"') },
    // Ids that are not the model's end the request with engine_error: 502, or an error event
    // once the stream started. The frames are spaced out: the engine client merges frames that
    // arrive together into one chunk, and the stream must have started before the junk arrives.
    ...[null, -1, 2.5, '7', VOCAB].map((junk) => ({
      name: `engine sends token id ${JSON.stringify(junk)}`,
      engine: { reply: () => words(20), junkIdsAfter: 2, junkIds: [THE, junk], incremental: true, tokenDelayMs: 30 },
      request: {},
      expect: (o: Outcome, stream: boolean) => {
        expect(o.status).toBe(stream ? 200 : 502);
        expect(o.body).toContain('"code":"engine_error"');
        expect(o.body).toContain(JSON.stringify(`token id ${JSON.stringify(junk)}, which is not`).slice(1, -1));
      },
    })),
    {
      // A bug stand-in (fixtures/fault_token.ts) throws a plain TypeError inside the serving
      // path: the handler's unexpected-error exit, a 500 or an in-stream internal_error.
      name: 'unexpected exception while serving',
      engine: { reply: () => [...words(3), FAULT_TOKEN, ...words(10)], incremental: true, tokenDelayMs: 30 },
      request: {},
      expect: (o, stream) => {
        expect(o.status).toBe(stream ? 200 : 500);
        expect(o.body).toContain('"code":"internal_error"');
      },
    },
    {
      name: 'client goes away mid-request',
      engine: { reply: () => words(500), tokenDelayMs: 20 },
      request: {},
      abort: true,
      expect: (o) => expect(o.body).toContain('[active 1]'),
    },
  ];

  describe('every exit path of a request releases its load', () => {
    for (const c of cases) {
      for (const stream of [false, true]) {
        it(`${c.name}, ${stream ? 'streaming' : 'unary'}`, async () => {
          for (const k of Object.keys(options) as (keyof FakeSglangOptions)[]) if (k !== 'servedModelName' && k !== 'contextLength') delete options[k];
          Object.assign(options, c.engine);
          await workerUp();
          const outcome = c.abort ? (stream ? await send(true, c.request, 2) : await unaryAbort(c.request)) : await send(stream, c.request);
          c.expect(outcome, stream);
          expect(await settled()).toEqual(Object.fromEntries(ACTIVE.map((g) => [g, 0])));
        });
      }
    }

    it('the gauges read are the ones serve exports', async () => {
      const text = await metricsText();
      for (const g of ACTIVE) expect(text).toMatch(new RegExp(`^# TYPE ${g} gauge$`, 'm'));
      expect(metric(text, 'kvgate_frontend_requests_total', { status: 'success' })).toBeGreaterThan(0);
    });
  });
});
