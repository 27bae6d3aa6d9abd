// SGLang's /generate wire format: request validation with SGLang's own error texts, and the
// response / SSE chunk shapes (reference/sglang.md §1.2-1.5, checked against sglang 0.5.23:
// api/v1/api_types.py for the schema gate, tokenizer_manager.py for meta_info).
//
// Three kinds of rejection, as SGLang has them:
//  - ContractError: the JSON breaks the schema (wrong type, unknown sampling_params key);
//    HTTP 400 {"error": "<text>"} before anything runs, stream or not.
//  - RequestError: the request is well-formed but invalid (ValueError in SGLang); HTTP 400
//    {"error": {"message"}} when not streaming, an in-stream error event when streaming.
//  - an abort finish reason decided by the scheduler (see request.ts).

import { randomUUID } from 'node:crypto';
import type { EngineRequest, SamplingRules } from './request.js';
import type { ResolvedOptions } from './options.js';
import { isJsonObject } from '../json.js';
import { addLogprobs, type LogprobView } from './logprobs.js';

export class ContractError extends Error {}
// The body is not JSON (FastAPI's own 400).
export class BodyDecodeError extends Error {}
export class RequestError extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

// A batch whose lists do not line up (a ValueError, in-stream when streaming).
export class BatchShapeError extends RequestError {
  constructor(
    message: string,
    readonly stream: boolean,
  ) {
    super(message);
  }
}

// ---- the schema gate (serde's wording, as sglang.api.v1 reproduces it) ----

const SAMPLING_FIELDS = [
  'max_new_tokens', 'stop', 'stop_token_ids', 'stop_regex', 'temperature', 'top_p', 'top_k', 'min_p',
  'frequency_penalty', 'presence_penalty', 'repetition_penalty', 'min_new_tokens', 'n', 'json_schema', 'regex',
  'ebnf', 'structural_tag', 'ignore_eos', 'skip_special_tokens', 'spaces_between_special_tokens', 'no_stop_trim',
  'stream_interval', 'logit_bias', 'sampling_seed', 'custom_params', 'beam_width', 'watermark', 'choice',
] as const;

function unexpected(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'boolean') return `boolean \`${v}\``;
  if (typeof v === 'number') return Number.isInteger(v) ? `integer \`${v}\`` : `floating point \`${v}\``;
  if (typeof v === 'bigint') return `integer \`${v}\``;
  if (typeof v === 'string') return `string "${v}"`;
  if (Array.isArray(v)) return 'sequence';
  return 'map';
}

function invalidType(v: unknown, expected: string): ContractError {
  return new ContractError(`invalid type: ${unexpected(v)}, expected ${expected}`);
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);
const isNum = (v: unknown): v is number => typeof v === 'number';

function expectInt(v: unknown): number {
  if (isInt(v)) return v;
  throw invalidType(v, 'i64');
}
function expectFloat(v: unknown): number {
  if (isNum(v)) return v;
  throw invalidType(v, 'f64');
}
function expectBool(v: unknown): boolean {
  if (typeof v === 'boolean') return v;
  throw invalidType(v, 'a boolean');
}
function expectStr(v: unknown, expected = 'a string'): string {
  if (typeof v === 'string') return v;
  throw invalidType(v, expected);
}
function expectSeq(v: unknown): unknown[] {
  if (Array.isArray(v)) return v;
  throw invalidType(v, 'a sequence');
}
function stringOrList(v: unknown, name: string): string | string[] {
  if (Array.isArray(v)) return v.map((e) => expectStr(e));
  return expectStr(v, `a value or an array of values for ${name}`);
}

export interface SamplingParams {
  max_new_tokens: number | null;
  stop: string[] | null;
  stop_token_ids: number[] | null;
  temperature: number;
  top_p: number;
  top_k: number;
  min_p: number;
  frequency_penalty: number;
  presence_penalty: number;
  repetition_penalty: number;
  min_new_tokens: number;
  n: number;
  ignore_eos: boolean;
  skip_special_tokens: boolean;
  no_stop_trim: boolean;
  stream_interval: number | null;
  sampling_seed: number | null;
  logit_bias: Record<string, number>;
  constrained: boolean;
  stop_regex: boolean;
  beam_width: number | null;
}

function decodeSamplingParams(value: unknown): SamplingParams {
  if (!isJsonObject(value)) throw invalidType(value, 'a value or an array of values for SamplingParamsOrList');
  const p: SamplingParams = {
    max_new_tokens: 128, stop: null, stop_token_ids: null, temperature: 1, top_p: 1, top_k: 1 << 30, min_p: 0,
    frequency_penalty: 0, presence_penalty: 0, repetition_penalty: 1, min_new_tokens: 0, n: 1, ignore_eos: false,
    skip_special_tokens: true, no_stop_trim: false, stream_interval: null, sampling_seed: null, logit_bias: {},
    constrained: false, stop_regex: false, beam_width: null,
  };
  for (const [key, x] of Object.entries(value)) {
    const nil = x === null;
    switch (key) {
      case 'max_new_tokens': p.max_new_tokens = nil ? null : expectInt(x); break;
      case 'stop': { const s = nil ? null : stringOrList(x, 'StringOrList'); p.stop = s === null ? null : Array.isArray(s) ? s : [s]; break; }
      case 'stop_token_ids': p.stop_token_ids = nil ? null : expectSeq(x).map(expectInt); break;
      case 'stop_regex': if (!nil) { stringOrList(x, 'StringOrList'); p.stop_regex = true; } break;
      case 'temperature': p.temperature = nil ? 1 : expectFloat(x); break;
      case 'top_p': p.top_p = nil ? 1 : expectFloat(x); break;
      case 'top_k': p.top_k = nil ? 1 << 30 : expectInt(x); break;
      case 'min_p': p.min_p = nil ? 0 : expectFloat(x); break;
      case 'frequency_penalty': p.frequency_penalty = nil ? 0 : expectFloat(x); break;
      case 'presence_penalty': p.presence_penalty = nil ? 0 : expectFloat(x); break;
      case 'repetition_penalty': p.repetition_penalty = nil ? 1 : expectFloat(x); break;
      case 'min_new_tokens': p.min_new_tokens = nil ? 0 : expectInt(x); break;
      case 'n': p.n = nil ? 1 : expectInt(x); break;
      case 'json_schema': case 'regex': case 'ebnf': case 'structural_tag':
        if (!nil) { expectStr(x); p.constrained = true; } break;
      case 'ignore_eos': p.ignore_eos = nil ? false : expectBool(x); break;
      case 'skip_special_tokens': p.skip_special_tokens = nil ? true : expectBool(x); break;
      case 'spaces_between_special_tokens': if (!nil) expectBool(x); break;
      case 'no_stop_trim': p.no_stop_trim = nil ? false : expectBool(x); break;
      case 'stream_interval': p.stream_interval = nil ? null : expectInt(x); break;
      case 'logit_bias': {
        if (nil) break;
        if (!isJsonObject(x)) throw invalidType(x, 'a map');
        for (const [k, b] of Object.entries(x)) p.logit_bias[k] = expectFloat(b);
        break;
      }
      case 'sampling_seed': p.sampling_seed = nil ? null : expectInt(x); break;
      case 'custom_params': break;
      case 'beam_width': p.beam_width = nil ? null : expectInt(x); break;
      case 'watermark': if (!nil && !isJsonObject(x)) throw invalidType(x, 'struct WatermarkRequestConfig'); break;
      case 'choice': if (!nil) expectSeq(x).forEach((e) => expectStr(e)); break;
      default:
        throw new ContractError(`unknown field \`${key}\`, expected one of ${SAMPLING_FIELDS.map((f) => `\`${f}\``).join(', ')}`);
    }
  }
  return p;
}

// What a request asks for in meta_info's logprob lists.
export interface LogprobOptions {
  // First prompt position with input logprobs; -1: none (output tokens only).
  startLen: number;
  topNum: number;
  tokenIds: number[] | null;
  withText: boolean;
}

export interface GenerateBody {
  rid: string | null;
  text: string | null;
  inputIds: number[] | null;
  // A batch (list text or input_ids, or n > 1): one body per item, the response a list (or SSE
  // chunks tagged with "index"). null for a single request.
  batch: GenerateBody[] | null;
  stream: boolean;
  sampling: SamplingParams;
  bootstrapHost: string | null;
  bootstrapPort: number | null;
  bootstrapRoom: bigint | null;
  routedDpRank: number | null;
  disaggPrefillDpRank: number | null;
  returnLogprob: boolean;
  logprob: LogprobOptions;
}

// bootstrap_room is a 63-bit integer and JSON.parse rounds it above 2^53; read its digits from the
// raw body instead (a quote inside a JSON string is escaped, so a match cannot come from a string).
function exactRoom(raw: string, parsed: number): bigint {
  const re = /(?<!\\)"bootstrap_room"\s*:\s*(-?\d+)(?![\d.eE])/g;
  for (let m = re.exec(raw); m; m = re.exec(raw)) {
    if (Number(m[1]) === parsed) return BigInt(m[1]!);
  }
  return BigInt(parsed);
}

// A body with nothing set: SGLang's defaults everywhere.
export function emptyGenerateBody(): GenerateBody {
  return {
    rid: null, text: null, inputIds: null, batch: null, stream: false, sampling: decodeSamplingParams({}),
    bootstrapHost: null, bootstrapPort: null, bootstrapRoom: null, routedDpRank: null, disaggPrefillDpRank: null, returnLogprob: false,
    logprob: { startLen: -1, topNum: 0, tokenIds: null, withText: false },
  };
}

// Fields that may be a list, one value per batch item (normalize_batch_and_arguments).
const PER_ITEM = ['rid', 'sampling_params', 'bootstrap_host', 'bootstrap_port', 'bootstrap_room', 'return_logprob', 'logprob_start_len', 'top_logprobs_num', 'token_ids_logprob'] as const;
const LOGPROB_LISTS = ['return_logprob', 'logprob_start_len', 'top_logprobs_num', 'token_ids_logprob'] as const;

// token_ids_logprob is a list of ids per item, so it is a batch list only when nested.
function isItemList(key: string, v: unknown): v is unknown[] {
  if (!Array.isArray(v)) return false;
  return key === 'token_ids_logprob' ? v.length > 0 && Array.isArray(v[0]) : true;
}

// Parse and schema-check a /generate body. Throws ContractError, BodyDecodeError, or RequestError
// for a batch whose lists do not line up. `roomSource`: the text whose "bootstrap_room" digits are
// exact (the body itself, or the OpenAI body it was built from).
export function parseGenerateBody(raw: string, roomSource = raw): GenerateBody {
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch (err) {
    throw new BodyDecodeError(`JSON decode error: ${(err as Error).message}`);
  }
  if (!isJsonObject(body)) throw new ContractError(`invalid type: ${unexpected(body)}, expected struct GenerateRequest`);
  const stream = body['stream'] === true;
  const prompts = batchPrompts(body);
  const sp = body['sampling_params'];
  const n = parallelSampleNum(sp, stream);
  if (prompts === null && n === 1) {
    for (const k of PER_ITEM) {
      if (isItemList(k, body[k])) throw new BatchShapeError(`${k} is a list but the request is not a batch: text or input_ids must be a list too.`, stream);
    }
    return parseItem(body, roomSource, null);
  }
  // A single prompt with n > 1 becomes a batch of one prompt (SGLang does the same).
  const size = prompts?.values.length ?? 1;
  if (size === 0) throw new BatchShapeError('The batch is empty: text or input_ids must hold at least one prompt.', stream);
  const rooms = exactRooms(roomSource, body['bootstrap_room']);
  const items: GenerateBody[] = [];
  for (let i = 0; i < size; i++) {
    const one: Record<string, unknown> = { ...body };
    if (prompts) one[prompts.key] = prompts.values[i];
    for (const k of PER_ITEM) {
      const v = body[k];
      if (!isItemList(k, v)) continue;
      if (v.length !== size) throw new BatchShapeError(`${k} has ${v.length} entries but the batch has ${size} prompts.`, stream);
      if (n > 1 && (LOGPROB_LISTS as readonly string[]).includes(k)) throw new BatchShapeError(`${k} cannot be a list when n > 1 (parallel sampling).`, stream);
      if (n > 1 && k === 'bootstrap_room') throw new BatchShapeError('bootstrap_room cannot be a list when n > 1 in the kvgate mocker: send one room R and the samples take R, R+1, ...', stream);
      one[k] = v[i];
    }
    if (typeof body['rid'] === 'string') one['rid'] = `${body['rid']}_${i}`;
    const item = parseItem(one, roomSource, rooms?.[i] ?? null);
    for (let j = 0; j < n; j++) {
      const copy = n === 1 ? item : { ...item, sampling: { ...item.sampling, sampling_seed: sampleSeed(item.sampling.sampling_seed, j) } };
      // Parallel samples get fresh rids (regenerate_rid).
      if (n > 1) copy.rid = null;
      items.push(copy);
    }
  }
  // A scalar room R becomes R, R+1, ... (_normalize_bootstrap_params).
  if (!Array.isArray(body['bootstrap_room'])) items.forEach((it, k) => it.bootstrapRoom !== null && (it.bootstrapRoom += BigInt(k)));
  const out = emptyGenerateBody();
  out.stream = items[0]!.stream;
  out.batch = items;
  return out;
}

// The prompt list of a batch request, or null when it has one prompt.
function batchPrompts(body: Record<string, unknown>): { key: string; values: unknown[] } | null {
  const text = body['text'];
  if (Array.isArray(text)) return { key: 'text', values: text };
  const ids = body['input_ids'];
  if (Array.isArray(ids) && ids.length > 0 && Array.isArray(ids[0])) return { key: 'input_ids', values: ids };
  return null;
}

function parallelSampleNum(sp: unknown, stream: boolean): number {
  const ns = (Array.isArray(sp) ? sp : [sp]).map((p) => (isJsonObject(p) && isInt(p['n']) ? p['n'] : 1));
  if (ns.some((v) => v !== ns[0])) throw new BatchShapeError('The parallel_sample_num should be the same for all samples in sample params.', stream);
  const n = ns[0] ?? 1;
  if (n < 1) throw new BatchShapeError(`sampling_params.n must be at least 1, got ${n}.`, stream);
  return n;
}

// Parallel samples of one prompt differ: each draws from its own seed.
function sampleSeed(seed: number | null, j: number): number | null {
  return j === 0 ? seed : ((seed ?? 0) ^ Math.imul(j, 0x9e3779b1)) | 0;
}

// Exact 63-bit rooms of a list-valued bootstrap_room (JSON.parse rounds them).
function exactRooms(raw: string, v: unknown): bigint[] | null {
  if (!Array.isArray(v)) return null;
  const m = /(?<!\\)"bootstrap_room"\s*:\s*\[([^\]]*)\]/.exec(raw);
  const digits = m?.[1]?.split(',').map((d) => d.trim());
  if (!digits || digits.length !== v.length || !digits.every((d) => /^-?\d+$/.test(d))) return v.map((x) => BigInt(expectInt(x)));
  return digits.map((d) => BigInt(d));
}

// One request's fields (scalars; a batch passes one item at a time).
function parseItem(body: Record<string, unknown>, raw: string, room: bigint | null): GenerateBody {
  const out = emptyGenerateBody();
  for (const [key, x] of Object.entries(body)) {
    if (x === null) continue;
    switch (key) {
      case 'rid': out.rid = expectStr(x, 'a value or an array of values for StringOrList'); break;
      case 'text': out.text = expectStr(x, 'a value or an array of values for StringOrList'); break;
      case 'input_ids':
        if (!Array.isArray(x)) throw invalidType(x, 'a value or an array of values for TokenIdsOrList');
        out.inputIds = x.map(expectInt);
        break;
      case 'stream': out.stream = expectBool(x); break;
      case 'sampling_params': out.sampling = decodeSamplingParams(x); break;
      case 'bootstrap_host': out.bootstrapHost = expectStr(x, 'a value or an array of values for OptionalStringOrList'); break;
      case 'bootstrap_port':
        if (isInt(x)) out.bootstrapPort = x;
        else throw invalidType(x, 'a value or an array of values for OptionalInt64OrList');
        break;
      case 'bootstrap_room':
        if (isInt(x)) out.bootstrapRoom = room ?? exactRoom(raw, x);
        else throw invalidType(x, 'a value or an array of values for OptionalInt64OrList');
        break;
      case 'routed_dp_rank':
        out.routedDpRank = expectInt(x);
        break;
      case 'data_parallel_rank':
        // Deprecated alias, still accepted (sgl-model-gateway sends it); routed_dp_rank wins.
        out.routedDpRank ??= expectInt(x);
        break;
      case 'disagg_prefill_dp_rank':
        out.disaggPrefillDpRank = expectInt(x);
        break;
      case 'return_logprob': out.returnLogprob = expectBool(x); break;
      case 'return_hidden_states': if (Array.isArray(x)) x.forEach(expectBool); else expectBool(x); break;
      case 'logprob_start_len': out.logprob.startLen = expectInt(x); break;
      case 'top_logprobs_num': out.logprob.topNum = expectInt(x); break;
      case 'token_ids_logprob': out.logprob.tokenIds = expectSeq(x).map(expectInt); break;
      case 'return_text_in_logprobs': out.logprob.withText = expectBool(x); break;
      default:
        break; // unknown top-level keys are ignored, as SGLang does
    }
  }
  return out;
}

// ---- semantic checks (SGLang's ValueError texts) ----

export interface Admission {
  rid: string;
  inputIds: number[];
  rules: SamplingRules;
  stream: boolean;
  // null unless return_logprob.
  logprob: LogprobOptions | null;
}

export function admit(b: GenerateBody, o: ResolvedOptions, textTokenize: (t: string) => number[]): Admission {
  const s = b.sampling;
  if (s.beam_width !== null && s.beam_width > 1) throw new RequestError('The kvgate mocker does not support beam search (sampling_params.beam_width > 1).');
  if (b.text === null && b.inputIds === null) throw new RequestError('Either text, input_ids or input_embeds should be provided.');
  let inputIds: number[];
  if (b.inputIds !== null) {
    inputIds = b.inputIds;
  } else {
    if (o.skipTokenizerInit) {
      throw new RequestError('The engine initialized with skip_tokenizer_init=True cannot accept text prompts. Please provide input_ids or re-initialize the engine with skip_tokenizer_init=False.');
    }
    inputIds = textTokenize(b.text!);
  }
  if (inputIds.length === 0) throw new RequestError('The input is empty: input_ids (or text) must hold at least one token.');
  for (const id of inputIds) {
    if (id < 0 || id >= o.vocabSize) throw new RequestError(`input_ids contains out-of-vocabulary token id ${id}; valid range is [0, ${o.vocabSize}).`);
  }
  if (o.skipTokenizerInit && (s.stop || s.stop_regex)) {
    throw new RequestError('stop and stop_regex are unavailable when skip_tokenizer_init=True (they need a tokenizer); use stop_token_ids.');
  }
  if (b.returnLogprob) {
    const lp = b.logprob;
    if (lp.startLen >= inputIds.length) {
      throw new RequestError(`logprob_start_len (${lp.startLen}) is larger than the number of input tokens (${inputIds.length}). Request with a lower logprob_start_len.`);
    }
    if (lp.topNum < 0) throw new RequestError(`top_logprobs_num must be at least 0, got ${lp.topNum}.`);
    for (const id of lp.tokenIds ?? []) {
      if (id < 0 || id >= o.vocabSize) throw new RequestError(`token_ids_logprob contains out-of-vocabulary token id ${id}; valid range is [0, ${o.vocabSize}).`);
    }
  }
  if (s.constrained) throw new RequestError('The kvgate mocker does not support constrained decoding (json_schema, regex, ebnf, structural_tag).');
  if (s.stop_regex) throw new RequestError('The kvgate mocker does not support stop_regex.');
  // SamplingParams.verify
  if (!Number.isFinite(s.temperature) || s.temperature < 0) throw new RequestError(`temperature must be a non-negative finite number, got ${s.temperature}.`);
  if (!(s.top_p > 0 && s.top_p <= 1)) throw new RequestError(`top_p must be in (0, 1], got ${s.top_p}.`);
  if (!(s.min_p >= 0 && s.min_p <= 1)) throw new RequestError(`min_p must be in [0, 1], got ${s.min_p}.`);
  if (s.top_k < 1 && s.top_k !== -1) throw new RequestError(`top_k must be -1 (disable) or at least 1, got ${s.top_k}.`);
  if (!(s.frequency_penalty >= -2 && s.frequency_penalty <= 2)) throw new RequestError(`frequency_penalty must be in [-2, 2], got ${s.frequency_penalty}.`);
  if (!(s.presence_penalty >= -2 && s.presence_penalty <= 2)) throw new RequestError(`presence_penalty must be in [-2, 2], got ${s.presence_penalty}.`);
  if (!(s.repetition_penalty > 0 && s.repetition_penalty <= 2)) throw new RequestError(`repetition_penalty must be in (0, 2] (1.0 = no penalty), got ${s.repetition_penalty}.`);
  if (s.min_new_tokens < 0) throw new RequestError(`min_new_tokens must be in [0, max_new_tokens], got ${s.min_new_tokens}.`);
  if (s.max_new_tokens !== null) {
    if (s.max_new_tokens < 0) throw new RequestError(`max_new_tokens must be at least 0, got ${s.max_new_tokens}.`);
    if (s.min_new_tokens > s.max_new_tokens) throw new RequestError(`min_new_tokens must be in [0, max_new_tokens(${s.max_new_tokens})], got ${s.min_new_tokens}.`);
  }
  for (const k of Object.keys(s.logit_bias)) {
    const id = Number(k);
    if (!(id >= 0 && id < o.vocabSize)) throw new RequestError(`logit_bias must has keys in [0, ${o.vocabSize - 1}], got ${k}.`);
  }
  // Context length (TokenizerManager._validate_one_request).
  const n = inputIds.length;
  if (n >= o.contextLength) {
    if (!o.allowAutoTruncate) throw new RequestError(`The input (${n} tokens) is longer than the model's context length (${o.contextLength} tokens).`);
    inputIds = inputIds.slice(0, o.contextLength);
  }
  if (s.max_new_tokens !== null && s.max_new_tokens + inputIds.length > o.contextLength && !o.allowAutoTruncate) {
    throw new RequestError(
      `Requested token count exceeds the model's maximum context length of ${o.contextLength} tokens. You requested a total of ${s.max_new_tokens + inputIds.length} tokens: ${inputIds.length} tokens from the input messages and ${s.max_new_tokens} tokens for the completion. Please reduce the number of tokens in the input messages or the completion to fit within the limit.`,
    );
  }
  // Scheduler.init_req_max_new_tokens: never past the context or the KV pool.
  const maxReqLen = Math.min(o.contextLength - 1, o.maxTotalTokens - 1);
  const maxNew = Math.max(0, Math.min(s.max_new_tokens ?? 1 << 30, maxReqLen - inputIds.length - 1));
  return {
    rid: b.rid ?? randomUUID().replaceAll('-', ''),
    inputIds,
    stream: b.stream,
    logprob: b.returnLogprob ? b.logprob : null,
    rules: {
      maxNewTokens: maxNew,
      minNewTokens: Math.min(s.min_new_tokens, maxNew),
      ignoreEos: s.ignore_eos,
      stopTokenIds: s.stop_token_ids ? new Set(s.stop_token_ids) : null,
      stopStrings: s.stop && s.stop.length > 0 ? s.stop : null,
      noStopTrim: s.no_stop_trim,
      skipSpecialTokens: s.skip_special_tokens,
      streamInterval: Math.max(1, s.stream_interval ?? o.streamInterval),
      samplingSeed: s.sampling_seed,
    },
  };
}

// The scheduler's prompt-length gate (validate_input_length): an abort, not a ValueError.
export function maxReqInputLen(o: ResolvedOptions): number {
  return Math.min(o.contextLength - 1, o.maxTotalTokens - 1) - 5;
}

// ---- responses ----

export interface OutputFormat {
  withText: boolean;
  incremental: boolean;
  dpSize: number;
}

// One response object ({text, output_ids, meta_info}); `finished` adds e2e_latency. Cumulative
// unless incremental streaming is on. Advances the request's "sent" marks.
export function formatOutput(req: EngineRequest, finished: boolean, f: OutputFormat, nowMs: number, logprob: LogprobView | null = null): Record<string, unknown> {
  const incremental = f.incremental && req.stream;
  const ids = incremental ? req.outputIds.slice(req.sentIds) : req.outputIds.slice();
  const out: Record<string, unknown> = {};
  if (f.withText) {
    // Cumulative text waits for the end to trim a stop string; the trimmed text is final.
    out.text = incremental ? req.text.slice(req.sentText) : req.text;
  }
  out.output_ids = ids;
  const meta: Record<string, unknown> = {
    id: req.rid,
    finish_reason: finished ? req.finishReason : null,
    prompt_tokens: req.isl,
    weight_version: 'default',
    num_retractions: 0,
    reasoning_tokens: 0,
    completion_tokens: req.outputIds.length,
    cached_tokens: req.cachedTokens,
  };
  // Incremental chunks carry the new tokens' lists only, and the prompt's in the first one.
  if (logprob) addLogprobs(meta, req, logprob, incremental ? req.sentIds : 0, !incremental || req.sentIds === 0);
  if (f.dpSize > 1) meta.dp_rank = req.rank;
  if (finished) meta.e2e_latency = (nowMs - req.arrivalMs) / 1000;
  if (!req.firstSent && (finished || req.stream)) {
    meta.response_sent_to_client_ts = Date.now() / 1000;
    req.firstSent = true;
  }
  out.meta_info = meta;
  req.sentIds = req.outputIds.length;
  req.sentText = req.text.length;
  return out;
}
