// The mocker's SGLang gRPC API (`--grpc-mode`): service SglangScheduler on --port instead of
// HTTP, as `sglang.launch_server --grpc-mode` serves it (schema/grpc/sglang_scheduler.proto).
// Same engine core as the HTTP server; the semantics are those of SGLang's servicer
// (smg-grpc-servicer, read for facts):
//  - Generate: the request's SamplingParams arrive with proto3 zeros where a sender left a
//    field unset; top_p 0, top_k 0 and repetition_penalty 0 mean the neutral value, an unset
//    max_new_tokens means no limit. Streaming, each output is a GenerateStreamChunk of the
//    ids new since the last one (totals for the counts); the last output is that chunk then a
//    GenerateComplete built from the same output (its output_ids repeat the chunk's). Not
//    streaming: one GenerateComplete with every id.
//  - A request that ends in an abort (the Abort RPC, a scheduler rejection) ends the call
//    with a gRPC status, never a GenerateComplete: the abort's HTTP status mapped to a gRPC
//    code (400 INVALID_ARGUMENT, 503 UNAVAILABLE, ...; INTERNAL otherwise).
//  - A call the client cancels aborts its request (the slot and its KV pages are freed).

import * as grpc from '@grpc/grpc-js';
import {
  sglangSchema,
  toStruct,
  type AbortRequestMsg,
  type FlushCacheRequestMsg,
  type GenerateRequestMsg,
  type GenerateResponseMsg,
  type GetLoadsRequestMsg,
  type GetLoadsResponseMsg,
  type GetModelInfoResponseMsg,
  type GetServerInfoResponseMsg,
  type SchedulerLoadMsg,
} from '../engine/sglang_grpc_schema.js';
import type { MockEngine } from './engine.js';
import { engineModelInfo, engineServerInfo, parseLoadSections, rankLoad, SCHEDULER_INFO_KEYS } from './engine_info.js';
import type { KvEventPorts } from './kv_events.js';
import { admit, emptyGenerateBody, maxReqInputLen, RequestError, type GenerateBody } from './protocol.js';
import { abortReason, type EngineRequest, type OutputSink } from './request.js';
import { submitGenerate } from './submit.js';
import { byteTokenize } from './tokens.js';
import { urlHost } from '../net/url_host.js';

const HEALTH_CHECK_TIMEOUT_MS = 20_000; // SGLANG_HEALTH_CHECK_TIMEOUT

// HTTP status of an abort -> gRPC code (SGLang's servicer's table).
const CODE_OF_STATUS: Record<number, grpc.status> = {
  400: grpc.status.INVALID_ARGUMENT,
  404: grpc.status.NOT_FOUND,
  408: grpc.status.DEADLINE_EXCEEDED,
  429: grpc.status.RESOURCE_EXHAUSTED,
  503: grpc.status.UNAVAILABLE,
  504: grpc.status.DEADLINE_EXCEEDED,
};

function failure(code: grpc.status, details: string): Partial<grpc.StatusObject> {
  return { code, details };
}

type GenerateCall = grpc.ServerWritableStream<GenerateRequestMsg, GenerateResponseMsg>;

// Writes one request's outputs on its call.
class GrpcSink implements OutputSink {
  constructor(private readonly call: GenerateCall) {}

  output(req: EngineRequest, finished: boolean): void {
    const call = this.call;
    if (call.cancelled || call.writableEnded) return;
    const fr = finished ? req.finishReason : null;
    if (fr?.type === 'abort') {
      call.emit('error', failure((fr.status_code !== null && CODE_OF_STATUS[fr.status_code]) || grpc.status.INTERNAL, fr.message || 'Request aborted'));
      return;
    }
    const fresh = req.outputIds.slice(req.sentIds);
    req.sentIds = req.outputIds.length;
    const counts = { prompt_tokens: req.isl, completion_tokens: req.outputIds.length, cached_tokens: req.cachedTokens };
    if (req.stream) call.write({ request_id: req.rid, chunk: { token_ids: fresh, ...counts } });
    if (!fr) return;
    call.write({
      request_id: req.rid,
      complete: {
        output_ids: req.stream ? fresh : req.outputIds,
        finish_reason: fr.type,
        ...counts,
        ...(fr.type === 'stop' ? (typeof fr.matched === 'number' ? { matched_token_id: fr.matched } : { matched_stop_str: fr.matched }) : {}),
      },
    });
    call.end();
  }
}

// The GenerateRequest as the HTTP layer's parsed /generate body, with SGLang's servicer's
// reading of proto3 zeros.
function generateBody(m: GenerateRequestMsg): GenerateBody {
  const body = emptyGenerateBody();
  const s = m.sampling_params;
  body.rid = m.request_id || null;
  body.inputIds = m.tokenized ? [...m.tokenized.input_ids] : null;
  body.stream = m.stream;
  body.returnLogprob = m.return_logprob === true;
  body.routedDpRank = m.data_parallel_rank ?? null;
  const dp = m.disaggregated_params;
  if (dp) {
    body.bootstrapHost = dp.bootstrap_host || null;
    body.bootstrapPort = dp.bootstrap_port || null;
    body.bootstrapRoom = BigInt(dp.bootstrap_room);
  }
  if (s) {
    const p = body.sampling;
    p.temperature = s.temperature;
    p.top_p = s.top_p !== 0 ? s.top_p : 1;
    p.top_k = s.top_k !== 0 ? s.top_k : -1;
    p.min_p = s.min_p;
    p.frequency_penalty = s.frequency_penalty;
    p.presence_penalty = s.presence_penalty;
    p.repetition_penalty = s.repetition_penalty !== 0 ? s.repetition_penalty : 1;
    p.max_new_tokens = s.max_new_tokens ?? null;
    p.stop = s.stop && s.stop.length > 0 ? [...s.stop] : null;
    p.stop_token_ids = s.stop_token_ids && s.stop_token_ids.length > 0 ? [...s.stop_token_ids] : null;
    p.skip_special_tokens = s.skip_special_tokens;
    p.constrained = !!(s as { constraint?: string }).constraint;
    p.n = s.n;
    p.min_new_tokens = s.min_new_tokens;
    p.ignore_eos = s.ignore_eos;
    p.no_stop_trim = s.no_stop_trim;
    p.stream_interval = s.stream_interval ?? null;
    p.logit_bias = { ...s.logit_bias };
  }
  return body;
}

export interface GrpcServer {
  port: number;
  close(): Promise<void>;
}

export async function startGrpcServer(engine: MockEngine, kvPorts: KvEventPorts | null, bootstrapPort: () => number | null): Promise<GrpcServer> {
  const o = engine.opts;
  // SGLang's servicer's channel options: large messages, and keepalive pings every 10 s+ allowed.
  const server = new grpc.Server({
    'grpc.max_receive_message_length': 256 << 20,
    'grpc.max_send_message_length': 256 << 20,
    'grpc.http2.min_ping_interval_without_data_ms': 10_000,
    'grpc.keepalive_permit_without_calls': 1,
  });

  const generate = (call: GenerateCall) => {
    if (engine.status !== 'up') return call.emit('error', failure(grpc.status.UNAVAILABLE, 'The server is not ready.'));
    const m = call.request;
    if (!m.tokenized) return call.emit('error', failure(grpc.status.INVALID_ARGUMENT, 'Tokenized input must be provided'));
    // Logprobs are served on the HTTP API only (issue 13 needed them there, for PD routers).
    if (m.return_logprob) return call.emit('error', failure(grpc.status.INVALID_ARGUMENT, "The kvgate mocker's gRPC mode does not return log probabilities (return_logprob); use its HTTP API."));
    let req: EngineRequest | null;
    try {
      const body = generateBody(m);
      req = submitGenerate(engine, body, admit(body, o, byteTokenize), new GrpcSink(call));
    } catch (err) {
      if (err instanceof RequestError) return call.emit('error', failure(grpc.status.INVALID_ARGUMENT, err.message));
      throw err;
    }
    if (!req) return;
    const accepted = req;
    call.on('cancelled', () => engine.abort(accepted, abortReason('Request is cancelled by the client. Abort request.')));
  };

  const unary =
    <Req, Res>(handler: (req: Req) => Promise<Res> | Res) =>
    (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => {
      Promise.resolve()
        .then(() => handler(call.request))
        .then(
          (res) => callback(null, res),
          (err: Error & { code?: grpc.status }) => callback({ code: err.code ?? grpc.status.INTERNAL, details: err.message }),
        );
    };
  const invalid = (message: string) => Object.assign(new Error(message), { code: grpc.status.INVALID_ARGUMENT });

  const modelInfo = (): GetModelInfoResponseMsg => {
    const info = engineModelInfo(o);
    return {
      model_path: info.model_path,
      tokenizer_path: info.tokenizer_path,
      is_generation: true,
      preferred_sampling_params: '',
      weight_version: info.weight_version,
      served_model_name: info.served_model_name,
      max_context_length: o.contextLength,
      vocab_size: o.vocabSize,
      supports_vision: false,
      model_type: info.model_type,
      eos_token_ids: [o.eosTokenId],
      pad_token_id: 0,
      bos_token_id: 0,
      max_req_input_len: maxReqInputLen(o),
      architectures: info.architectures,
      default_sampling_params_json: '',
    };
  };

  const serverInfo = (): GetServerInfoResponseMsg => {
    const all: Record<string, unknown> = engineServerInfo(engine, kvPorts, bootstrapPort());
    // gRPC mode has no internal_states (SGLang's servicer says so).
    delete all['internal_states'];
    const scheduler: Record<string, unknown> = {};
    for (const k of SCHEDULER_INFO_KEYS) {
      scheduler[k] = all[k];
      delete all[k];
    }
    const now = Date.now();
    return {
      server_args: toStruct(all),
      scheduler_info: toStruct(scheduler),
      active_requests: engine.inFlight,
      is_paused: false,
      last_receive_timestamp: now / 1000,
      uptime_seconds: (now - engine.startedAt) / 1000,
      sglang_version: 'kvgate-mocker',
      server_type: 'grpc',
      start_time: { seconds: Math.floor(engine.startedAt / 1000), nanos: (engine.startedAt % 1000) * 1e6 },
      max_total_num_tokens: o.maxTotalTokens,
    };
  };

  const loads = (r: GetLoadsRequestMsg): GetLoadsResponseMsg => {
    let include: Set<string> | null;
    try {
      include = parseLoadSections(r.include);
    } catch (err) {
      throw invalid((err as Error).message);
    }
    const dp = r.dp_rank ?? null;
    if (dp !== null && (dp < 0 || dp >= o.dpSize)) throw invalid(`dp_rank must be in [0, ${o.dpSize}), got ${dp}`);
    const ranks = dp === null ? engine.ranks.map((_, i) => i) : [dp];
    const list = ranks.map((i) => {
      const l = rankLoad(engine, i, include) as Record<string, number> & Pick<SchedulerLoadMsg, 'memory' | 'disaggregation' | 'queues'>;
      return { ...l, num_total_reqs: l['num_running_reqs']! + l['num_waiting_reqs']! } as unknown as SchedulerLoadMsg;
    });
    const sum = (f: (l: SchedulerLoadMsg) => number) => list.reduce((a, l) => a + f(l), 0);
    const avg = (f: (l: SchedulerLoadMsg) => number) => (list.length ? sum(f) / list.length : 0);
    return {
      timestamp: new Date().toISOString(),
      version: 'kvgate-mocker',
      dp_rank_count: list.length,
      loads: list,
      aggregate: {
        total_running_reqs: sum((l) => l.num_running_reqs),
        total_waiting_reqs: sum((l) => l.num_waiting_reqs),
        total_reqs: sum((l) => l.num_total_reqs),
        avg_token_usage: avg((l) => l.token_usage),
        avg_throughput: avg((l) => l.gen_throughput),
        avg_utilization: avg((l) => l.utilization),
      },
    };
  };

  server.addService(sglangSchema().definition, {
    Generate: generate,
    HealthCheck: unary(async () => {
      if (engine.status === 'stopping') return { healthy: false, message: 'Server is shutting down' };
      if (engine.status !== 'up') return { healthy: false, message: 'Server is starting' };
      const ok = await engine.healthProbe(HEALTH_CHECK_TIMEOUT_MS);
      return ok ? { healthy: true, message: 'Health check passed' } : { healthy: false, message: `Health check timeout after ${HEALTH_CHECK_TIMEOUT_MS / 1000}s` };
    }),
    // SGLang's servicer reports success once the abort is sent, known rid or not.
    Abort: unary((r: AbortRequestMsg) => {
      engine.abortByRid(r.request_id, false);
      return { success: true, message: `Request ${r.request_id} aborted` };
    }),
    GetModelInfo: unary(modelInfo),
    GetServerInfo: unary(serverInfo),
    GetLoads: unary(loads),
    FlushCache: unary(async (r: FlushCacheRequestMsg) => {
      const ok = await engine.flushCache(Math.max(0, r.timeout_s) * 1000);
      return ok ? { success: true, message: 'Cache flushed successfully' } : { success: false, message: 'Cache not flushed: requests are running' };
    }),
  });

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${urlHost(o.host)}:${o.port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        // Calls still open after the engine drained are cut.
        server.tryShutdown(() => resolve());
        setTimeout(() => server.forceShutdown(), 1000).unref();
      }),
  };
}
