// An EngineClient over SGLang's gRPC API (`sglang.launch_server --grpc-mode`, service
// SglangScheduler; schema/grpc/sglang_scheduler.proto, reference/sglang.md §1.10): token ids
// in, token ids out, no JSON and no tokenizer on either side.
//
// - Generate always streams: each GenerateStreamChunk carries the ids new since the last one
//   (a disjoint chunk as is), the GenerateComplete the finish reason and usage. Its output_ids
//   repeat the last chunk's and are not used.
// - Every SamplingParams field is set: proto3 zeros are not SGLang's defaults. A field the
//   request leaves to the engine gets the engine's own default (GetModelInfo's
//   default_sampling_params_json, read once), else SGLang's neutral value. The contract has
//   no sampling seed, so a seed is not carried.
// - Aborting the signal (or leaving the stream early) cancels the call, which SGLang's
//   servicer takes as an abort, and also sends the Abort RPC.
// - The stream is read off grpc-js's channel call (grpc_stream.ts); chunks that arrive while
//   the caller is busy are handed over merged.
// - The engine ends a failed or aborted request with a gRPC status: INVALID_ARGUMENT becomes
//   invalid_request, DEADLINE_EXCEEDED engine_timeout, UNAVAILABLE (the engine cannot be
//   reached, or the connection broke) engine_unavailable as for HTTP (the router takes the
//   worker out), anything else engine_error.
// - getJson() answers the HTTP paths the model-card reader and the load poller ask for
//   (/health, /server_info, /model_info, /v1/models, /v1/loads) from the matching RPCs, in
//   the HTTP API's JSON shape, so a worker supervises a gRPC engine as it does an HTTP one.

import * as grpc from '@grpc/grpc-js';
import type { ModelCard } from './model_card.js';
import { KvgateError } from '../errors.js';
import { ServerStream } from './grpc_stream.js';
import { readModelCard } from './model_card.js';
import type { DirectEngine, FinishReason, GenerateChunk, GenerateRequest, SamplingOptions } from './client.js';
import {
  fromStruct,
  plainObject,
  sglangSchema,
  type AbortResponseMsg,
  type FlushCacheResponseMsg,
  type GenerateCompleteMsg,
  type GenerateRequestMsg,
  type GenerateResponseMsg,
  type GetLoadsResponseMsg,
  type GetModelInfoResponseMsg,
  type GetServerInfoResponseMsg,
  type HealthCheckResponseMsg,
  type Method,
  type SamplingParamsMsg,
} from './sglang_grpc_schema.js';

// SGLang's neutral sampling values (reference/sglang.md §1.3), for fields neither the request
// nor the engine's defaults set.
const NEUTRAL = { temperature: 1, top_p: 1, top_k: -1, min_p: 0, frequency_penalty: 0, presence_penalty: 0, repetition_penalty: 1 };
type SamplingDefaults = typeof NEUTRAL;

// The room travels as an int32 on this wire.
const INT32_MAX = 2 ** 31 - 1;

function finishReason(c: GenerateCompleteMsg): FinishReason {
  switch (c.finish_reason) {
    case 'length':
      return { type: 'length', length: c.completion_tokens };
    case 'abort':
      return { type: 'abort', message: null };
    default: {
      // 'stop', and reasons newer than this client: the request is over either way.
      const which = c.matched_stop;
      return { type: 'stop', matched: which === 'matched_token_id' ? c.matched_token_id! : which === 'matched_stop_str' ? c.matched_stop_str! : null };
    }
  }
}

function defaultsOf(json: string): SamplingDefaults {
  const d = { ...NEUTRAL };
  if (!json) return d;
  try {
    const parsed = JSON.parse(json) as Record<string, unknown>;
    for (const k of Object.keys(d) as (keyof SamplingDefaults)[]) if (typeof parsed[k] === 'number') d[k] = parsed[k];
  } catch {
    /* unreadable defaults: the neutral ones */
  }
  return d;
}

function samplingParams(s: SamplingOptions, d: SamplingDefaults): SamplingParamsMsg {
  return {
    temperature: s.temperature ?? d.temperature,
    top_p: s.topP ?? d.top_p,
    top_k: s.topK ?? d.top_k,
    min_p: s.minP ?? d.min_p,
    frequency_penalty: s.frequencyPenalty ?? d.frequency_penalty,
    presence_penalty: s.presencePenalty ?? d.presence_penalty,
    repetition_penalty: s.repetitionPenalty ?? d.repetition_penalty,
    max_new_tokens: s.maxNewTokens,
    stop_token_ids: s.stopTokenIds ?? [],
    skip_special_tokens: true,
    spaces_between_special_tokens: true,
    n: 1,
    min_new_tokens: s.minNewTokens ?? 0,
    ignore_eos: s.ignoreEos ?? false,
    no_stop_trim: false,
  };
}

export interface SglangGrpcOptions {
  // Deadline of the unary RPCs (health, info, loads, abort, flush).
  controlTimeoutMs?: number;
}

export class SglangGrpcEngine implements DirectEngine {
  readonly url: string;
  private readonly target: string;
  private readonly client: grpc.Client;
  private readonly methods = sglangSchema().methods;
  private readonly controlTimeoutMs: number;
  private readonly inflight = new Set<ServerStream<unknown>>();
  private defaults: Promise<SamplingDefaults> | null = null;

  // url: grpc://host:port
  constructor(url: string, options: SglangGrpcOptions = {}) {
    const u = URL.canParse(url) ? new URL(url) : null;
    if (!u || u.protocol !== 'grpc:' || !u.port) throw new KvgateError('invalid_config', `'${url}' is not a grpc://host:port URL`);
    this.target = u.host;
    this.url = `grpc://${u.host}`;
    this.controlTimeoutMs = options.controlTimeoutMs ?? 5000;
    this.client = new grpc.Client(this.target, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': 256 << 20,
      // A dead engine is noticed between requests too.
      'grpc.keepalive_time_ms': 30_000,
    });
  }

  private samplingDefaults(): Promise<SamplingDefaults> {
    this.defaults ??= this.modelInfo().then(
      (info) => defaultsOf(info.default_sampling_params_json),
      () => {
        // Asked again a little later, not on every request meanwhile.
        setTimeout(() => (this.defaults = null), 5000).unref();
        return NEUTRAL;
      },
    );
    return this.defaults;
  }

  private async requestMessage(req: GenerateRequest): Promise<GenerateRequestMsg> {
    // The output's logprob messages are not mapped by this client: refused rather than dropped.
    if (req.logprobs) throw new KvgateError('unsupported_parameter', `'logprobs' is not supported by engines reached over SGLang's gRPC API (${this.url}); serve this model from HTTP engines`, 'logprobs');
    const msg: GenerateRequestMsg = {
      request_id: req.requestId,
      tokenized: { original_text: '', input_ids: req.tokenIds as number[] },
      sampling_params: samplingParams(req.sampling, await this.samplingDefaults()),
      log_metrics: true,
      stream: true,
    };
    if (req.dpRank !== undefined) msg.data_parallel_rank = req.dpRank;
    if (req.bootstrap) {
      const room = req.bootstrap.room;
      if (room < 0n || room > BigInt(INT32_MAX)) {
        throw new KvgateError('invalid_request', `bootstrap_room ${room} does not fit SGLang's gRPC API (an int32); use the HTTP API for this engine`);
      }
      msg.disaggregated_params = { bootstrap_host: req.bootstrap.host, bootstrap_port: req.bootstrap.port, bootstrap_room: Number(room) };
    }
    return msg;
  }

  async *generate(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateChunk> {
    if (signal?.aborted) return;
    const msg = await this.requestMessage(req);
    if (signal?.aborted) return;
    const m = this.methods.Generate;
    const stream = new ServerStream(this.client.getChannel(), m.path, m.serialize(msg), m.deserialize as (b: Buffer) => GenerateResponseMsg);
    const onAbort = () => stream.cancel();
    signal?.addEventListener('abort', onAbort, { once: true });
    this.inflight.add(stream);
    let finished = false;
    try {
      while (!finished) {
        const batch = await stream.next();
        if (!batch) break;
        // What arrived while the caller was busy goes out as one chunk.
        let ids: number[] | null = null;
        let cached = 0;
        for (const res of batch) {
          const c = res.chunk;
          if (c) {
            ids = ids ? ids.concat(c.token_ids) : c.token_ids;
            cached = c.cached_tokens;
            continue;
          }
          const done = res.complete;
          if (!done) continue;
          finished = true;
          yield {
            tokenIds: ids ?? [],
            finishReason: finishReason(done),
            usage: { promptTokens: done.prompt_tokens, completionTokens: done.completion_tokens, cachedTokens: done.cached_tokens },
          };
          break;
        }
        if (!finished && ids && ids.length > 0) yield { tokenIds: ids, cachedTokens: cached };
      }
    } catch (err) {
      if (signal?.aborted) return;
      throw this.callError(err as grpc.ServiceError);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.inflight.delete(stream);
      // Aborted, or the caller stopped reading (a stop string matched).
      if (!finished) {
        stream.cancel();
        void this.abort(req.requestId).catch(() => undefined);
      }
    }
    if (!finished) throw new KvgateError('engine_unavailable', `engine ${this.url} ended the stream before the request finished`);
  }

  private callError(err: grpc.ServiceError): KvgateError {
    const what = `engine ${this.url} returned ${grpc.status[err.code] ?? err.code}: ${err.details || err.message}`;
    switch (err.code) {
      case grpc.status.INVALID_ARGUMENT:
        return new KvgateError('invalid_request', what);
      case grpc.status.DEADLINE_EXCEEDED:
        return new KvgateError('engine_timeout', what);
      case grpc.status.UNAVAILABLE:
        return new KvgateError('engine_unavailable', what);
      default:
        return new KvgateError('engine_error', what);
    }
  }

  private unary<Res>(m: Method, request: object): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        m.path,
        m.serialize,
        m.deserialize as (b: Buffer) => Res,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + this.controlTimeoutMs },
        (err, res) => (err ? reject(this.callError(err)) : resolve(res!)),
      );
    });
  }

  // ---- the control RPCs ----

  healthCheck(): Promise<HealthCheckResponseMsg> {
    return this.unary(this.methods.HealthCheck, {});
  }

  abort(requestId: string): Promise<AbortResponseMsg> {
    return this.unary(this.methods.Abort, { request_id: requestId });
  }

  modelInfo(): Promise<GetModelInfoResponseMsg> {
    return this.unary(this.methods.GetModelInfo, {});
  }

  serverInfo(): Promise<GetServerInfoResponseMsg> {
    return this.unary(this.methods.GetServerInfo, {});
  }

  loads(include: string[] = [], dpRank?: number): Promise<GetLoadsResponseMsg> {
    return this.unary(this.methods.GetLoads, dpRank === undefined ? { include } : { include, dp_rank: dpRank });
  }

  flushCache(timeoutS = 0): Promise<FlushCacheResponseMsg> {
    return this.unary(this.methods.FlushCache, { timeout_s: timeoutS });
  }

  async healthy(): Promise<boolean> {
    try {
      return (await this.healthCheck()).healthy;
    } catch {
      return false;
    }
  }

  // The HTTP API's answers, from the RPCs (see the top of this file); 404 for other paths.
  async getJson(path: string): Promise<{ status: number; body: unknown }> {
    const ok = (body: unknown) => ({ status: 200, body });
    const [route, query] = path.split('?', 2) as [string, string | undefined];
    switch (route) {
      case '/health': {
        const h = await this.healthCheck();
        return { status: h.healthy ? 200 : 503, body: h.message };
      }
      case '/server_info': {
        const s = await this.serverInfo();
        const body: Record<string, unknown> = { ...fromStruct(s.server_args), ...fromStruct(s.scheduler_info), version: s.sglang_version };
        if (s.max_total_num_tokens > 0) body['max_total_num_tokens'] = s.max_total_num_tokens;
        return ok(body);
      }
      case '/model_info':
        return ok(plainObject(await this.modelInfo()));
      case '/v1/models': {
        const info = await this.modelInfo();
        return ok({ object: 'list', data: [{ id: info.served_model_name, object: 'model', max_model_len: info.max_context_length }] });
      }
      case '/v1/loads': {
        const q = new URLSearchParams(query ?? '');
        const rank = q.get('dp_rank');
        const l = await this.loads(q.get('include')?.split(',') ?? [], rank === null ? undefined : Number(rank));
        return ok({ timestamp: l.timestamp, version: l.version, loads: l.loads.map((x) => plainObject(x)) });
      }
      default:
        return { status: 404, body: { detail: 'Not Found' } };
    }
  }

  modelCard(): Promise<ModelCard> {
    return readModelCard((path) => this.getJson(path), { advertiseHost: new URL(`http://${this.target}`).hostname, migrationLimit: 0, engineUrl: this.url });
  }

  async close(): Promise<void> {
    for (const stream of this.inflight) stream.cancel();
    this.inflight.clear();
    this.client.close();
  }
}
