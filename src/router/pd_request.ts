// One disaggregated request, as the serving core sees it (a Dispatch). Its engine sends two
// legs at once (reference/sglang.md §3.4), both carrying the prefill worker's bootstrap host
// and port and one room drawn from the transfer coordinator (pd_rooms.ts):
// - the prefill leg computes the prompt and hands the KV to the decode engine; its stream
//   is drained (only its cached-token count is kept: the prefill's cache is the request's);
// - the decode leg's stream is what the caller reads, with usage counting the prompt once.
// Dp ranks: the prefill leg names the rank the router chose (routed_dp_rank) and the decode
// leg names it back (disagg_prefill_dp_rank). gRPC carries no such hint, so there the
// prefill's rank follows the room (room % dp_size), which is what the decode engine assumes.
//
// The room follows the legs: PrefillDone when the prefill leg answers, FirstDecodeToken on
// the decode leg's first token, Finished when the caller got its end (or stopped reading),
// Failed otherwise. When one leg fails, times out (the coordinator's deadlines), or the
// client leaves, both legs are aborted: aborting a leg's signal closes its stream and
// posts /abort_request with its rid (HTTP), or cancels the call and sends Abort (gRPC).
//
// A "local" request (conditional disaggregation chose it) is one plain request to the
// decode worker: no room, no bootstrap; that engine prefills the prompt itself.

import { setTimeout as sleep } from 'node:timers/promises';
import type { EngineClient, GenerateChunk, GenerateRequest } from '../engine/client.js';
import { KvgateError } from '../errors.js';
import { RoomEvent, type Room, type RoomWatch } from './pd_rooms.js';
import type { Route, RoutingPort } from './routed_request.js';
import type { Dispatch, DispatchOutcome } from './worker_set.js';

// How long a decode leg that aborted waits for a still-running prefill leg to report its
// own failure (a broken prefill connection does within milliseconds).
const PREFILL_SETTLE_MS = 500;

export interface PdLeg<M> extends Route<M> {
  id: number; // the worker id the coordinator keys pair statistics by
  dpSize: number;
  grpc: boolean; // the engine speaks SGLang's gRPC API (31-bit rooms, no rank hint)
}

export interface PrefillLeg<M> extends PdLeg<M> {
  bootstrapHost: string;
  bootstrapPort: number;
}

export interface PdPort<M> {
  prefill: RoutingPort<M>;
  decode: RoutingPort<M>;
  rooms: RoomWatch;
  roomTimedOut(state: string): void;
}

function abortError(leg: string, name: string, reason: { message: string | null; statusCode?: number | null }): KvgateError {
  const status = reason.statusCode ?? 0;
  const code = status >= 400 && status < 500 ? 'invalid_request' : 'engine_error';
  return new KvgateError(code, `the ${leg} engine (${name}) aborted the request${reason.message ? `: ${reason.message}` : ''}`);
}

export class PdRequest<M> implements Dispatch {
  readonly engine: EngineClient;
  private done = false;
  private decodeHeld = true;
  // The prefill route is held until its leg ends (or until finish, if it never started).
  private prefillHeld: boolean;

  // `prefill` null: the decode worker prefills locally.
  constructor(
    private readonly port: PdPort<M>,
    private readonly prefill: PrefillLeg<M> | null,
    private readonly decode: PdLeg<M>,
  ) {
    this.prefillHeld = prefill !== null;
    this.engine = { generate: (req, signal) => (prefill ? this.disaggregated(prefill, req, signal) : this.local(req, signal)), close: async () => {} };
  }

  get worker(): string {
    return this.prefill ? `${this.prefill.name} > ${this.decode.name}` : this.decode.name;
  }

  firstToken(): void {
    if (this.decodeHeld) this.port.decode.markPrefillDone(this.decode.rid);
  }

  finish(_outcome: DispatchOutcome): void {
    if (this.done) return;
    this.done = true;
    this.decodeHeld = false;
    this.port.decode.free(this.decode.rid);
    if (this.prefillHeld) this.releasePrefill();
  }

  private releasePrefill(): void {
    this.prefillHeld = false;
    this.port.prefill.free(this.prefill!.rid);
  }

  private async *local(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateChunk> {
    const d = this.decode;
    try {
      let ended = false;
      for await (const chunk of d.client.generate({ ...req, dpRank: d.rank }, signal)) {
        if (chunk.finishReason) ended = true;
        yield chunk;
      }
      if (ended) this.port.decode.succeeded(d.member);
    } catch (err) {
      if (!signal?.aborted) this.port.decode.failed(d.member, err);
      throw err;
    }
  }

  private async *disaggregated(p: PrefillLeg<M>, req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateChunk> {
    const d = this.decode;
    this.prefillHeld = false; // the prefill leg's own finally frees it from here on
    if (signal?.aborted) {
      this.port.prefill.free(p.rid);
      return;
    }
    const prefillCtl = new AbortController();
    const decodeCtl = new AbortController();
    // The first failure of either leg (or the room's timeout): what the caller gets.
    let failure: unknown = null;
    let prefillEnded = false;
    let prefillCached: number | undefined;
    let room: Room | null = null;
    const fail = (err: unknown) => {
      failure ??= err;
      room?.advance(RoomEvent.Failed);
      if (!prefillEnded) prefillCtl.abort();
      decodeCtl.abort();
    };
    const onClient = () => {
      prefillCtl.abort();
      decodeCtl.abort();
    };
    signal?.addEventListener('abort', onClient, { once: true });

    const grpc = p.grpc || d.grpc;
    room = this.port.rooms.open(grpc ? 31 : 63, p.id, d.id, req.tokenIds.length, (state) => {
      this.port.roomTimedOut(state);
      fail(new KvgateError('engine_timeout', `disaggregated request ${req.requestId} timed out in state ${state} (room ${room!.id}, prefill ${p.name}, decode ${d.name}); both legs were aborted`));
    });
    const roomId = room.id;
    // gRPC cannot name the prefill rank to decode: the prefill follows the room instead.
    const prefillRank = grpc ? Number(roomId % BigInt(Math.max(1, p.dpSize))) : p.rank;
    const bootstrap = { host: p.bootstrapHost, port: p.bootstrapPort, room: roomId };

    const prefillLeg = (async () => {
      try {
        let finished = false;
        for await (const chunk of p.client.generate({ ...req, dpRank: prefillRank, bootstrap }, prefillCtl.signal)) {
          if (chunk.cachedTokens !== undefined) prefillCached = chunk.cachedTokens;
          if (chunk.usage) prefillCached = chunk.usage.cachedTokens;
          const reason = chunk.finishReason;
          if (reason?.type === 'abort') throw abortError('prefill', p.name, reason);
          if (reason) finished = true;
        }
        if (prefillCtl.signal.aborted) return;
        if (!finished) throw new KvgateError('engine_error', `the prefill engine (${p.name}) ended its stream for ${req.requestId} without a finish reason`);
        prefillEnded = true;
        room.advance(RoomEvent.PrefillDone);
        this.port.prefill.succeeded(p.member);
      } catch (err) {
        if (prefillCtl.signal.aborted) return;
        prefillEnded = true;
        this.port.prefill.failed(p.member, err);
        fail(err);
      } finally {
        prefillEnded = true;
        this.port.prefill.free(p.rid);
      }
    })();

    // How the caller's reading ended: 'ok' once it got the finish (or stopped reading early
    // after tokens, a stop string), 'failed' on any error.
    let outcome: 'ok' | 'failed' = 'failed';
    let tokens = 0;
    try {
      const decodeReq = { ...req, dpRank: d.rank, bootstrap: grpc ? bootstrap : { ...bootstrap, prefillDpRank: prefillRank } };
      for await (const chunk of d.client.generate(decodeReq, decodeCtl.signal)) {
        const reason = chunk.finishReason;
        if (reason?.type === 'abort') {
          // The decode engine gives up when its prefill failed (a dead prefill engine fails
          // the handoff at once): let the prefill leg report its own failure first, so that
          // the worker that failed is the one set aside, and say why.
          if (failure === null && !prefillEnded) await Promise.race([prefillLeg, sleep(PREFILL_SETTLE_MS, undefined, { ref: false })]);
          throw failure ?? abortError('decode', d.name, reason);
        }
        if (tokens === 0 && chunk.tokenIds.length > 0) room.advance(RoomEvent.FirstDecodeToken);
        tokens += chunk.tokenIds.length;
        // The prompt was computed (and looked up in the cache) by the prefill engine.
        let out = chunk;
        if (prefillCached !== undefined) {
          out = { ...chunk, cachedTokens: prefillCached };
          if (chunk.usage) out.usage = { ...chunk.usage, cachedTokens: prefillCached };
        }
        if (reason) outcome = 'ok';
        yield out;
        if (reason) return;
      }
      if (failure !== null) throw failure;
      if (signal?.aborted) return;
      throw new KvgateError('engine_error', `the decode engine (${d.name}) ended its stream for ${req.requestId} without a finish reason`);
    } catch (err) {
      if (failure !== null && err !== failure && !signal?.aborted) throw failure;
      if (!signal?.aborted && failure === null && !(err instanceof KvgateError && err.code === 'invalid_request')) this.port.decode.failed(d.member, err);
      throw err;
    } finally {
      signal?.removeEventListener('abort', onClient);
      // Returned early without an error after tokens: the caller stopped reading (a stop string).
      if (outcome === 'failed' && failure === null && tokens > 0 && !signal?.aborted && !decodeCtl.signal.aborted) outcome = 'ok';
      if (outcome === 'ok') {
        room.advance(RoomEvent.Finished);
      } else {
        room.advance(RoomEvent.Failed);
        if (!prefillEnded) prefillCtl.abort();
      }
      // The prefill leg is drained in the background (it ends right after the handoff).
      void prefillLeg;
    }
  }
}
