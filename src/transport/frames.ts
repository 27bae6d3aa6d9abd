// Encoding and decoding of the control/event-plane frames (schema/request_plane.fbs) to and from plain
// objects. Decoding copies everything out of the message buffer, so callers may keep the
// result after the buffer is gone (uWS neuters message buffers after the callback).
// Malformed bytes throw; callers treat that as a protocol error of the peer.

import * as flatbuffers from 'flatbuffers';
import { ERRORS, type ErrorCode } from '../errors.js';
import type { ModelCard, WorkerRole } from '../engine/model_card.js';
import * as w from './generated/request_plane_generated.js';

export const PROTOCOL_VERSION = 2;

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
  | { type: 'kv_resync'; dpRank: number }
  | { type: 'error'; code: ErrorCode; message: string }
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
  const engineUrl = str(card.engineUrl);
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
  C.addEngineUrl(builder, engineUrl);
  return C.endModelCard(builder);
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
    case 'kv_resync':
      return [w.Body.KvResync, w.KvResync.createKvResync(builder, frame.dpRank)];
    case 'error': {
      const code = str(frame.code);
      const message = str(frame.message);
      return [w.Body.Error, w.Error.createError(builder, code, message)];
    }
    case 'kv_batch': {
      // One copy of the batch's bytes (the generated createPayloadVector adds them one by one).
      const payload = builder.createByteVector(frame.payload);
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
    engineUrl: need(c.engineUrl(), 'engine_url'),
  };
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
    case w.Body.KvResync:
      return { type: 'kv_resync', dpRank: (f.body(new w.KvResync()) as w.KvResync).dpRank() };
    case w.Body.Error: {
      const e = f.body(new w.Error()) as w.Error;
      return { type: 'error', code: errorCode(e.code()), message: e.message() ?? '' };
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
