// The mocker's SGLang HTTP API on uWebSockets.js (reference/sglang.md §1).

import { uws, type HttpRequest, type HttpResponse, type TemplatedApp, type us_listen_socket } from '../http/uws.js';
import { bearerMatches } from '../security/secrets.js';
import type { MockEngine } from './engine.js';
import { closeListen, exchange, listen, readBody, send, sendJson, sendText, type Exchange } from './http_util.js';
import { admit, ContractError, formatOutput, parseGenerateBody, RequestError, type OutputFormat } from './protocol.js';
import { abortReason, type EngineRequest, type OutputSink } from './request.js';
import { submitGenerate } from './submit.js';
import { byteTokenize } from './tokens.js';
import type { KvEventPorts } from './kv_events.js';
import { engineModelInfo, engineServerInfo, parseLoadSections, rankLoad } from './engine_info.js';

const HEALTH_CHECK_TIMEOUT_MS = 20_000; // SGLANG_HEALTH_CHECK_TIMEOUT

// FastAPI's ErrorResponse, used for request-validation failures and HTTPExceptions.
function errorResponse(message: string, status: number, type: string): Record<string, unknown> {
  return { object: 'error', message, type, param: null, code: status };
}

// Writes one request's outputs: a JSON body at the end, or SSE chunks as they come.
class HttpSink implements OutputSink {
  private started = false;
  constructor(
    private readonly ex: Exchange,
    private readonly format: OutputFormat,
  ) {}

  output(req: EngineRequest, finished: boolean): void {
    const ex = this.ex;
    if (ex.aborted || ex.done) return;
    const now = performance.now();
    if (!req.stream) {
      if (!finished) return;
      const fr = req.finishReason;
      // SGLang turns an abort carrying an HTTP status into an error response when not streaming.
      if (fr?.type === 'abort' && fr.status_code !== null && fr.status_code >= 400 && fr.status_code < 600) {
        if (fr.status_code === 400) sendJson(ex, 400, { error: { message: fr.message } });
        else sendJson(ex, fr.status_code, errorResponse(fr.message, fr.status_code, String(fr.status_code)));
        return;
      }
      sendJson(ex, 200, formatOutput(req, true, this.format, now));
      return;
    }
    const chunk = `data: ${JSON.stringify(formatOutput(req, finished, this.format, now))}\n\n`;
    ex.res.cork(() => {
      if (!this.started) {
        this.started = true;
        ex.res.writeStatus('200 OK');
        ex.res.writeHeader('content-type', 'text/event-stream; charset=utf-8');
      }
      if (finished) {
        ex.done = true;
        ex.res.end(chunk + 'data: [DONE]\n\n');
      } else {
        ex.res.write(chunk);
      }
    });
  }
}

// A ValueError raised while serving: 400 JSON, or (streaming) an in-stream error then [DONE].
function sendRequestError(ex: Exchange, err: RequestError, stream: boolean): void {
  if (!stream) return sendJson(ex, err.status, { error: { message: err.message } });
  const event = { error: { message: err.message, type: 'invalid_request_error', code: err.status, retryable: false } };
  send(ex, 200, `data: ${JSON.stringify(event)}\n\ndata: [DONE]\n\n`, 'text/event-stream; charset=utf-8');
}

// SGLang's --api-key (its auth middleware): every request but OPTIONS and the /health* and
// /metrics* paths must carry `Authorization: Bearer <key>`, else 401 {"error":"Unauthorized"},
// before any routing (so also for unknown paths and wrong methods).
type Routes = Pick<TemplatedApp, 'get' | 'post' | 'put' | 'any'>;
function requireApiKey(app: TemplatedApp, key: string): Routes {
  const guard =
    (handler: (res: HttpResponse, req: HttpRequest) => void | Promise<void>) =>
    (res: HttpResponse, req: HttpRequest): void | Promise<void> => {
      const path = req.getUrl();
      if (req.getMethod() === 'options' || path.startsWith('/health') || path.startsWith('/metrics') || bearerMatches(req.getHeader('authorization'), key)) return handler(res, req);
      sendJson(exchange(res), 401, { error: 'Unauthorized' });
    };
  const routes: Routes = {
    get: (pattern, handler) => (app.get(pattern, guard(handler)), routes as never),
    post: (pattern, handler) => (app.post(pattern, guard(handler)), routes as never),
    put: (pattern, handler) => (app.put(pattern, guard(handler)), routes as never),
    any: (pattern, handler) => (app.any(pattern, guard(handler)), routes as never),
  };
  return routes;
}

export interface HttpServer {
  port: number;
  close(): void;
}

export async function startHttpServer(engine: MockEngine, kvPorts: KvEventPorts | null, bootstrapPort: () => number | null): Promise<HttpServer> {
  const o = engine.opts;
  const app = uws.App();
  const routes = o.apiKey === null ? app : requireApiKey(app, o.apiKey);
  const format: OutputFormat = { withText: !o.skipTokenizerInit, incremental: o.incrementalStreamingOutput, dpSize: o.dpSize };

  async function generate(ex: Exchange): Promise<void> {
    const raw = await readBody(ex);
    if (raw === null || ex.aborted) return;
    if (engine.status !== 'up') return sendJson(ex, 503, errorResponse('The server is not ready.', 503, '503'));
    let body;
    try {
      body = parseGenerateBody(raw);
    } catch (err) {
      if (err instanceof ContractError) return sendJson(ex, 400, { error: err.message });
      return sendJson(ex, 400, errorResponse((err as Error).message, 400, 'Bad Request'));
    }
    let adm;
    try {
      adm = admit(body, o, byteTokenize);
    } catch (err) {
      if (err instanceof RequestError) return sendRequestError(ex, err, body.stream);
      throw err;
    }
    let req: EngineRequest | null;
    try {
      req = submitGenerate(engine, body, adm, new HttpSink(ex, format));
    } catch (err) {
      if (err instanceof RequestError) return sendRequestError(ex, err, body.stream);
      throw err;
    }
    if (!req) return;
    // A client that goes away aborts its request.
    const gone = () => engine.abort(req, abortReason('Request is disconnected from the client side. Abort request.'));
    ex.onAbort = gone;
    if (ex.aborted) gone();
  }

  const onGenerate = (res: HttpResponse) => {
    const ex = exchange(res);
    generate(ex).catch((err: Error) => {
      console.error(`[mocker] /generate failed: ${err.stack ?? err.message}`);
      sendJson(ex, 500, errorResponse('Internal server error', 500, '500'));
    });
  };
  routes.post('/generate', onGenerate);
  routes.put('/generate', onGenerate);

  const health = (res: HttpResponse, deep: boolean) => {
    const ex = exchange(res);
    if (engine.status !== 'up') return send(ex, 503, '', '');
    if (!deep) return send(ex, 200, '', '');
    void engine.healthProbe(HEALTH_CHECK_TIMEOUT_MS).then((ok) => send(ex, ok ? 200 : 503, '', ''));
  };
  routes.get('/health', (res) => health(res, false));
  routes.get('/health_generate', (res) => health(res, true));
  routes.get('/ready', (res) => send(exchange(res), engine.status === 'up' ? 200 : 503, '', ''));

  const modelInfo = () => engineModelInfo(o);
  routes.get('/model_info', (res) => sendJson(exchange(res), 200, modelInfo()));
  routes.get('/get_model_info', (res) => sendJson(exchange(res), 200, modelInfo()));

  const serverInfo = () => engineServerInfo(engine, kvPorts, bootstrapPort());
  routes.get('/server_info', (res) => sendJson(exchange(res), 200, serverInfo()));
  routes.get('/get_server_info', (res) => sendJson(exchange(res), 200, serverInfo()));

  routes.get('/get_load', (res) => {
    const ts = performance.now() / 1000;
    sendJson(
      exchange(res),
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

  routes.get('/v1/loads', (res, req) => {
    const ex = exchange(res);
    const q = new URLSearchParams(req.getQuery() ?? '');
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

  routes.get('/metrics', (res) => {
    const ex = exchange(res);
    if (!engine.metrics) return sendJson(ex, 404, { detail: 'Not Found' });
    void engine.metrics.render().then(({ contentType, body }) => send(ex, 200, body, contentType));
  });

  const flush = (res: HttpResponse, req: HttpRequest) => {
    const ex = exchange(res);
    const t = Number(new URLSearchParams(req.getQuery() ?? '').get('timeout') ?? '0');
    if (!Number.isFinite(t) || t < 0) return sendJson(ex, 400, errorResponse(`timeout must be a number >= 0, got ${t}`, 400, 'Bad Request'));
    void engine.flushCache(t * 1000).then((ok) =>
      ok
        ? sendText(ex, 200, 'Cache flushed.\nPlease check backend logs for more details. (When there are running or waiting requests, the operation will not be performed.)\n')
        : sendText(ex, 400, 'Flush cache failed.\n'),
    );
  };
  routes.get('/flush_cache', flush);
  routes.post('/flush_cache', flush);

  routes.post('/abort_request', (res) => {
    const ex = exchange(res);
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

  routes.get('/v1/models', (res) =>
    sendJson(exchange(res), 200, {
      object: 'list',
      data: [{ id: o.servedModelName, object: 'model', created: Math.floor(engine.startedAt / 1000), owned_by: 'sglang', root: o.modelPath, max_model_len: o.contextLength }],
    }),
  );
  routes.get('/', (res) => sendText(exchange(res), 200, 'SGLang is running'));

  // FastAPI's answers for known paths with the wrong method, and for unknown paths.
  for (const path of ['/generate', '/health', '/health_generate', '/server_info', '/get_server_info', '/model_info', '/get_model_info', '/get_load', '/v1/loads', '/metrics', '/flush_cache', '/abort_request', '/v1/models']) {
    routes.any(path, (res) => sendJson(exchange(res), 405, { detail: 'Method Not Allowed' }));
  }
  routes.any('/*', (res) => sendJson(exchange(res), 404, { detail: 'Not Found' }));

  const { socket, port } = await listen(app, o.host, o.port);
  let listenSocket: us_listen_socket | null = socket;
  return {
    port,
    close() {
      if (listenSocket) closeListen(listenSocket);
      listenSocket = null;
    },
  };
}
