// The engine-client seam: how the frontend talks to one engine, whatever carries the bytes.
// Implemented per engine protocol (direct_engine.ts picks one by URL scheme): SGLang's HTTP
// API (sglang_http.ts) and its gRPC API (sglang_grpc.ts). Token ids in, disjoint token-id chunks out.

import type { ModelCard } from './model_card.js';

export interface SamplingOptions {
  maxNewTokens: number;
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  seed?: number;
  frequencyPenalty?: number;
  presencePenalty?: number;
  repetitionPenalty?: number;
  minNewTokens?: number;
  ignoreEos?: boolean;
  stopTokenIds?: number[];
}

export interface BootstrapInfo {
  host: string;
  port: number;
  room: bigint;
  // Decode leg: the prefill DP rank that holds the room's KV (SGLang's
  // `disagg_prefill_dp_rank`; without it decode assumes room % prefill dp_size).
  prefillDpRank?: number;
}

export interface GenerateRequest {
  requestId: string;
  tokenIds: readonly number[];
  sampling: SamplingOptions;
  dpRank?: number;
  bootstrap?: BootstrapInfo;
  // Log probabilities of the output tokens, with `top` alternatives each (SGLang's
  // return_logprob / top_logprobs_num), and of the prompt's tokens when `prompt`; absent: none.
  logprobs?: { top: number; prompt: boolean };
}

// One token's log probability and, when asked for, its top alternatives (most likely first).
export interface TokenLogprob {
  id: number;
  logprob: number;
  top?: { id: number; logprob: number }[];
}

// A prompt token's: the first one has no logprob (nothing comes before it).
export type PromptLogprob = Omit<TokenLogprob, 'logprob'> & { logprob: number | null };

// SGLang's finish reasons (reference/sglang.md §1.4), normalised.
export type FinishReason =
  | { type: 'stop'; matched?: number | string | null }
  | { type: 'length'; length: number }
  | { type: 'abort'; message: string | null; statusCode?: number | null };

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  cachedTokens: number;
}

export interface GenerateChunk {
  // New token ids since the previous chunk (disjoint, never cumulative).
  tokenIds: number[];
  // Set on the last chunk only, together with usage.
  finishReason?: FinishReason;
  usage?: Usage;
  // Optional, on any chunk: prompt tokens found in the engine's prefix cache, when the
  // engine reports it before the end (SGLang does from its first frame). Lets a request
  // that the frontend ends early (a stop string) still report cached tokens.
  cachedTokens?: number;
  // With GenerateRequest.logprobs: one entry per id of tokenIds, in order.
  logprobs?: TokenLogprob[];
  // With GenerateRequest.logprobs.prompt: the whole prompt's, once (on the first chunk).
  promptLogprobs?: PromptLogprob[];
}

export interface EngineClient {
  // Streams the generation. Aborting `signal` aborts the request upstream; the iterator
  // then ends (or throws an AbortError). Transport failures throw a KvgateError
  // ('engine_error' / 'engine_timeout').
  generate(req: GenerateRequest, signal?: AbortSignal): AsyncIterable<GenerateChunk>;
  close(): Promise<void>;
}

// An engine reached directly, without a worker agent: SGLang's HTTP API (sglang_http.ts) or
// its gRPC API (sglang_grpc.ts). Health and the model card besides generation.
export interface DirectEngine extends EngineClient {
  readonly url: string;
  // `generate`: a one-token generation through the engine (SGLang's /health_generate, or
  // the gRPC HealthCheck), which a hung scheduler fails; otherwise the cheap liveness check.
  healthy(generate?: boolean): Promise<boolean>;
  // GET of one of SGLang's HTTP info paths (/server_info, /model_info, /v1/loads, ...).
  getJson(path: string): Promise<{ status: number; body: unknown }>;
  modelCard(): Promise<ModelCard>;
}
