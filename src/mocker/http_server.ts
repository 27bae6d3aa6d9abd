// The mocker's SGLang HTTP API on uWebSockets.js (reference/sglang.md §1).

import type { MockEngine } from './engine.js';
import { abortError, errorResponse, MockerApp, readBody, send, sendJson, sendText, SseWriter, type Exchange } from './http_util.js';
import { admit, BatchShapeError, ContractError, formatOutput, parseGenerateBody, RequestError, type Admission, type GenerateBody, type OutputFormat } from './protocol.js';
import { abortReason, type EngineRequest, type OutputSink } from './request.js';
import { submitGenerate } from './submit.js';
import { byteTokenize } from './tokens.js';
import type { KvEventPorts } from './kv_events.js';
import { EXPERT_RECORD_TEXT } from './expert_distribution.js';
import { engineModelInfo, engineServerInfo, parseLoadSections, rankLoad } from './engine_info.js';
import type { LogprobView } from './logprobs.js';
import { asOpenAIError, chatTemplate, openAIError, OpenAIResponder, planOpenAI, type OpenAIKind } from './openai.js';
import type { TemplateMessage } from '../preprocess/chat_template.js';

const HEALTH_CHECK_TIMEOUT_MS = 20_000; // SGLANG_HEALTH_CHECK_TIMEOUT

// Writes one request's outputs: a JSON body at the end, or SSE chunks as they come.
class HttpSink implements OutputSink {
  private readonly sse: SseWriter;
  constructor(
    private readonly ex: Exchange,
    private readonly format: OutputFormat,
    private readonly logprob: LogprobView | null,
  ) {
    this.sse = new SseWriter(ex);
  }

  output(req: EngineRequest, finished: boolean): void {
    const ex = this.ex;
    if (ex.aborted || ex.done) return;
    const now = performance.now();
    if (!req.stream) {
      if (!finished) return;
      const err = abortError(req);
      if (err) return sendJson(ex, err.status, err.body);
      sendJson(ex, 200, formatOutput(req, true, this.format, now, this.logprob));
      return;
    }
    const chunk = `data: ${JSON.stringify(formatOutput(req, finished, this.format, now, this.logprob))}\n\n`;
    this.sse.write(finished ? chunk + 'data: [DONE]\n\n' : chunk, finished);
  }
}

// A batch (list prompts or n > 1): non-streaming, one JSON list in item order once all are done;
// streaming, every item's chunks as they come, tagged with "index", then one [DONE].
class BatchSink {
  private readonly outputs: (Record<string, unknown> | null)[];
  private readonly sse: SseWriter;
  private left: number;
  constructor(
    private readonly ex: Exchange,
    private readonly format: OutputFormat,
    private readonly stream: boolean,
    size: number,
  ) {
    this.outputs = new Array<Record<string, unknown> | null>(size).fill(null);
    this.left = size;
    this.sse = new SseWriter(ex);
  }

  item(index: number, logprob: LogprobView | null): OutputSink {
    return {
      output: (req, finished) => {
        const ex = this.ex;
        if (ex.aborted || ex.done || (!this.stream && !finished)) return;
        if (finished) this.left--;
        if (!this.stream) {
          const err = abortError(req);
          if (err) return sendJson(ex, err.status, err.body);
          this.outputs[index] = formatOutput(req, true, this.format, performance.now(), logprob);
          if (this.left === 0) sendJson(ex, 200, this.outputs);
          return;
        }
        const chunk = `data: ${JSON.stringify({ ...formatOutput(req, finished, this.format, performance.now(), logprob), index })}\n\n`;
        const last = this.left === 0;
        this.sse.write(last ? chunk + 'data: [DONE]\n\n' : chunk, last);
      },
    };
  }
}

// A ValueError raised while serving: 400 JSON, or (streaming) an in-stream error then [DONE].
function sendRequestError(ex: Exchange, err: RequestError, stream: boolean): void {
  if (!stream) return sendJson(ex, err.status, { error: { message: err.message } });
  const event = { error: { message: err.message, type: 'invalid_request_error', code: err.status, retryable: false } };
  send(ex, 200, `data: ${JSON.stringify(event)}\n\ndata: [DONE]\n\n`, 'text/event-stream; charset=utf-8');
}

export interface HttpServer {
  port: number;
  // Stops accepting (in-flight requests go on).
  close(): void;
  // Drops every connection, once in-flight requests are done.
  closeConnections(): void;
}

export async function startHttpServer(engine: MockEngine, kvPorts: KvEventPorts | null, bootstrapPort: () => number | null): Promise<HttpServer> {
  const o = engine.opts;
  const app = new MockerApp(
    (ex) => sendJson(ex, 405, { detail: 'Method Not Allowed' }),
    (ex) => sendJson(ex, 404, { detail: 'Not Found' }),
    o.apiKey,
  );
  const format: OutputFormat = { withText: !o.skipTokenizerInit, incremental: o.incrementalStreamingOutput, dpSize: o.dpSize };
  const logprobView = (adm: Admission): LogprobView | null =>
    adm.logprob && { opts: adm.logprob, eosTokenId: o.eosTokenId, inputs: o.disaggregationMode !== 'decode' };

  // Queue admitted requests; a client that goes away aborts them all.
  function run(ex: Exchange, items: GenerateBody[], adms: Admission[], sinkFor: (i: number) => OutputSink, stream: boolean): void {
    const reqs: EngineRequest[] = [];
    try {
      items.forEach((b, i) => {
        const req = submitGenerate(engine, b, adms[i]!, sinkFor(i));
        if (req) reqs.push(req);
      });
    } catch (err) {
      // The error goes out first: the aborted items' sinks then find the exchange answered.
      if (err instanceof RequestError) sendRequestError(ex, err, stream);
      for (const r of reqs) engine.abort(r);
      if (err instanceof RequestError) return;
      throw err;
    }
    const gone = () => {
      for (const r of reqs) engine.abort(r, abortReason('Request is disconnected from the client side. Abort request.'));
    };
    ex.onAbort = gone;
    if (ex.aborted) gone();
  }

  // Parallel sampling first prefills each prompt alone (max_new_tokens = 0), so the n samples
  // find it cached, as SGLang's tokenizer manager does. Not in PD mode (no room to pair it with).
  async function warmPrompts(items: GenerateBody[], adms: Admission[], n: number): Promise<void> {
    if (n === 1 || o.disaggregationMode !== 'null') return;
    const warm: Promise<void>[] = [];
    for (let i = 0; i < items.length; i += n) {
      const adm = { ...adms[i]!, rid: `${adms[i]!.rid}_warm`, stream: false, logprob: null, rules: { ...adms[i]!.rules, maxNewTokens: 0, minNewTokens: 0 } };
      warm.push(new Promise((resolve) => submitGenerate(engine, items[i]!, adm, { output: (_r, finished) => finished && resolve() }) ?? resolve()));
    }
    await Promise.all(warm);
  }

  // Admit every item of a request; null (after `refuse` answered) when one is refused.
  function admitAll(items: GenerateBody[], refuse: (err: RequestError) => void): Admission[] | null {
    try {
      const adms = items.map((b) => admit(b, o, byteTokenize));
      if (new Set(adms.map((a) => a.rid)).size !== adms.length) throw new RequestError('Duplicate request IDs detected within the request.');
      // Checked before any item is queued, so a refused batch leaves nothing running.
      const taken = adms.find((a) => engine.hasRid(a.rid));
      if (taken) throw new RequestError(`Duplicate request ID detected: ${taken.rid}`);
      return adms;
    } catch (err) {
      if (err instanceof RequestError) {
        refuse(err);
        return null;
      }
      throw err;
    }
  }

  async function generate(ex: Exchange): Promise<void> {
    const raw = await readBody(ex);
    if (raw === null || ex.aborted) return;
    if (engine.status !== 'up') return sendJson(ex, 503, errorResponse('The server is not ready.', 503, '503'));
    let body;
    try {
      body = parseGenerateBody(raw);
    } catch (err) {
      if (err instanceof ContractError) return sendJson(ex, 400, { error: err.message });
      if (err instanceof BatchShapeError) return sendRequestError(ex, err, err.stream);
      return sendJson(ex, 400, errorResponse((err as Error).message, 400, 'Bad Request'));
    }
    const items = body.batch ?? [body];
    const adms = admitAll(items, (err) => sendRequestError(ex, err, body.stream));
    if (!adms) return;
    if (!body.batch) return run(ex, items, adms, () => new HttpSink(ex, format, logprobView(adms[0]!)), body.stream);
    await warmPrompts(items, adms, items[0]!.sampling.n);
    if (ex.aborted) return;
    const batch = new BatchSink(ex, format, body.stream, items.length);
    run(ex, items, adms, (i) => batch.item(i, logprobView(adms[i]!)), body.stream);
  }

  // /v1/chat/completions and /v1/completions: the /generate request SGLang's OpenAI layer
  // builds, answered in OpenAI's shapes (openai.ts). Errors are SGLang's 400 ErrorResponse.
  const render = (msgs: TemplateMessage[], addGenerationPrompt: boolean, kwargs: Record<string, unknown>, tools: unknown[] | undefined) =>
    chatTemplate(o.tokenizerPath).render({ messages: msgs, addGenerationPrompt, kwargs, tools });
  async function openai(kind: OpenAIKind, ex: Exchange): Promise<void> {
    const raw = await readBody(ex);
    if (raw === null || ex.aborted) return;
    if (engine.status !== 'up') return sendJson(ex, 503, openAIError('The server is not ready.', 503));
    const refuse = (err: Error) => sendJson(ex, 400, openAIError(err.message));
    let plan, body;
    try {
      plan = planOpenAI(kind, JSON.parse(raw), o.servedModelName, render);
      body = parseGenerateBody(JSON.stringify(plan.generate), raw);
    } catch (err) {
      if (err instanceof SyntaxError) return refuse(new Error(`JSON decode error: ${err.message}`));
      const e = asOpenAIError(err) ?? (err instanceof ContractError || err instanceof RequestError ? err : null);
      if (e) return refuse(e);
      throw err;
    }
    const items = body.batch ?? [body];
    const adms = admitAll(items, refuse);
    if (!adms) return;
    await warmPrompts(items, adms, plan.n);
    if (ex.aborted) return;
    const responder = new OpenAIResponder(ex, plan, { ...format, withText: true, incremental: false }, items.length);
    run(ex, items, adms, (i) => responder.item(i, logprobView(adms[i]!)), plan.stream);
  }

  const handled = (what: string, serve: (ex: Exchange) => Promise<void>) => (ex: Exchange) => {
    serve(ex).catch((err: Error) => {
      console.error(`[mocker] ${what} failed: ${err.stack ?? err.message}`);
      sendJson(ex, 500, errorResponse('Internal server error', 500, '500'));
    });
  };
  const onGenerate = handled('/generate', generate);
  app.post('/v1/chat/completions', handled('/v1/chat/completions', (ex) => openai('chat', ex)));
  app.post('/v1/completions', handled('/v1/completions', (ex) => openai('completion', ex)));
  app.post('/generate', onGenerate);
  app.put('/generate', onGenerate);

  const health = (ex: Exchange, deep: boolean) => {
    if (engine.status !== 'up') return send(ex, 503, '', '');
    if (!deep) return send(ex, 200, '', '');
    void engine.healthProbe(HEALTH_CHECK_TIMEOUT_MS).then((ok) => send(ex, ok ? 200 : 503, '', ''));
  };
  app.get('/health', (ex) => health(ex, false));
  app.get('/health_generate', (ex) => health(ex, true));
  app.get('/ready', (ex) => send(ex, engine.status === 'up' ? 200 : 503, '', ''));

  const modelInfo = () => engineModelInfo(o);
  app.get('/model_info', (ex) => sendJson(ex, 200, modelInfo()));
  app.get('/get_model_info', (ex) => sendJson(ex, 200, modelInfo()));

  const serverInfo = () => engineServerInfo(engine, kvPorts, bootstrapPort());
  app.get('/server_info', (ex) => sendJson(ex, 200, serverInfo()));
  app.get('/get_server_info', (ex) => sendJson(ex, 200, serverInfo()));

  app.get('/get_load', (ex) => {
    const ts = performance.now() / 1000;
    sendJson(
      ex,
      200,
      engine.ranks.map((s, r) => ({
        dp_rank: r,
        num_reqs: s.numRequests,
        num_waiting_reqs: s.numWaiting + s.numBootstrapping,
        num_tokens: s.usedTokens + s.waitingTokens,
        num_pending_tokens: s.waitingTokens,
        ts_tic: ts,
      })),
    );
  });

  app.get('/v1/loads', (ex) => {
    const q = new URLSearchParams(ex.wire.query);
    let include: Set<string> | null;
    try {
      include = parseLoadSections(q.get('include')?.split(','));
    } catch (err) {
      return sendJson(ex, 400, errorResponse((err as Error).message, 400, '400'));
    }
    const dpRaw = q.get('dp_rank');
    let ranks = engine.ranks.map((_, r) => r);
    if (dpRaw !== null) {
      const dp = Number(dpRaw);
      if (!Number.isInteger(dp) || dp < 0 || dp >= o.dpSize) return sendJson(ex, 400, errorResponse(`dp_rank must be in [0, ${o.dpSize}), got ${dpRaw}`, 400, '400'));
      ranks = [dp];
    }
    const loads = ranks.map((r) => rankLoad(engine, r, include));
    if (q.get('format') === 'prometheus') {
      const lines: string[] = [];
      const samples = new Map<string, [number, number][]>();
      for (const l of loads) {
        for (const [k, v] of Object.entries(l)) {
          if (k === 'dp_rank') continue;
          const add = (name: string, val: unknown) => {
            if (typeof val === 'number') samples.set(name, [...(samples.get(name) ?? []), [l.dp_rank as number, val]]);
          };
          if (v && typeof v === 'object') {
            const prefix = k === 'disaggregation' ? 'disagg' : k;
            for (const [sk, sv] of Object.entries(v)) add(`sglang_${prefix}_${sk}`, sv);
          } else add(`sglang_${k}`, v);
        }
      }
      for (const [name, vals] of samples) {
        lines.push(`# TYPE ${name} gauge`);
        for (const [r, v] of vals) lines.push(`${name}{dp_rank="${r}"} ${v}`);
      }
      return send(ex, 200, lines.join('\n') + '\n', 'text/plain; version=0.0.4; charset=utf-8');
    }
    sendJson(ex, 200, { timestamp: new Date().toISOString(), version: 'kvgate-mocker', accelerator: null, num_accelerators: 1, loads });
  });

  app.get('/metrics', (ex) => {
    if (!engine.metrics) return sendJson(ex, 404, { detail: 'Not Found' });
    void engine.metrics.render().then(({ contentType, body }) => send(ex, 200, body, contentType));
  });

  const flush = (ex: Exchange) => {
    const t = Number(new URLSearchParams(ex.wire.query).get('timeout') ?? '0');
    if (!Number.isFinite(t) || t < 0) return sendJson(ex, 400, errorResponse(`timeout must be a number >= 0, got ${t}`, 400, 'Bad Request'));
    void engine.flushCache(t * 1000).then((ok) =>
      ok
        ? sendText(ex, 200, 'Cache flushed.\nPlease check backend logs for more details. (When there are running or waiting requests, the operation will not be performed.)\n')
        : sendText(ex, 400, 'Flush cache failed.\n'),
    );
  };
  app.get('/flush_cache', flush);
  app.post('/flush_cache', flush);

  app.post('/abort_request', (ex) => {
    void readBody(ex).then((raw) => {
      if (raw === null) return;
      let body: unknown;
      try {
        body = JSON.parse(raw || '{}');
      } catch (err) {
        return sendJson(ex, 400, errorResponse(`JSON decode error: ${(err as Error).message}`, 400, 'Bad Request'));
      }
      const b = body as { rid?: unknown; abort_all?: unknown };
      if (typeof body !== 'object' || body === null || (b.rid != null && typeof b.rid !== 'string') || (b.abort_all != null && typeof b.abort_all !== 'boolean')) {
        return sendJson(ex, 400, errorResponse('abort_request expects {"rid": string, "abort_all": bool}', 400, 'Bad Request'));
      }
      engine.abortByRid((b.rid as string | undefined) ?? '', (b.abort_all as boolean | undefined) ?? false);
      send(ex, 200, '', '');
    });
  });

  // Expert-distribution recording (expert_distribution.ts): GET or POST, no body, SGLang's text.
  const expertRoutes: [string, () => void, string][] = [
    ['/start_expert_distribution_record', () => engine.experts.start(), EXPERT_RECORD_TEXT.start],
    ['/stop_expert_distribution_record', () => engine.experts.stop(), EXPERT_RECORD_TEXT.stop],
    ['/dump_expert_distribution_record', () => void engine.experts.dump(), EXPERT_RECORD_TEXT.dump],
  ];
  for (const [path, act, text] of expertRoutes) {
    const handler = (ex: Exchange) => {
      try {
        act();
      } catch (err) {
        return sendJson(ex, 400, { error: { message: (err as Error).message } });
      }
      sendText(ex, 200, text);
    };
    app.get(path, handler);
    app.post(path, handler);
  }

  app.get('/v1/models', (ex) =>
    sendJson(ex, 200, {
      object: 'list',
      data: [{ id: o.servedModelName, object: 'model', created: Math.floor(engine.startedAt / 1000), owned_by: 'sglang', root: o.modelPath, max_model_len: o.contextLength }],
    }),
  );
  app.get('/', (ex) => sendText(ex, 200, 'SGLang is running'));

  const port = await app.listen(o.host, o.port);
  return {
    port,
    close() {
      app.close();
    },
    closeConnections() {
      app.closeConnections();
    },
  };
}
