// Encoding and decoding of request-plane frames (schema/request_plane.fbs) to and from plain
// objects. Decoding copies everything out of the message buffer, so callers may keep the
// result after the buffer is gone (uWS neuters message buffers after the callback).
// Malformed bytes throw; callers treat that as a protocol error of the peer.

import * as flatbuffers from 'flatbuffers';
import { ERRORS, type ErrorCode } from '../errors.js';
import type { FinishReason, GenerateRequest, SamplingOptions, Usage } from '../engine/client.js';
import type { ModelCard, WorkerRole } from '../discovery/model_card.js';
import * as w from './generated/request_plane_generated.js';

export const PROTOCOL_VERSION = 1;

export interface RankLoad {
  dpRank: number;
  running: number;
  queued: number;
  kvUsedTokens: number;
  kvTotalTokens: number;
  kvUsedBlocks: number;
  kvTotalBlocks: number;
  // 0..1, as the engine reports it.
  tokenUsage: number;
}

export interface LoadReport {
  instanceId: bigint;
  timestampMs: number;
  ranks: RankLoad[];
}

export type KvResetReason = 'join' | 'engine_restart' | 'history_lost' | 'resync';

export type Frame =
  | { type: 'hello'; protocolVersion: number; instanceId: bigint; card: ModelCard }
  | { type: 'generate'; stream: number; window: number; request: GenerateRequest }
  | { type: 'abort'; stream: number }
  | { type: 'credit'; stream: number; chunks: number }
  | { type: 'kv_resync'; dpRank: number }
  | { type: 'tokens'; stream: number; tokenIds: number[]; cachedTokens?: number }
  | { type: 'final'; stream: number; tokenIds: number[]; finishReason: FinishReason; usage: Usage }
  | { type: 'error'; stream: number; code: ErrorCode; message: string }
  | {
      type: 'kv_batch';
      instanceId: bigint;
      dpRank: number;
      seq: bigint;
      engineSeq: bigint;
      snapshot: boolean;
      payload: Uint8Array;
    }
  | { type: 'kv_reset'; instanceId: bigint; dpRank: number; reason: KvResetReason }
  | { type: 'load'; report: LoadReport };

const ROLES: readonly WorkerRole[] = ['agg', 'prefill', 'decode'];
const ROLE_WIRE: Record<WorkerRole, w.Role> = { agg: w.Role.Agg, prefill: w.Role.Prefill, decode: w.Role.Decode };
const RESET_REASONS: readonly KvResetReason[] = ['join', 'engine_restart', 'history_lost', 'resync'];
const RESET_WIRE: Record<KvResetReason, w.KvResetReason> = {
  join: w.KvResetReason.Join,
  engine_restart: w.KvResetReason.EngineRestart,
  history_lost: w.KvResetReason.HistoryLost,
  resync: w.KvResetReason.Resync,
};

// One builder for all encodes (single-threaded); its bytes are copied out per frame.
const builder = new flatbuffers.Builder(1024);

const str = (s: string | null | undefined) => (s == null ? 0 : builder.createString(s));
const u64 = (n: number) => BigInt(n);

// flatc 2.0.8's TS adds optional scalars (`= null`) with a default of 0, so a 0 would be
// skipped and read back as null (dp rank 0, temperature 0): write set values unconditionally.
function addOptional<T>(value: T | null | undefined, add: (b: flatbuffers.Builder, v: T) => void): void {
  if (value === null || value === undefined) return;
  builder.forceDefaults(true);
  add(builder, value);
  builder.forceDefaults(false);
}

function encodeCard(card: ModelCard): flatbuffers.Offset {
  const C = w.ModelCard;
  const name = str(card.servedModelName);
  const modelPath = str(card.modelPath);
  const tokenizerPath = str(card.tokenizerPath);
  const bootstrapHost = str(card.bootstrapHost);
  const engine = str(card.engine);
  const engineVersion = str(card.engineVersion);
  C.startModelCard(builder);
  C.addServedModelName(builder, name);
  C.addModelPath(builder, modelPath);
  C.addTokenizerPath(builder, tokenizerPath);
  C.addContextLength(builder, card.contextLength);
  C.addPageSize(builder, card.pageSize);
  C.addMaxTotalNumTokens(builder, u64(card.maxTotalNumTokens));
  C.addTotalKvBlocks(builder, u64(card.totalKvBlocks));
  addOptional(card.maxRunningRequests, C.addMaxRunningRequests);
  addOptional(card.dpSize, C.addDpSize);
  addOptional(ROLE_WIRE[card.role], C.addRole);
  if (bootstrapHost) C.addBootstrapHost(builder, bootstrapHost);
  addOptional(card.bootstrapPort, C.addBootstrapPort);
  C.addMigrationLimit(builder, card.migrationLimit);
  C.addKvEvents(builder, card.kvEvents);
  C.addEngine(builder, engine);
  if (engineVersion) C.addEngineVersion(builder, engineVersion);
  return C.endModelCard(builder);
}

function encodeSampling(s: SamplingOptions): flatbuffers.Offset {
  const S = w.Sampling;
  const stop = s.stopTokenIds?.length ? S.createStopTokenIdsVector(builder, s.stopTokenIds) : 0;
  S.startSampling(builder);
  S.addMaxNewTokens(builder, s.maxNewTokens);
  addOptional(s.temperature, S.addTemperature);
  addOptional(s.topP, S.addTopP);
  addOptional(s.topK, S.addTopK);
  addOptional(s.minP, S.addMinP);
  addOptional(s.seed === undefined ? null : BigInt(s.seed), S.addSeed);
  addOptional(s.frequencyPenalty, S.addFrequencyPenalty);
  addOptional(s.presencePenalty, S.addPresencePenalty);
  addOptional(s.repetitionPenalty, S.addRepetitionPenalty);
  addOptional(s.minNewTokens, S.addMinNewTokens);
  S.addIgnoreEos(builder, s.ignoreEos ?? false);
  if (stop) S.addStopTokenIds(builder, stop);
  return S.endSampling(builder);
}

function encodeFinish(f: FinishReason): flatbuffers.Offset {
  const matchedText = f.type === 'stop' && typeof f.matched === 'string' ? str(f.matched) : 0;
  const message = f.type === 'abort' ? str(f.message) : 0;
  w.FinishReason.startFinishReason(builder);
  if (f.type === 'stop') {
    w.FinishReason.addKind(builder, w.FinishKind.Stop);
    if (typeof f.matched === 'number') addOptional(f.matched, w.FinishReason.addMatchedToken);
    if (matchedText) w.FinishReason.addMatchedText(builder, matchedText);
  } else if (f.type === 'length') {
    w.FinishReason.addKind(builder, w.FinishKind.Length);
    w.FinishReason.addLength(builder, f.length);
  } else {
    w.FinishReason.addKind(builder, w.FinishKind.Abort);
    if (message) w.FinishReason.addMessage(builder, message);
    addOptional(f.statusCode, w.FinishReason.addStatusCode);
  }
  return w.FinishReason.endFinishReason(builder);
}

function encodeBody(frame: Frame): [w.Body, flatbuffers.Offset] {
  switch (frame.type) {
    case 'hello': {
      const card = encodeCard(frame.card);
      w.Hello.startHello(builder);
      w.Hello.addProtocolVersion(builder, frame.protocolVersion);
      w.Hello.addInstanceId(builder, frame.instanceId);
      w.Hello.addCard(builder, card);
      return [w.Body.Hello, w.Hello.endHello(builder)];
    }
    case 'generate': {
      const r = frame.request;
      const rid = str(r.requestId);
      const tokens = w.GenerateRequest.createTokenIdsVector(builder, r.tokenIds as number[]);
      const sampling = encodeSampling(r.sampling);
      const boot = r.bootstrap ? w.Bootstrap.createBootstrap(builder, str(r.bootstrap.host), r.bootstrap.port, r.bootstrap.room) : 0;
      w.GenerateRequest.startGenerateRequest(builder);
      w.GenerateRequest.addStream(builder, frame.stream);
      w.GenerateRequest.addRequestId(builder, rid);
      w.GenerateRequest.addTokenIds(builder, tokens);
      w.GenerateRequest.addSampling(builder, sampling);
      if (boot) w.GenerateRequest.addBootstrap(builder, boot);
      addOptional(r.dpRank, w.GenerateRequest.addDpRank);
      w.GenerateRequest.addWindow(builder, frame.window);
      return [w.Body.GenerateRequest, w.GenerateRequest.endGenerateRequest(builder)];
    }
    case 'abort':
      return [w.Body.Abort, w.Abort.createAbort(builder, frame.stream)];
    case 'credit':
      return [w.Body.Credit, w.Credit.createCredit(builder, frame.stream, frame.chunks)];
    case 'kv_resync':
      return [w.Body.KvResync, w.KvResync.createKvResync(builder, frame.dpRank)];
    case 'tokens': {
      const tokens = w.TokenChunk.createTokenIdsVector(builder, frame.tokenIds);
      w.TokenChunk.startTokenChunk(builder);
      w.TokenChunk.addStream(builder, frame.stream);
      w.TokenChunk.addTokenIds(builder, tokens);
      addOptional(frame.cachedTokens, w.TokenChunk.addCachedTokens);
      return [w.Body.TokenChunk, w.TokenChunk.endTokenChunk(builder)];
    }
    case 'final': {
      const tokens = w.Final.createTokenIdsVector(builder, frame.tokenIds);
      const finish = encodeFinish(frame.finishReason);
      const u = frame.usage;
      const usage = w.Usage.createUsage(builder, u.promptTokens, u.completionTokens, u.cachedTokens);
      w.Final.startFinal(builder);
      w.Final.addStream(builder, frame.stream);
      w.Final.addTokenIds(builder, tokens);
      w.Final.addFinish(builder, finish);
      w.Final.addUsage(builder, usage);
      return [w.Body.Final, w.Final.endFinal(builder)];
    }
    case 'error': {
      const code = str(frame.code);
      const message = str(frame.message);
      return [w.Body.Error, w.Error.createError(builder, frame.stream, code, message)];
    }
    case 'kv_batch': {
      const payload = w.KvEventBatch.createPayloadVector(builder, frame.payload);
      return [
        w.Body.KvEventBatch,
        w.KvEventBatch.createKvEventBatch(builder, frame.instanceId, frame.dpRank, frame.seq, frame.engineSeq, frame.snapshot, payload),
      ];
    }
    case 'kv_reset':
      return [w.Body.KvReset, w.KvReset.createKvReset(builder, frame.instanceId, frame.dpRank, RESET_WIRE[frame.reason])];
    case 'load': {
      const ranks = frame.report.ranks.map((r) =>
        w.RankLoad.createRankLoad(
          builder,
          r.dpRank,
          r.running,
          r.queued,
          u64(r.kvUsedTokens),
          u64(r.kvTotalTokens),
          u64(r.kvUsedBlocks),
          u64(r.kvTotalBlocks),
          r.tokenUsage,
        ),
      );
      const vec = w.LoadReport.createRanksVector(builder, ranks);
      return [
        w.Body.LoadReport,
        w.LoadReport.createLoadReport(builder, frame.report.instanceId, u64(frame.report.timestampMs), vec),
      ];
    }
  }
}

export function encodeFrame(frame: Frame): Uint8Array {
  builder.clear();
  const [type, body] = encodeBody(frame);
  const root = w.Frame.createFrame(builder, type, body);
  w.Frame.finishFrameBuffer(builder, root);
  return builder.asUint8Array().slice();
}

// ---- decoding ----

const need = <T>(v: T | null | undefined, what: string): T => {
  if (v == null) throw new Error(`frame is missing ${what}`);
  return v;
};

function u32s(len: number, at: (i: number) => number | null): number[] {
  const out = new Array<number>(len);
  for (let i = 0; i < len; i++) out[i] = at(i) ?? 0;
  return out;
}

const num = (v: bigint) => Number(v);

function decodeCard(c: w.ModelCard): ModelCard {
  const role = ROLES[c.role()];
  const engine = c.engine();
  if (!role) throw new Error(`unknown role ${c.role()}`);
  if (engine !== 'sglang' && engine !== 'mocker') throw new Error(`unknown engine '${engine}'`);
  return {
    servedModelName: need(c.servedModelName(), 'served_model_name'),
    modelPath: need(c.modelPath(), 'model_path'),
    tokenizerPath: need(c.tokenizerPath(), 'tokenizer_path'),
    contextLength: c.contextLength(),
    pageSize: c.pageSize(),
    maxTotalNumTokens: num(c.maxTotalNumTokens()),
    totalKvBlocks: num(c.totalKvBlocks()),
    maxRunningRequests: c.maxRunningRequests(),
    dpSize: c.dpSize(),
    role,
    bootstrapHost: c.bootstrapHost(),
    bootstrapPort: c.bootstrapPort(),
    migrationLimit: c.migrationLimit(),
    kvEvents: c.kvEvents(),
    engine,
    engineVersion: c.engineVersion(),
  };
}

function decodeSampling(s: w.Sampling): SamplingOptions {
  const out: SamplingOptions = { maxNewTokens: s.maxNewTokens() };
  const opt = <K extends keyof SamplingOptions>(k: K, v: SamplingOptions[K] | null) => {
    if (v !== null) out[k] = v;
  };
  opt('temperature', s.temperature());
  opt('topP', s.topP());
  opt('topK', s.topK());
  opt('minP', s.minP());
  const seed = s.seed();
  if (seed !== null) out.seed = Number(seed);
  opt('frequencyPenalty', s.frequencyPenalty());
  opt('presencePenalty', s.presencePenalty());
  opt('repetitionPenalty', s.repetitionPenalty());
  opt('minNewTokens', s.minNewTokens());
  if (s.ignoreEos()) out.ignoreEos = true;
  if (s.stopTokenIdsLength() > 0) out.stopTokenIds = u32s(s.stopTokenIdsLength(), (i) => s.stopTokenIds(i));
  return out;
}

function decodeFinish(f: w.FinishReason): FinishReason {
  switch (f.kind()) {
    case w.FinishKind.Stop:
      return { type: 'stop', matched: f.matchedToken() ?? f.matchedText() ?? null };
    case w.FinishKind.Length:
      return { type: 'length', length: f.length() };
    case w.FinishKind.Abort:
      return { type: 'abort', message: f.message(), statusCode: f.statusCode() };
    default:
      throw new Error(`unknown finish kind ${f.kind()}`);
  }
}

const errorCode = (code: string | null): ErrorCode =>
  code !== null && Object.hasOwn(ERRORS, code) ? (code as ErrorCode) : 'engine_error';

export function decodeFrame(bytes: Uint8Array): Frame {
  const bb = new flatbuffers.ByteBuffer(bytes);
  if (bytes.byteLength < 8 || !w.Frame.bufferHasIdentifier(bb)) throw new Error('not a kvgate request-plane frame');
  const f = w.Frame.getRootAsFrame(bb);
  const type = f.bodyType();
  switch (type) {
    case w.Body.Hello: {
      const h = f.body(new w.Hello()) as w.Hello;
      return {
        type: 'hello',
        protocolVersion: h.protocolVersion(),
        instanceId: h.instanceId(),
        card: decodeCard(need(h.card(), 'card')),
      };
    }
    case w.Body.GenerateRequest: {
      const g = f.body(new w.GenerateRequest()) as w.GenerateRequest;
      const request: GenerateRequest = {
        requestId: need(g.requestId(), 'request_id'),
        tokenIds: u32s(g.tokenIdsLength(), (i) => g.tokenIds(i)),
        sampling: decodeSampling(need(g.sampling(), 'sampling')),
      };
      const dpRank = g.dpRank();
      if (dpRank !== null) request.dpRank = dpRank;
      const b = g.bootstrap();
      if (b) request.bootstrap = { host: need(b.host(), 'bootstrap host'), port: b.port(), room: b.room() };
      return { type: 'generate', stream: g.stream(), window: g.window(), request };
    }
    case w.Body.Abort:
      return { type: 'abort', stream: (f.body(new w.Abort()) as w.Abort).stream() };
    case w.Body.Credit: {
      const c = f.body(new w.Credit()) as w.Credit;
      return { type: 'credit', stream: c.stream(), chunks: c.chunks() };
    }
    case w.Body.KvResync:
      return { type: 'kv_resync', dpRank: (f.body(new w.KvResync()) as w.KvResync).dpRank() };
    case w.Body.TokenChunk: {
      const t = f.body(new w.TokenChunk()) as w.TokenChunk;
      const cached = t.cachedTokens();
      const tokenIds = u32s(t.tokenIdsLength(), (i) => t.tokenIds(i));
      return cached === null ? { type: 'tokens', stream: t.stream(), tokenIds } : { type: 'tokens', stream: t.stream(), tokenIds, cachedTokens: cached };
    }
    case w.Body.Final: {
      const t = f.body(new w.Final()) as w.Final;
      const u = need(t.usage(), 'usage');
      return {
        type: 'final',
        stream: t.stream(),
        tokenIds: u32s(t.tokenIdsLength(), (i) => t.tokenIds(i)),
        finishReason: decodeFinish(need(t.finish(), 'finish')),
        usage: { promptTokens: u.promptTokens(), completionTokens: u.completionTokens(), cachedTokens: u.cachedTokens() },
      };
    }
    case w.Body.Error: {
      const e = f.body(new w.Error()) as w.Error;
      return { type: 'error', stream: e.stream(), code: errorCode(e.code()), message: e.message() ?? '' };
    }
    case w.Body.KvEventBatch: {
      const k = f.body(new w.KvEventBatch()) as w.KvEventBatch;
      return {
        type: 'kv_batch',
        instanceId: k.instanceId(),
        dpRank: k.dpRank(),
        seq: k.seq(),
        engineSeq: k.engineSeq(),
        snapshot: k.snapshot(),
        payload: need(k.payloadArray(), 'payload').slice(),
      };
    }
    case w.Body.KvReset: {
      const k = f.body(new w.KvReset()) as w.KvReset;
      const reason = RESET_REASONS[k.reason()];
      if (!reason) throw new Error(`unknown reset reason ${k.reason()}`);
      return { type: 'kv_reset', instanceId: k.instanceId(), dpRank: k.dpRank(), reason };
    }
    case w.Body.LoadReport: {
      const l = f.body(new w.LoadReport()) as w.LoadReport;
      const ranks: RankLoad[] = [];
      for (let i = 0; i < l.ranksLength(); i++) {
        const r = need(l.ranks(i), 'rank load');
        ranks.push({
          dpRank: r.dpRank(),
          running: r.running(),
          queued: r.queued(),
          kvUsedTokens: num(r.kvUsedTokens()),
          kvTotalTokens: num(r.kvTotalTokens()),
          kvUsedBlocks: num(r.kvUsedBlocks()),
          kvTotalBlocks: num(r.kvTotalBlocks()),
          tokenUsage: r.tokenUsage(),
        });
      }
      return { type: 'load', report: { instanceId: l.instanceId(), timestampMs: num(l.timestampMs()), ranks } };
    }
    default:
      throw new Error(`unknown frame body type ${type}`);
  }
}
