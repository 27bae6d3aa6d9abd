// An EngineClient over SGLang's native HTTP API (reference/sglang.md §1.2-1.7): POST
// /generate with `input_ids`, always streamed (SSE), whether the engine streams
// cumulative output_ids (the default) or disjoint ones (--incremental-streaming-output);
// both come out as disjoint chunks, the frames that arrived together as one. Errors: an
// engine that cannot be reached, breaks its stream or answers 503 is engine_unavailable (the
// router takes it out; another worker may serve), one that reports a failure engine_error,
// a 4xx invalid_request. Aborting the
// signal drops the connection, which is SGLang's abort signal, and also posts
// /abort_request in case the drop is missed. Also reads the engine's model card.
// The frontend streams from every engine through this client (the worker agent is not on
// the token path), so it is built for the per-token cost: the lean HTTP/1.1 client
// (http1_client.ts) with kept-alive connections, no streams, no copy of the output so far per
// frame.

import { StringDecoder } from 'node:string_decoder';
import { KvgateError } from '../errors.js';
import { Http1Pool, type Http1Response } from '../net/http1_client.js';
import { isJsonObject, type JsonObject } from '../json.js';
import { readModelCard, type ModelCard } from './model_card.js';
import type { DirectEngine, FinishReason, GenerateChunk, GenerateRequest, PromptLogprob, SamplingOptions, TokenLogprob, Usage } from './client.js';

// Only SGLang's own names: it rejects unknown keys inside sampling_params.
function samplingParams(s: SamplingOptions): JsonObject {
  const p: JsonObject = { max_new_tokens: s.maxNewTokens };
  if (s.temperature !== undefined) p['temperature'] = s.temperature;
  if (s.topP !== undefined) p['top_p'] = s.topP;
  if (s.topK !== undefined) p['top_k'] = s.topK;
  if (s.minP !== undefined) p['min_p'] = s.minP;
  if (s.seed !== undefined) p['sampling_seed'] = s.seed;
  if (s.frequencyPenalty !== undefined) p['frequency_penalty'] = s.frequencyPenalty;
  if (s.presencePenalty !== undefined) p['presence_penalty'] = s.presencePenalty;
  if (s.repetitionPenalty !== undefined) p['repetition_penalty'] = s.repetitionPenalty;
  if (s.minNewTokens !== undefined) p['min_new_tokens'] = s.minNewTokens;
  if (s.ignoreEos !== undefined) p['ignore_eos'] = s.ignoreEos;
  if (s.stopTokenIds !== undefined && s.stopTokenIds.length > 0) p['stop_token_ids'] = s.stopTokenIds;
  return p;
}

// bootstrap_room is a 63-bit integer: written as a JSON number without going through a double.
export function generateBody(req: GenerateRequest): string {
  const body: JsonObject = {
    rid: req.requestId,
    input_ids: req.tokenIds,
    sampling_params: samplingParams(req.sampling),
    stream: true,
  };
  if (req.dpRank !== undefined) body['data_parallel_rank'] = req.dpRank;
  if (req.logprobs) {
    // From the first prompt position (0), or output tokens only (-1); token text is
    // decoded by the frontend.
    body['return_logprob'] = true;
    body['top_logprobs_num'] = req.logprobs.top;
    body['logprob_start_len'] = req.logprobs.prompt ? 0 : -1;
  }
  if (!req.bootstrap) return JSON.stringify(body);
  body['bootstrap_host'] = req.bootstrap.host;
  body['bootstrap_port'] = req.bootstrap.port;
  if (req.bootstrap.prefillDpRank !== undefined) body['disagg_prefill_dp_rank'] = req.bootstrap.prefillDpRank;
  const json = JSON.stringify(body);
  return `${json.slice(0, -1)},"bootstrap_room":${req.bootstrap.room.toString()}}`;
}

function finishReason(v: unknown): FinishReason | undefined {
  if (!isJsonObject(v)) return undefined;
  switch (v['type']) {
    case 'length':
      return { type: 'length', length: typeof v['length'] === 'number' ? v['length'] : 0 };
    case 'abort':
      return {
        type: 'abort',
        message: typeof v['message'] === 'string' ? v['message'] : null,
        statusCode: typeof v['status_code'] === 'number' ? v['status_code'] : null,
      };
    default: {
      // 'stop', and types newer than this client: the request is over either way.
      const m = v['matched'];
      return { type: 'stop', matched: typeof m === 'number' || typeof m === 'string' ? m : null };
    }
  }
}

// SGLang's [logprob, token_id, text|null] entry (the logprob is null for the first prompt token).
function entryOf(e: unknown): { id: number; logprob: number | null } | null {
  if (!Array.isArray(e) || typeof e[1] !== 'number' || (typeof e[0] !== 'number' && e[0] !== null)) return null;
  return { id: e[1], logprob: e[0] };
}

function topOf(list: unknown): { id: number; logprob: number }[] | undefined {
  if (!Array.isArray(list)) return undefined;
  const out: { id: number; logprob: number }[] = [];
  for (const x of list) {
    const e = entryOf(x);
    if (e && e.logprob !== null) out.push({ id: e.id, logprob: e.logprob });
  }
  return out;
}

// The prompt's logprobs from a frame's meta_info, or null when it has none (a PD decode
// engine sends an empty list: its prefill engine has them).
export function promptLogprobs(meta: JsonObject): PromptLogprob[] | null {
  const lps = meta['input_token_logprobs'];
  if (!Array.isArray(lps) || lps.length === 0) return null;
  const tops = meta['input_top_logprobs'];
  const out: PromptLogprob[] = [];
  for (let i = 0; i < lps.length; i++) {
    const e = entryOf(lps[i]);
    if (!e) return null;
    const t: PromptLogprob = { id: e.id, logprob: e.logprob };
    const top = Array.isArray(tops) ? topOf(tops[i]) : undefined;
    if (top) t.top = top;
    out.push(t);
  }
  return out;
}

// The logprobs of the last `n` output tokens from a frame's meta_info (its lists are
// cumulative, or the new tokens only under incremental streaming: their tails either way).
export function outputLogprobs(meta: JsonObject, ids: readonly number[], url: string): TokenLogprob[] {
  const lps = meta['output_token_logprobs'];
  const tops = meta['output_top_logprobs'];
  const n = ids.length;
  if (!Array.isArray(lps) || lps.length < n) throw new KvgateError('engine_error', `engine ${url} sent ${n} tokens without their output_token_logprobs`);
  const from = lps.length - n;
  const topFrom = Array.isArray(tops) ? tops.length - n : -1;
  const out: TokenLogprob[] = [];
  for (let i = 0; i < n; i++) {
    const e = entryOf(lps[from + i]);
    if (!e || e.logprob === null || e.id !== ids[i]) throw new KvgateError('engine_error', `engine ${url} sent output_token_logprobs that do not match its output_ids`);
    const t: TokenLogprob = { id: e.id, logprob: e.logprob };
    const top = topFrom >= 0 ? topOf((tops as unknown[])[topFrom + i]) : undefined;
    if (top) t.top = top;
    out.push(t);
  }
  return out;
}

function usageOf(meta: JsonObject, completionTokens: number): Usage {
  const n = (k: string) => (typeof meta[k] === 'number' ? (meta[k] as number) : 0);
  return {
    promptTokens: n('prompt_tokens'),
    completionTokens: typeof meta['completion_tokens'] === 'number' ? meta['completion_tokens'] : completionTokens,
    cachedTokens: n('cached_tokens'),
  };
}

// Turns SGLang stream frames into disjoint chunks. A frame's output_ids are cumulative
// when they are as many as meta_info.completion_tokens (SGLang's default); otherwise
// (--incremental-streaming-output) they are the new ids only. Only the count of ids seen is
// kept (a cumulative frame's new ids are its tail), so a frame costs its new ids, not the
// whole output so far; without completion_tokens the ids seen are kept to compare prefixes.
export class OutputIdsDelta {
  private count = 0;
  private promptSeen = false;
  private seen: number[] | null = null;

  // The engine URL when the request asked for logprobs (named in errors); null: none asked.
  constructor(private readonly logprobsOf: string | null = null) {}

  next(frame: JsonObject): GenerateChunk | null {
    const meta = isJsonObject(frame['meta_info']) ? frame['meta_info'] : {};
    const ids = Array.isArray(frame['output_ids']) ? (frame['output_ids'] as number[]) : [];
    const total = meta['completion_tokens'];
    let cumulative: boolean;
    if (typeof total === 'number') cumulative = ids.length === total && ids.length >= this.count;
    else {
      const seen = (this.seen ??= []);
      cumulative = ids.length > seen.length && seen.every((id, i) => ids[i] === id);
    }
    const fresh = cumulative ? (this.count === 0 ? ids : ids.slice(this.count)) : ids;
    this.count += fresh.length;
    if (this.seen) for (const id of fresh) this.seen.push(id);
    const reason = finishReason(meta['finish_reason']);
    let chunk: GenerateChunk | null;
    if (reason) chunk = { tokenIds: fresh, finishReason: reason, usage: usageOf(meta, this.count) };
    else if (fresh.length === 0) chunk = null;
    else chunk = typeof meta['cached_tokens'] === 'number' ? { tokenIds: fresh, cachedTokens: meta['cached_tokens'] } : { tokenIds: fresh };
    return this.logprobsOf === null ? chunk : this.withLogprobs(chunk, meta, fresh, this.logprobsOf);
  }

  // The chunk with its tokens' logprobs, and the prompt's from the first frame that has them
  // (cumulative frames repeat them); a frame with only those still makes a chunk.
  private withLogprobs(chunk: GenerateChunk | null, meta: JsonObject, fresh: number[], url: string): GenerateChunk | null {
    const prompt = this.promptSeen ? null : promptLogprobs(meta);
    if (prompt) {
      this.promptSeen = true;
      chunk ??= { tokenIds: fresh };
      chunk.promptLogprobs = prompt;
    }
    if (chunk && fresh.length > 0) chunk.logprobs = outputLogprobs(meta, fresh, url);
    return chunk;
  }
}

// Splits SSE text into the payloads of its `data:` fields, one per event, as it arrives.
export class SseParser {
  private buf = '';
  private data: string[] = [];

  // Appends to `out` the payloads of the events that `text` completes.
  push(text: string, out: string[]): void {
    let buf = this.buf.length > 0 ? this.buf + text : text;
    let from = 0;
    let nl: number;
    while ((nl = buf.indexOf('\n', from)) >= 0) {
      const end = nl > from && buf.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      if (end === from) {
        if (this.data.length > 0) {
          out.push(this.data.length === 1 ? this.data[0]! : this.data.join('\n'));
          this.data = [];
        }
      } else if (buf.startsWith('data:', from)) {
        this.data.push(buf.slice(from + (buf.charCodeAt(from + 5) === 32 ? 6 : 5), end));
      }
      from = nl + 1;
    }
    buf = from === buf.length ? '' : buf.slice(from);
    this.buf = buf;
  }

  // The stream ended: an event without its blank line still counts.
  end(out: string[]): void {
    if (this.buf.startsWith('data:')) this.data.push(this.buf.slice(this.buf.charCodeAt(5) === 32 ? 6 : 5));
    this.buf = '';
    if (this.data.length > 0) out.push(this.data.join('\n'));
    this.data = [];
  }
}

function engineErrorMessage(payload: unknown): string {
  if (isJsonObject(payload)) {
    const e = payload['error'];
    if (isJsonObject(e) && typeof e['message'] === 'string') return e['message'];
    if (typeof e === 'string') return e;
    if (typeof payload['message'] === 'string') return payload['message'];
  }
  return JSON.stringify(payload);
}

function unreachable(url: string, err: unknown): KvgateError {
  // Sockets and the HTTP/1.1 client put the code on the error, fetch on its cause.
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const why = e.code ?? e.cause?.code ?? e.cause?.message ?? e.message;
  return new KvgateError('engine_unavailable', `engine ${url} unreachable: ${why}`);
}

export interface SglangHttpOptions {
  // Upper bound for the small control requests (/abort_request, /server_info, ...).
  controlTimeoutMs?: number;
  // The engine's --api-key: sent as Authorization: Bearer on every request.
  apiKey?: string;
}

export class SglangHttpEngine implements DirectEngine {
  readonly url: string;
  private readonly controlTimeoutMs: number;
  private readonly inflight = new Set<AbortController>();
  // Streams reuse kept-alive connections: a request costs no TCP handshake.
  private readonly pool: Http1Pool;
  private readonly auth: Record<string, string>;
  private readonly generateHeaders: Record<string, string>;

  constructor(url: string, options: SglangHttpOptions = {}) {
    this.url = url.replace(/\/+$/, '');
    this.controlTimeoutMs = options.controlTimeoutMs ?? 5000;
    this.auth = options.apiKey !== undefined ? { authorization: `Bearer ${options.apiKey}` } : {};
    this.generateHeaders = { 'content-type': 'application/json', accept: 'text/event-stream', ...this.auth };
    this.pool = new Http1Pool(this.url);
  }

  // The connection pool's gauges (tests check they return to zero).
  get connections(): { sockets: number; idle: number; waiting: number } {
    return this.pool.stats;
  }

  async *generate(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateChunk> {
    const ctl = new AbortController();
    const onAbort = () => ctl.abort(signal?.reason);
    if (signal?.aborted) return;
    signal?.addEventListener('abort', onAbort, { once: true });
    this.inflight.add(ctl);
    let finished = false;
    let res: Http1Response | null = null;
    try {
      // A request the engine closed a kept-alive connection under is sent again (the pool does).
      const answer = this.pool.request({ method: 'POST', path: '/generate', headers: this.generateHeaders, body: generateBody(req), signal: ctl.signal });
      // Set up while the engine works: the request went out above when a connection was idle.
      const utf8 = new StringDecoder('utf8');
      const sse = new SseParser();
      const delta = new OutputIdsDelta(req.logprobs ? this.url : null);
      const events: string[] = [];
      try {
        res = await answer;
      } catch (err) {
        if (ctl.signal.aborted) return;
        throw unreachable(this.url, err);
      }
      const status = res.status;
      if (status < 200 || status >= 300) {
        const text = await res.text().catch(() => '');
        let payload: unknown = text;
        try {
          payload = JSON.parse(text);
        } catch {
          /* not JSON: keep the text */
        }
        const code = status >= 400 && status < 500 ? 'invalid_request' : status === 503 ? 'engine_unavailable' : 'engine_error';
        throw new KvgateError(code, `engine ${this.url} returned ${status}: ${engineErrorMessage(payload)}`);
      }
      let ended = false;
      try {
        while (!finished) {
          const bytes = await res.read();
          if (bytes === null) sse.end(events);
          else sse.push(utf8.write(bytes), events);
          // Every frame that arrived together goes on as one chunk.
          let out: GenerateChunk | null = null;
          for (const data of events) {
            if (data === '[DONE]') {
              ended = true;
              break;
            }
            const chunk = delta.next(this.frame(data));
            if (!chunk) continue;
            if (out === null) out = chunk;
            else {
              for (const id of chunk.tokenIds) out.tokenIds.push(id);
              if (chunk.logprobs) (out.logprobs ??= []).push(...chunk.logprobs);
              if (chunk.promptLogprobs) out.promptLogprobs ??= chunk.promptLogprobs;
              if (chunk.cachedTokens !== undefined) out.cachedTokens = chunk.cachedTokens;
              if (chunk.finishReason) {
                out.finishReason = chunk.finishReason;
                out.usage = chunk.usage;
              }
            }
            if (out.finishReason) break;
          }
          events.length = 0;
          if (out?.finishReason) finished = true;
          if (out) yield out;
          if (ended || bytes === null) break;
        }
      } catch (err) {
        if (ctl.signal.aborted) return;
        if (err instanceof KvgateError) throw err;
        throw new KvgateError('engine_unavailable', `engine ${this.url} stream broke: ${(err as Error).message}`);
      }
      if (!finished) throw new KvgateError('engine_unavailable', `engine ${this.url} ended the stream before the request finished`);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.inflight.delete(ctl);
      // Aborted by the caller, or the caller stopped reading (a stop string matched): the
      // dropped connection is SGLang's abort signal. A finished stream's rest ([DONE], the
      // end of the body) is read in the background, so its connection is kept for reuse.
      if (!finished) {
        ctl.abort();
        this.postAbort(req.requestId);
      } else if (res && !res.complete) {
        void res.drain();
      }
    }
  }

  private frame(data: string): JsonObject {
    let frame: unknown;
    try {
      frame = JSON.parse(data);
    } catch {
      throw new KvgateError('engine_error', `engine ${this.url} sent a malformed stream frame: ${data.slice(0, 200)}`);
    }
    if (!isJsonObject(frame)) throw new KvgateError('engine_error', `engine ${this.url} sent a non-object stream frame`);
    if (frame['error'] !== undefined) throw new KvgateError('engine_error', `engine ${this.url}: ${engineErrorMessage(frame)}`);
    return frame;
  }

  // Fire and forget: the engine treats unknown rids as a no-op.
  private postAbort(rid: string): void {
    fetch(`${this.url}/abort_request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...this.auth },
      body: JSON.stringify({ rid }),
      signal: AbortSignal.timeout(this.controlTimeoutMs),
    })
      .then((r) => r.body?.cancel())
      .catch(() => undefined);
  }

  async getJson(path: string): Promise<{ status: number; body: unknown }> {
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, { headers: this.auth, signal: AbortSignal.timeout(this.controlTimeoutMs) });
    } catch (err) {
      throw unreachable(this.url, err);
    }
    const text = await res.text();
    try {
      return { status: res.status, body: JSON.parse(text) };
    } catch {
      return { status: res.status, body: text };
    }
  }

  // GET /health (or /health_generate): 200 means the engine accepts requests.
  async healthy(generate = false): Promise<boolean> {
    try {
      return (await this.getJson(generate ? '/health_generate' : '/health')).status === 200;
    } catch {
      return false;
    }
  }

  // The engine's model card (model_card.ts), for an engine kvgate did not start.
  modelCard(): Promise<ModelCard> {
    return readModelCard((path) => this.getJson(path), { advertiseHost: new URL(this.url).hostname, migrationLimit: 0, engineUrl: this.url });
  }

  async close(): Promise<void> {
    for (const ctl of this.inflight) ctl.abort();
    this.inflight.clear();
    await this.pool.close();
  }
}
