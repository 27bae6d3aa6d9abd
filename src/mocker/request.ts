// One generation request inside the engine: its prompt, its sampling rules, the deterministic
// plan of its output, and its progress through the scheduler.

import type { CacheNode } from './radix_cache.js';
import { naturalEosPosition, nextWord, requestSeed, Rng, tokenText } from './tokens.js';

// SGLang's finish reasons, exactly as they appear in meta_info (reference/sglang.md §1.4).
export type FinishReason =
  | { type: 'stop'; matched: number | string }
  | { type: 'length'; length: number }
  | { type: 'abort'; message: string; status_code: number | null; err_type: string | null };

export function abortReason(message: string, statusCode: number | null = null, errType: string | null = null): FinishReason {
  return { type: 'abort', message, status_code: statusCode, err_type: errType };
}

export interface SamplingRules {
  maxNewTokens: number; // already clipped to what the context and the KV cache allow
  minNewTokens: number;
  ignoreEos: boolean;
  stopTokenIds: ReadonlySet<number> | null;
  stopStrings: readonly string[] | null;
  noStopTrim: boolean;
  skipSpecialTokens: boolean;
  streamInterval: number;
  samplingSeed: number | null;
}

export interface BootstrapTriple {
  host: string;
  port: number | null;
  room: bigint;
}

// Where outputs go (the HTTP layer). `output` is called at every stream interval and once at the
// end with finished = true; the request carries everything needed to format the chunk.
export interface OutputSink {
  output(req: EngineRequest, finished: boolean): void;
}

export type RequestState =
  | 'bootstrap' // prefill engine: waiting for the decode side of its room
  | 'prealloc' // decode engine: waiting for KV pages
  | 'waiting' // queued for prefill
  | 'prefill' // admitted, prompt (partly) computed
  | 'running' // decoding
  | 'transfer' // PD: KV moving between prefill and decode
  | 'done';

export class EngineRequest {
  readonly rid: string;
  readonly inputIds: number[];
  readonly rules: SamplingRules;
  readonly stream: boolean;
  readonly sink: OutputSink;
  readonly bootstrap: BootstrapTriple | null;
  // Health probes do not count in metrics.
  readonly logMetrics: boolean;
  readonly arrivalMs: number;
  rank = 0;
  // The prefill DP rank the decode side should read from (`disagg_prefill_dp_rank`).
  prefillDpRank: number | null = null;
  state: RequestState = 'waiting';
  outputIds: number[] = [];
  text = '';
  finishReason: FinishReason | null = null;
  // Prefix-cache bookkeeping.
  cachedTokens = 0;
  computedTokens = 0;
  lockedNode: CacheNode | null = null;
  coveredPages = 0;
  privatePages = 0;
  // Streaming bookkeeping for the HTTP layer.
  sentIds = 0;
  sentText = 0;
  firstSent = false;
  lastTokenMs = 0;
  private readonly rng: Rng;
  private readonly eosAt: number;

  constructor(init: {
    rid: string;
    inputIds: number[];
    rules: SamplingRules;
    stream: boolean;
    sink: OutputSink;
    seed: number;
    // The simulated model's typical answer length (a real model stops at EOS long before
    // a client's max_tokens, which defaults to the rest of the context).
    naturalOutputLen?: number;
    bootstrap?: BootstrapTriple | null;
    logMetrics?: boolean;
    arrivalMs?: number; // default: now (the fleet simulator passes its virtual time)
  }) {
    this.rid = init.rid;
    this.inputIds = init.inputIds;
    this.rules = init.rules;
    this.stream = init.stream;
    this.sink = init.sink;
    this.bootstrap = init.bootstrap ?? null;
    this.logMetrics = init.logMetrics ?? true;
    this.arrivalMs = init.arrivalMs ?? performance.now();
    this.rng = new Rng(requestSeed(init.seed, init.inputIds, init.rules.samplingSeed));
    // Drawn even under ignore_eos so that flag does not change the words.
    const eosAt = naturalEosPosition(this.rng, Math.min(init.rules.maxNewTokens, init.naturalOutputLen ?? Infinity), init.rules.minNewTokens);
    this.eosAt = init.rules.ignoreEos ? Infinity : eosAt;
  }

  get isl(): number {
    return this.inputIds.length;
  }

  get finished(): boolean {
    return this.finishReason !== null;
  }

  // Tokens whose KV exists: the prompt computed so far, plus every output token but the last.
  get kvTokens(): number {
    return this.outputIds.length === 0 ? this.computedTokens : this.isl + this.outputIds.length - 1;
  }

  // The next token id of this request's plan (no side effects).
  private draw(position: number): number {
    if (position === this.eosAt) return EOS_SENTINEL;
    const stops = this.rules.stopTokenIds;
    let id = nextWord(this.rng);
    // The sampler masks stop tokens until min_new_tokens, as SGLang's min-new-tokens penalizer does.
    for (let tries = 0; stops && position <= this.rules.minNewTokens && stops.has(id) && tries < 16; tries++) id = nextWord(this.rng);
    return id;
  }

  // Generate one token and apply SGLang's finish rules: stop string, then stop token/EOS, then
  // length (python/sglang/srt/managers/schedule_batch.py update_finish_state).
  generate(eosTokenId: number, withText: boolean, firstToken?: number): void {
    const position = this.outputIds.length + 1;
    // Draw even when the token is given (PD decode gets the first one from prefill) so both
    // engines walk the same plan.
    const planned = this.draw(position);
    let id = firstToken ?? planned;
    if (id === EOS_SENTINEL) id = eosTokenId;
    this.outputIds.push(id);
    const before = this.text.length;
    if (withText) this.text += tokenText(id, eosTokenId, this.rules.skipSpecialTokens);
    const r = this.rules;
    if (withText && r.stopStrings) {
      const window = Math.max(0, before - maxLength(r.stopStrings) + 1);
      for (const s of r.stopStrings) {
        const at = this.text.indexOf(s, window);
        if (at >= 0) {
          this.text = r.noStopTrim ? this.text.slice(0, at + s.length) : this.text.slice(0, at);
          this.finishReason = { type: 'stop', matched: s };
          return;
        }
      }
    }
    if (!r.ignoreEos && (id === eosTokenId || r.stopTokenIds?.has(id))) {
      this.finishReason = { type: 'stop', matched: id };
      return;
    }
    if (this.outputIds.length >= r.maxNewTokens) this.finishReason = { type: 'length', length: r.maxNewTokens };
  }
}

const EOS_SENTINEL = -1;

function maxLength(strings: readonly string[]): number {
  let m = 0;
  for (const s of strings) if (s.length > m) m = s.length;
  return m;
}
