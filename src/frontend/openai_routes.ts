// The OpenAI-compatible routes over the serving core: /v1/chat/completions,
// /v1/completions (SSE or JSON), /v1/models, and /health, /live, /metrics.

import { KvgateError } from '../errors.js';
import type { Admission } from './admission.js';
import type { GenerationEvent, Prepared, ServedModel, ServingCore } from './serving.js';
import type { WorkerSet } from '../router/worker_set.js';
import type { Logger } from '../observability/log.js';
import type { FrontendMetrics, RequestStatus } from '../observability/metrics.js';
import { logRequest } from '../observability/request_log.js';
import {
  SSE_DONE,
  chatChunk,
  chatCompletion,
  chatUsageChunk,
  completion,
  completionChunk,
  completionUsageChunk,
  sseEvent,
  textEventFormat,
  type ResponseMeta,
} from '../openai/responses.js';
import type { ModelListJson, OpenAIRequest } from '../openai/types.js';
import { chatLogprobs, completionLogprobs, tokensLength, type TokenText } from '../openai/logprobs.js';
import type { PromptLogprob, TokenLogprob } from '../engine/client.js';
import { validateChatRequest, validateCompletionRequest } from '../openai/validate.js';
import { decodeParam, type Exchange } from '../http/exchange.js';
import type { HttpServer } from '../http/server.js';

export interface RouteDeps {
  core: ServingCore;
  models: readonly ServedModel[];
  workers: WorkerSet;
  metrics: FrontendMetrics;
  admission?: Admission | null;
  log?: Logger;
}

type Kind = 'chat' | 'completion';

function parseJson(body: Buffer): unknown {
  if (body.length === 0) throw new KvgateError('invalid_json', 'the request body is empty: send a JSON object');
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new KvgateError('invalid_json', `the request body is not valid JSON: ${(err as Error).message}`);
  }
}

// Logprobs of one request's tokens in the OpenAI shape of its endpoint; null when not asked.
class LogprobFormat {
  private offset = 0; // completions' text_offset of the next token

  private constructor(
    private readonly kind: Kind,
    private readonly top: number,
    private readonly text: TokenText,
  ) {}

  static of(p: Prepared): LogprobFormat | null {
    const asked = p.request.logprobs;
    if (!asked) return null;
    const tok = p.model.preprocessor.tokenizer;
    const text = Object.assign((id: number) => tok.decode([id], false), { bytes: (id: number) => tok.tokenBytes(id) });
    return new LogprobFormat(p.request.kind, asked.top, text);
  }

  // Chat echoes no prompt: every logprob is a generated token's, a number.
  chat(lps: readonly PromptLogprob[]) {
    return chatLogprobs(lps.filter((t): t is TokenLogprob => t.logprob !== null), this.text);
  }

  completion(lps: readonly PromptLogprob[]) {
    const out = completionLogprobs(lps, this.text, this.offset, this.top);
    this.offset += tokensLength(lps, this.text);
    return out;
  }
}

// Formats generation events as SSE for one request.
class StreamFormatter {
  private readonly text: (text: string) => string;

  constructor(
    private readonly kind: Kind,
    private readonly meta: ResponseMeta,
    private readonly includeUsage: boolean,
    private readonly logprobs: LogprobFormat | null,
  ) {
    this.text = textEventFormat(kind, meta, includeUsage);
  }

  head(): string {
    return this.kind === 'chat' ? sseEvent(chatChunk(this.meta, { role: 'assistant', content: '' }, null, this.includeUsage)) : '';
  }

  event(ev: GenerationEvent): string {
    const iu = this.includeUsage;
    if (ev.type === 'text') {
      const lp = ev.logprobs;
      if (!lp || !this.logprobs) return this.text(ev.text);
      // Each chunk carries its own tokens' logprobs (the fast text path has none).
      return sseEvent(
        this.kind === 'chat'
          ? chatChunk(this.meta, { content: ev.text }, null, this.includeUsage, this.logprobs.chat(lp))
          : completionChunk(this.meta, ev.text, null, this.includeUsage, this.logprobs.completion(lp)),
      );
    }
    let out = sseEvent(this.kind === 'chat' ? chatChunk(this.meta, {}, ev.finishReason, iu) : completionChunk(this.meta, '', ev.finishReason, iu));
    if (iu) out += sseEvent(this.kind === 'chat' ? chatUsageChunk(this.meta, ev.usage) : completionUsageChunk(this.meta, ev.usage));
    return out + SSE_DONE;
  }
}

async function stream(ex: Exchange, kind: Kind, p: Prepared, events: AsyncGenerator<GenerationEvent>, meta: ResponseMeta): Promise<boolean> {
  try {
    // Asking for the first event routes the request and sends it to the engine (before next()
    // returns, on a kept-alive connection), so the formatter is built while the engine works.
    const firstEvent = events.next();
    const fmt = new StreamFormatter(kind, meta, p.request.includeUsage, LogprobFormat.of(p));
    const head = fmt.head();
    // Headers go out with the first event, so that failures before it (no worker, engine
    // unreachable or refusing) still get a proper status and error JSON.
    const first = await firstEvent;
    if (first.done) return false;
    if (first.value.type === 'end') {
      ex.startStream(head + fmt.event(first.value));
      ex.endStream('');
      return true;
    }
    // A write the client did not take stops the loop from pulling engine events until it
    // does, so a slow client backs up the engine stream instead of the gateway's memory.
    if (!ex.startStream(head + fmt.event(first.value)) && !(await ex.writable())) return false;
    for (;;) {
      const next = await events.next();
      if (next.done) return false;
      const ev = next.value;
      if (ev.type === 'end') {
        ex.endStream(fmt.event(ev));
        return true;
      }
      if (!ex.write(fmt.event(ev)) && !(await ex.writable())) return false;
    }
  } finally {
    // Every way out (first event ends it, client gone, write stalled, exception) runs the
    // generator's cleanup: engine abort when unfinished, and the router's load release.
    await events.return(undefined);
  }
}

async function unary(ex: Exchange, kind: Kind, p: Prepared, events: AsyncGenerator<GenerationEvent>, meta: ResponseMeta): Promise<boolean> {
  let text = '';
  const lpf = LogprobFormat.of(p);
  const lps: PromptLogprob[] = [];
  for await (const ev of events) {
    if (ev.type === 'text') {
      text += ev.text;
      if (ev.logprobs) for (const t of ev.logprobs) lps.push(t);
      continue;
    }
    ex.json(
      200,
      kind === 'chat'
        ? chatCompletion(meta, text, ev.finishReason, ev.usage, lpf && lpf.chat(lps))
        : completion(meta, text, ev.finishReason, ev.usage, lpf && lpf.completion(lps)),
    );
    return true;
  }
  return false;
}

function generationHandler(deps: RouteDeps, kind: Kind) {
  const endpoint = kind === 'chat' ? 'chat_completions' : 'completions';
  return async (ex: Exchange, body: Buffer): Promise<void> => {
    const receivedAt = performance.now();
    let request: OpenAIRequest | null = null;
    let prepared: Prepared | null = null;
    let failure: unknown;
    let status: RequestStatus = 'error';
    let model = 'unknown';
    let counted = false;
    let release: (() => void) | null = null;
    try {
      const raw = parseJson(body);
      request = kind === 'chat' ? validateChatRequest(raw) : validateCompletionRequest(raw);
      model = deps.core.model(request.model).name;
      deps.metrics.forModel(model).inflight.inc();
      counted = true;
      // Waits here (before tokenizing) when the server is at its concurrency limit.
      if (deps.admission) release = await deps.admission.acquire(ex.signal);
      const p = (prepared = await deps.core.prepare(request, receivedAt, ex.signal));
      if (!ex.isOpen) {
        status = 'cancelled';
        return;
      }
      const meta: ResponseMeta = { id: `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${p.requestId}`, created: Math.floor(Date.now() / 1000), model: request.model };
      const events = deps.core.generate(p, ex.signal);
      const done = request.stream ? await stream(ex, kind, p, events, meta) : await unary(ex, kind, p, events, meta);
      status = done ? 'success' : 'cancelled';
    } catch (err) {
      failure = err;
      throw err;
    } finally {
      release?.();
      if (status === 'cancelled' || (ex.signal.aborted && status === 'error')) {
        status = 'cancelled';
        deps.metrics.disconnects.inc({ model });
      }
      if (counted) deps.metrics.forModel(model).inflight.dec();
      deps.metrics.requests.inc({ model, endpoint, request_type: request?.stream ? 'stream' : 'unary', status });
      deps.metrics.duration.observe({ model }, (performance.now() - receivedAt) / 1000);
      if (deps.log) logRequest(deps.log, { id: prepared?.requestId ?? null, model: request?.model ?? model, endpoint, stream: request?.stream ?? false, status, receivedAt, promptTokens: prepared?.tokenIds.length ?? null, trace: prepared?.trace ?? null, error: failure });
    }
  };
}

const MODELS_PREFIX = '/v1/models/';

export function registerOpenAIRoutes(server: HttpServer, deps: RouteDeps): void {
  const listJson = (): ModelListJson => ({
    object: 'list',
    data: deps.models.map((m) => {
      const pools = deps.workers.pools?.()[m.name];
      return { id: m.name, object: 'model', created: m.created, owned_by: 'kvgate', max_model_len: m.contextLength, ...(pools ? { pools } : {}) };
    }),
  });
  server
    .route('post', '/v1/chat/completions', generationHandler(deps, 'chat'), { auth: true })
    .route('post', '/v1/completions', generationHandler(deps, 'completion'), { auth: true })
    .route('get', '/v1/models', (ex) => ex.json(200, listJson()), { auth: true })
    // Model ids may contain '/' (Qwen/Qwen3-0.6B), sent raw or as %2F: the id is the rest of the path.
    .route(
      'get',
      '/v1/models/*',
      (ex) => {
        const id = decodeParam(ex.url.slice(MODELS_PREFIX.length));
        const m = listJson().data.find((d) => d.id === id);
        if (!m) throw new KvgateError('model_not_found', `the model '${id}' does not exist`, 'model');
        ex.json(200, m);
      },
      { auth: true },
    )
    // Ready when every served model has at least one worker that can take requests;
    // degraded (still 200) while some worker cannot (being restarted, disconnected, refused)
    // or a backend beyond them is away (etcd: the last known workers are served; NATS: the
    // workers are routed approximately, as is one whose own link to NATS is down).
    .route('get', '/health', (ex) => {
      const models = Object.fromEntries(deps.models.map((m) => [m.name, deps.workers.readyCount(m.name)]));
      const ready = Object.values(models).every((n) => n > 0);
      const workers = deps.workers.workers();
      const remotes = deps.workers.remotes?.() ?? {};
      const status = !ready ? 'unhealthy' : workers.every((w) => w.healthy && !w.routing) && Object.values(remotes).every((r) => r.connected) ? 'healthy' : 'degraded';
      const pools = deps.workers.pools?.();
      ex.json(ready ? 200 : 503, { status, models, ...(pools ? { pools } : {}), workers, ...remotes });
    })
    .route('get', '/live', (ex) => ex.json(200, { status: 'live' }))
    .route('get', '/metrics', async (ex) => {
      const text = await deps.metrics.text();
      ex.text(200, text, deps.metrics.contentType);
    });
}
