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
// Waiting for a shared prefill (kv routing): a first attempt whose prefill worker is still
// prefilling a prompt that shares most of this one waits, holding nothing, until that prefix is
// stored (or that request ends, the client leaves, or the wait runs out), then picks its pair,
// as kvgate serve's aggregated requests do (inflight_prefills.ts).
//
// A "local" request (conditional disaggregation chose it) is one plain request to the
// decode worker: no room, no bootstrap; that engine prefills the prompt itself.
//
// Retries: a request whose attempt fails before the caller got any token (the prefill
// engine died, the room timed out, an engine aborted it not for the request's fault) is
// run again on another pair with a fresh room, after the agg path's backoff and within its
// retry budget (RoutingPort.retry). The worker that failed was set aside by its pool's
// failed() (a room that timed out after the prefill's answer blames the decode; before it,
// neither); the new pair passes over both workers of the failed one while others are free,
// and there is no retry when only the same pair could take it. Once a token reached the
// caller the request fails as it is: a decode stream cannot move without its KV.

import { setTimeout as sleep } from 'node:timers/promises';
import type { EngineClient, GenerateChunk, GenerateRequest, PromptLogprob } from '../engine/client.js';
import { KvgateError } from '../errors.js';
import { RoomEvent, type Room, type RoomWatch } from './pd_rooms.js';
import { retryDelayMs, waitForBlocking, type PromptHold, type Route, type RoutingPort } from './routed_request.js';
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

// The legs of one attempt; `prefill` null: the decode worker prefills locally.
export interface PdPair<M> {
  prefill: PrefillLeg<M> | null;
  decode: PdLeg<M>;
}

export interface PdPort<M> {
  prefill: RoutingPort<M>;
  decode: RoutingPort<M>;
  rooms: RoomWatch;
  roomTimedOut(state: string): void;
  // The first attempt's pair after a wait, or null (with hold.blocking set: wait again).
  pick(tokens: Uint32Array, hold: PromptHold): PdPair<M> | null;
  // Why a request that found no pair fails.
  none(): unknown;
  // Another pair for a retry (its routes held), or null when none can take the prompt now;
  // the workers of `failed` are passed over while others are free.
  repick(tokens: Uint32Array, failed: PdPair<M>): PdPair<M> | null;
  retried(from: string, to: string, err: unknown): void;
}

// An engine's abort that is not the request's fault: another pair may serve it.
class LegAbort extends KvgateError {}

function abortError(leg: string, name: string, reason: { message: string | null; statusCode?: number | null }): KvgateError {
  const status = reason.statusCode ?? 0;
  const message = `the ${leg} engine (${name}) aborted the request${reason.message ? `: ${reason.message}` : ''}`;
  return status >= 400 && status < 500 ? new KvgateError('invalid_request', message) : new LegAbort('engine_error', message);
}

// Failures another pair may not repeat: the engine was unreachable, timed out, or aborted.
function retryable(err: unknown): boolean {
  return err instanceof LegAbort || (err instanceof KvgateError && (err.code === 'engine_unavailable' || err.code === 'engine_timeout'));
}

export class PdRequest<M> implements Dispatch {
  readonly engine: EngineClient;
  private done = false;
  private decodeHeld = false;
  // The prefill route is held until its leg ends (or until finish, if it never started).
  private prefillHeld = false;
  private prefill: PrefillLeg<M> | null = null;
  // null until a pair is picked (the request waits for a shared prefill first).
  private decode: PdLeg<M> | null = null;
  retries = 0;

  // `pair` null: hold.blocking is set, and the first attempt waits for it.
  constructor(
    private readonly port: PdPort<M>,
    pair: PdPair<M> | null,
    private readonly hold: PromptHold | null = null,
  ) {
    if (pair) this.take(pair);
    this.engine = { generate: (req, signal) => this.generate(req, signal), close: async () => {} };
  }

  private take(pair: PdPair<M>): void {
    this.prefill = pair.prefill;
    this.decode = pair.decode;
    this.decodeHeld = true;
    this.prefillHeld = pair.prefill !== null;
  }

  get worker(): string {
    if (!this.decode) return 'none';
    return this.prefill ? `${this.prefill.name} > ${this.decode.name}` : this.decode.name;
  }

  firstToken(): void {
    if (this.decodeHeld) this.port.decode.markPrefillDone(this.decode!.rid);
  }

  finish(_outcome: DispatchOutcome): void {
    if (this.done) return;
    this.done = true;
    if (this.decodeHeld) this.port.decode.free(this.decode!.rid);
    this.decodeHeld = false;
    if (this.prefillHeld) this.releasePrefill();
  }

  private releasePrefill(): void {
    this.prefillHeld = false;
    this.port.prefill.free(this.prefill!.rid);
  }

  // The first pair, once the shared prefill this request waits for is stored.
  private async waitForPair(signal?: AbortSignal): Promise<void> {
    const hold = this.hold!;
    while (hold.blocking) {
      await waitForBlocking(this.port.prefill, hold, signal, () => this.done);
      const pair = this.port.pick(hold.tokens, hold);
      if (pair) return this.take(pair);
    }
    throw this.port.none();
  }

  // Attempts until one streams its first token; see the header for when one is retried.
  private async *generate(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateChunk> {
    if (!this.decode) await this.waitForPair(signal);
    for (;;) {
      let sent = false;
      try {
        const attempt = this.prefill ? this.disaggregated(this.prefill, req, signal) : this.local(req, signal);
        for await (const chunk of attempt) {
          if (chunk.tokenIds.length > 0 || chunk.finishReason) sent = true;
          yield chunk;
        }
        return;
      } catch (err) {
        if (sent || signal?.aborted || this.done || !retryable(err)) throw err;
        const policy = this.port.decode.retry;
        if (this.retries >= policy.maxRetries) throw err;
        try {
          await sleep(retryDelayMs(policy, this.retries++), undefined, { signal });
        } catch {
          throw err; // the client left
        }
        if (this.done) throw err;
        const next = this.port.repick(Uint32Array.from(req.tokenIds), { prefill: this.prefill, decode: this.decode! });
        if (!next) throw new KvgateError((err as KvgateError).code, `${(err as Error).message}; no other prefill/decode pair could take the request`);
        const from = this.worker;
        // The failed attempt's decode route ends here (its prefill leg freed its own).
        if (this.decodeHeld) this.port.decode.free(this.decode!.rid);
        if (this.prefillHeld) this.releasePrefill();
        this.take(next);
        this.port.retried(from, this.worker, err);
      }
    }
  }

  private async *local(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateChunk> {
    const d = this.decode!;
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
    const d = this.decode!;
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
    // The prompt's logprobs (echo): a decode engine has none, the prefill leg's answer has them.
    const wantPrompt = req.logprobs?.prompt === true;
    let prefillPrompt: PromptLogprob[] | undefined;
    let promptSent = false;
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
      const err = new KvgateError('engine_timeout', `disaggregated request ${req.requestId} timed out in state ${state} (room ${room!.id}, prefill ${p.name}, decode ${d.name}); both legs were aborted`);
      // After the prefill's answer the decode worker is late, and set aside. Before it either
      // may be (a prefill waits for its decode's bootstrap): neither is, the retry passes both over.
      if (state !== 'dispatched') this.port.decode.failed(d.member, err);
      fail(err);
    });
    const roomId = room.id;
    // gRPC cannot name the prefill rank to decode: the prefill follows the room instead.
    const prefillRank = grpc ? Number(roomId % BigInt(Math.max(1, p.dpSize))) : p.rank;
    const bootstrap = { host: p.bootstrapHost, port: p.bootstrapPort, room: roomId };

    // The prefill leg's output is drained: it is asked for logprobs only for the prompt's. A first
    // attempt's prompt is recorded as prefilling on its worker until its blocks are stored.
    const sent = this.port.prefill.sending(p, this.retries === 0 ? this.hold : null);
    const prefillLeg = (async () => {
      try {
        let finished = false;
        for await (const chunk of p.client.generate({ ...req, logprobs: wantPrompt ? req.logprobs : undefined, dpRank: prefillRank, bootstrap }, prefillCtl.signal)) {
          if (chunk.promptLogprobs) prefillPrompt ??= chunk.promptLogprobs;
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
        sent();
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
        // The prompt was computed (and looked up in the cache) by the prefill engine. The usage
        // comes with the finish: if the prefill's answer (which carries its cached count) has
        // not arrived yet, give it a moment, as the two legs race.
        if (reason && prefillCached === undefined && !prefillEnded) await Promise.race([prefillLeg, sleep(PREFILL_SETTLE_MS, undefined, { ref: false })]);
        let out = chunk;
        if (wantPrompt && !promptSent) {
          promptSent = true;
          // The first decode chunk carries the prompt's logprobs, merged in front as SGLang's PD
          // router does; the prefill's answer may still be on its way (the legs race).
          if (prefillPrompt === undefined && !prefillEnded) await Promise.race([prefillLeg, sleep(PREFILL_SETTLE_MS, undefined, { ref: false })]);
          if (failure !== null) throw failure;
          if (prefillPrompt === undefined) throw new KvgateError('engine_error', `the prefill engine (${p.name}) sent no prompt logprobs for ${req.requestId}`);
          out = { ...out, promptLogprobs: prefillPrompt };
        }
        if (prefillCached !== undefined) {
          out = { ...out, cachedTokens: prefillCached };
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
