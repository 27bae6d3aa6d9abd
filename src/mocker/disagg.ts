// Prefill/decode disaggregation between two mockers. The lookup is SGLang's: decode reads the
// prefill layout and rank addresses from the prefill's bootstrap server (GET /route), picks the
// prefill DP rank as SGLang does (hint, room % dp_size, or /query_dp_ranks). The KV handover itself
// is the mocker's own: decode long-polls POST /kvgate/kv_transfer on the rank's address; prefill
// answers once the room's prompt is computed and the simulated transfer time has passed.
//
// Failures end both sides, as in SGLang: a prefill whose decode never comes (bootstrap timeout) or
// goes away aborts; a decode whose prefill fails, aborts or times out finishes with an abort.

import type { EngineRequest } from './request.js';
import { sendJson, type Exchange } from './http_util.js';
import type { TimingModel } from './timing.js';

interface TransferRequest {
  bootstrap_room: string;
  prefill_dp_rank: number;
  rid: string;
  prompt_tokens: number;
}

type TransferReply = { status: 'ok'; first_token_id: number; cached_tokens: number; prompt_tokens: number } | { status: 'failed'; message: string };

interface Room {
  room: bigint;
  key: string;
  prefill: EngineRequest | null;
  decode: Exchange | null;
  decodeRid: string;
  decodePromptTokens: number;
  decodeLost: boolean;
  waiter: { resolve: () => void; reject: (e: Error) => void } | null;
  transferReject: ((e: Error) => void) | null;
  timer: NodeJS.Timeout | null;
}

function roomLabel(req: EngineRequest): string {
  return `rid=${req.rid} bootstrap_room=${req.bootstrap!.room}`;
}

// ---- prefill side ----
export class PrefillRendezvous {
  // By prefill DP rank and room: as in SGLang, where each rank has its own KV sender, a
  // decode that looks for the room on another rank never meets its prefill.
  private readonly rooms = new Map<string, Room>();
  lastTransferMs = 0;

  constructor(
    private readonly timing: TimingModel,
    private readonly bootstrapTimeoutMs: number,
    // Ends a prefill request still computing when its decode side goes away.
    private readonly abortPrefill: (req: EngineRequest, message: string) => void,
  ) {}

  private room(room: bigint, rank: number): Room {
    const key = `${rank}:${room}`;
    let r = this.rooms.get(key);
    if (!r) {
      r = { room, key, prefill: null, decode: null, decodeRid: '', decodePromptTokens: 0, decodeLost: false, waiter: null, transferReject: null, timer: null };
      this.rooms.set(key, r);
    }
    return r;
  }

  private drop(r: Room): void {
    if (r.timer) clearTimeout(r.timer);
    r.timer = null;
    if (this.rooms.get(r.key) === r) this.rooms.delete(r.key);
  }

  private reply(r: Room, body: TransferReply): void {
    if (r.decode) sendJson(r.decode, 200, body);
    r.decode = null;
  }

  // Scheduler hook: the prefill request waits in the bootstrap queue for its decode side.
  waitForDecode(req: EngineRequest): Promise<void> {
    const r = this.room(req.bootstrap!.room, req.rank);
    if (r.prefill && r.prefill !== req) {
      return Promise.reject(new Error(`Prefill bootstrap failed for request ${roomLabel(req)}: the room is already used by request ${r.prefill.rid}`));
    }
    r.prefill = req;
    if (r.decode) {
      if (r.timer) clearTimeout(r.timer);
      r.timer = null;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      r.waiter = { resolve, reject };
      r.timer = setTimeout(() => {
        r.waiter = null;
        this.drop(r);
        reject(new Error(`Prefill bootstrap failed for request ${roomLabel(req)}: timed out after ${this.bootstrapTimeoutMs / 1000}s waiting for the decode side`));
      }, this.bootstrapTimeoutMs);
    });
  }

  // Scheduler hook: the prompt is computed; hand the KV over.
  transfer(req: EngineRequest): Promise<void> {
    const r = this.rooms.get(`${req.rank}:${req.bootstrap!.room}`);
    const fail = (why: string) => new Error(`Prefill transfer failed for request ${roomLabel(req)}: ${why}`);
    if (!r || r.prefill !== req || r.decodeLost || !r.decode) return Promise.reject(fail('the decode side went away'));
    if (r.decodePromptTokens !== req.isl) {
      const why = `prompt length mismatch (prefill ${req.isl} tokens, decode ${r.decodePromptTokens})`;
      this.reply(r, { status: 'failed', message: why });
      return Promise.reject(fail(why));
    }
    const started = performance.now();
    return new Promise((resolve, reject) => {
      r.transferReject = (e) => reject(e);
      r.timer = setTimeout(() => {
        r.timer = null;
        r.transferReject = null;
        if (!r.decode) return reject(fail('the decode side went away'));
        this.lastTransferMs = performance.now() - started;
        this.reply(r, { status: 'ok', first_token_id: req.outputIds[0]!, cached_tokens: req.cachedTokens, prompt_tokens: req.isl });
        resolve();
      }, this.timing.transferMs(req.isl));
    });
  }

  // Scheduler hook: the prefill request ended (done, aborted or failed).
  ended(req: EngineRequest): void {
    const r = this.rooms.get(`${req.rank}:${req.bootstrap!.room}`);
    if (!r || r.prefill !== req) return;
    const reason = req.finishReason;
    if (r.decode) {
      const message = reason?.type === 'abort' ? `prefill request ${req.rid} aborted: ${reason.message}` : `prefill request ${req.rid} ended before the transfer`;
      this.reply(r, { status: 'failed', message });
    }
    this.drop(r);
  }

  // POST /kvgate/kv_transfer from a decode engine: held open until the transfer is done.
  decodeArrived(ex: Exchange, raw: string): void {
    let body: TransferRequest;
    let room: bigint;
    try {
      body = JSON.parse(raw) as TransferRequest;
      room = BigInt(body.bootstrap_room);
      if (typeof body.prompt_tokens !== 'number') throw new Error('prompt_tokens missing');
    } catch (err) {
      sendJson(ex, 400, { status: 'failed', message: `bad transfer request: ${(err as Error).message}` });
      return;
    }
    const r = this.room(room, typeof body.prefill_dp_rank === 'number' ? body.prefill_dp_rank : 0);
    if (r.decode) {
      sendJson(ex, 409, { status: 'failed', message: `bootstrap_room ${room} already has a decode side (${r.decodeRid})` });
      return;
    }
    r.decode = ex;
    r.decodeRid = body.rid;
    r.decodePromptTokens = body.prompt_tokens;
    ex.onAbort = () => {
      r.decode = null;
      r.decodeLost = true;
      const prefill = r.prefill;
      const error = new Error(`Prefill transfer failed for request ${prefill ? roomLabel(prefill) : `bootstrap_room=${room}`}: the decode side went away`);
      if (r.waiter) {
        r.waiter.reject(error);
        r.waiter = null;
      } else if (r.transferReject) {
        r.transferReject(error);
        r.transferReject = null;
      } else if (prefill) {
        this.abortPrefill(prefill, error.message);
      } else {
        this.drop(r);
      }
    };
    if (r.waiter) {
      if (r.timer) clearTimeout(r.timer);
      r.timer = null;
      r.waiter.resolve();
      r.waiter = null;
    } else if (!r.prefill) {
      r.timer = setTimeout(() => {
        this.reply(r, { status: 'failed', message: `no prefill request for bootstrap_room ${room} arrived within ${this.bootstrapTimeoutMs / 1000}s` });
        this.drop(r);
      }, this.bootstrapTimeoutMs);
    }
  }
}

// ---- decode side ----
interface PrefillInfo {
  dp_size: number;
  page_size: number | null;
  follow_bootstrap_room: boolean;
}

class HttpFailure extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

async function getJson<T>(url: string, signal: AbortSignal, init?: RequestInit): Promise<T> {
  const res = await fetch(url, { ...init, signal });
  const text = await res.text();
  if (!res.ok) throw new HttpFailure(`${init?.method ?? 'GET'} ${url}: ${res.status} ${text}`, res.status);
  return JSON.parse(text) as T;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason as Error);
    };
    const t = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });

export class DecodeKvClient {
  private readonly infos = new Map<string, Promise<PrefillInfo>>();
  private readonly controllers = new Map<EngineRequest, AbortController>();

  constructor(
    private readonly pageSize: number,
    private readonly waitingTimeoutMs: number,
    private readonly defaultBootstrapPort: number,
  ) {}

  // Until every prefill rank has registered, the bootstrap server answers 503; retry.
  private async prefillInfo(base: string, signal: AbortSignal): Promise<PrefillInfo> {
    const cached = this.infos.get(base);
    if (cached) return cached;
    const p = (async () => {
      for (;;) {
        try {
          return await getJson<PrefillInfo>(`${base}/route?prefill_dp_rank=-1&prefill_cp_rank=-1&target_tp_rank=-1&target_pp_rank=-1`, signal);
        } catch (err) {
          if (!(err instanceof HttpFailure && err.status === 503)) throw err;
          await sleep(50, signal);
        }
      }
    })();
    this.infos.set(base, p);
    p.catch(() => this.infos.delete(base));
    return p;
  }

  private async prefillRank(base: string, req: EngineRequest, info: PrefillInfo, signal: AbortSignal): Promise<number> {
    if (req.prefillDpRank !== null) return req.prefillDpRank;
    const room = req.bootstrap!.room;
    if (info.follow_bootstrap_room) return Number(room % BigInt(info.dp_size));
    for (;;) {
      const found = await getJson<Record<string, number>>(`${base}/query_dp_ranks`, signal, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: `{"bootstrap_rooms":[${room}]}`,
      });
      const rank = found[room.toString()];
      if (rank !== undefined) return rank;
      await sleep(20, signal);
    }
  }

  // Scheduler hook: wait for the room's prefill and receive its KV (first token and cache hit).
  async fetchKv(req: EngineRequest): Promise<{ firstToken: number; cachedTokens: number }> {
    const b = req.bootstrap!;
    const mine = new AbortController();
    this.controllers.set(req, mine);
    const deadline = AbortSignal.timeout(this.waitingTimeoutMs);
    const signal = AbortSignal.any([mine.signal, deadline]);
    const label = `Decode transfer failed for request rid=${req.rid} bootstrap_room=${b.room}`;
    try {
      const host = b.host.includes(':') && !b.host.startsWith('[') ? `[${b.host}]` : b.host;
      const base = `http://${host}:${b.port ?? this.defaultBootstrapPort}`;
      const info = await this.prefillInfo(base, signal);
      if (info.page_size !== this.pageSize) throw new Error(`page size mismatch: prefill ${info.page_size}, decode ${this.pageSize}`);
      const rank = await this.prefillRank(base, req, info, signal);
      if (!(rank >= 0 && rank < info.dp_size)) throw new Error(`prefill DP rank ${rank} out of range [0, ${info.dp_size})`);
      const target = await getJson<{ rank_ip: string; rank_port: number }>(`${base}/route?prefill_dp_rank=${rank}&prefill_cp_rank=0&target_tp_rank=0&target_pp_rank=0`, signal);
      const body: TransferRequest = { bootstrap_room: b.room.toString(), prefill_dp_rank: rank, rid: req.rid, prompt_tokens: req.isl };
      const reply = await fetch(`http://${target.rank_ip}:${target.rank_port}/kvgate/kv_transfer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal,
      });
      const r = JSON.parse(await reply.text()) as TransferReply;
      if (r.status !== 'ok') throw new Error(r.message);
      return { firstToken: r.first_token_id, cachedTokens: r.cached_tokens };
    } catch (err) {
      if (deadline.aborted && !mine.signal.aborted) throw new Error(`${label}: timed out after ${this.waitingTimeoutMs / 1000}s waiting for the prefill side`, { cause: err });
      const e = err as Error & { cause?: Error };
      throw new Error(`${label}: ${e.cause?.message ?? e.message}`, { cause: err });
    } finally {
      this.controllers.delete(req);
    }
  }

  // Scheduler hook: the decode request ended; drop its rendezvous so prefill sees it go.
  ended(req: EngineRequest): void {
    this.controllers.get(req)?.abort(new Error('decode request ended'));
  }
}
