// An EngineClient over SGLang's native HTTP API (reference/sglang.md §1.2-1.7): POST
// /generate with `input_ids`, always streamed (SSE), whether the engine streams
// cumulative output_ids (the default) or disjoint ones (--incremental-streaming-output);
// both come out as disjoint chunks. Aborting the signal drops the connection, which is
// SGLang's abort signal, and also posts /abort_request in case the drop is missed.
// Also reads the engine's model card.

import type { ModelCard } from '../discovery/model_card.js';
import { KvgateError } from '../errors.js';
import { isJsonObject, type JsonObject } from '../json.js';
import { readModelCard } from '../worker/model_card.js';
import type { DirectEngine, FinishReason, GenerateChunk, GenerateRequest, SamplingOptions, Usage } from './client.js';

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
  if (!req.bootstrap) return JSON.stringify(body);
  body['bootstrap_host'] = req.bootstrap.host;
  body['bootstrap_port'] = req.bootstrap.port;
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
// (--incremental-streaming-output) they are the new ids only.
export class OutputIdsDelta {
  private seen: number[] = [];

  next(frame: JsonObject): GenerateChunk | null {
    const meta = isJsonObject(frame['meta_info']) ? frame['meta_info'] : {};
    const ids = Array.isArray(frame['output_ids']) ? (frame['output_ids'] as number[]) : [];
    const total = meta['completion_tokens'];
    const cumulative =
      typeof total === 'number'
        ? ids.length === total && ids.length >= this.seen.length
        : ids.length > this.seen.length && this.seen.every((id, i) => ids[i] === id);
    const fresh = cumulative ? ids.slice(this.seen.length) : ids;
    this.seen = this.seen.concat(fresh);
    const reason = finishReason(meta['finish_reason']);
    if (reason) return { tokenIds: fresh, finishReason: reason, usage: usageOf(meta, this.seen.length) };
    if (fresh.length === 0) return null;
    return typeof meta['cached_tokens'] === 'number' ? { tokenIds: fresh, cachedTokens: meta['cached_tokens'] } : { tokenIds: fresh };
  }
}

// Splits an SSE byte stream into the payloads of its `data:` fields, one per event.
export async function* sseData(body: AsyncIterable<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let buf = '';
  let data: string[] = [];
  for await (const bytes of body) {
    buf += decoder.decode(bytes, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, '');
      buf = buf.slice(nl + 1);
      if (line === '') {
        if (data.length > 0) yield data.join('\n');
        data = [];
      } else if (line.startsWith('data:')) {
        data.push(line.slice(line[5] === ' ' ? 6 : 5));
      }
    }
  }
  if (data.length > 0) yield data.join('\n');
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
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const why = cause?.code ?? cause?.message ?? (err as Error).message;
  return new KvgateError('engine_error', `engine ${url} unreachable: ${why}`);
}

export interface SglangHttpOptions {
  // Upper bound for the small control requests (/abort_request, /server_info, ...).
  controlTimeoutMs?: number;
}

export class SglangHttpEngine implements DirectEngine {
  readonly url: string;
  private readonly controlTimeoutMs: number;
  private readonly inflight = new Set<AbortController>();

  constructor(url: string, options: SglangHttpOptions = {}) {
    this.url = url.replace(/\/+$/, '');
    this.controlTimeoutMs = options.controlTimeoutMs ?? 5000;
  }

  async *generate(req: GenerateRequest, signal?: AbortSignal): AsyncGenerator<GenerateChunk> {
    const ctl = new AbortController();
    const onAbort = () => ctl.abort(signal?.reason);
    if (signal?.aborted) return;
    signal?.addEventListener('abort', onAbort, { once: true });
    this.inflight.add(ctl);
    let finished = false;
    try {
      let res: Response;
      try {
        res = await fetch(`${this.url}/generate`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
          body: generateBody(req),
          signal: ctl.signal,
        });
      } catch (err) {
        if (ctl.signal.aborted) return;
        throw unreachable(this.url, err);
      }
      if (!res.ok || !res.body) {
        const text = await res.text().catch(() => '');
        let payload: unknown = text;
        try {
          payload = JSON.parse(text);
        } catch {
          /* not JSON: keep the text */
        }
        const code = res.status >= 400 && res.status < 500 ? 'invalid_request' : 'engine_error';
        throw new KvgateError(code, `engine ${this.url} returned ${res.status}: ${engineErrorMessage(payload)}`);
      }
      const delta = new OutputIdsDelta();
      try {
        for await (const data of sseData(res.body)) {
          if (data === '[DONE]') break;
          let frame: unknown;
          try {
            frame = JSON.parse(data);
          } catch {
            throw new KvgateError('engine_error', `engine ${this.url} sent a malformed stream frame: ${data.slice(0, 200)}`);
          }
          if (!isJsonObject(frame)) throw new KvgateError('engine_error', `engine ${this.url} sent a non-object stream frame`);
          if (frame['error'] !== undefined) throw new KvgateError('engine_error', `engine ${this.url}: ${engineErrorMessage(frame)}`);
          const chunk = delta.next(frame);
          if (!chunk || finished) continue;
          if (chunk.finishReason) finished = true;
          yield chunk;
        }
      } catch (err) {
        if (ctl.signal.aborted) return;
        if (err instanceof KvgateError) throw err;
        throw new KvgateError('engine_error', `engine ${this.url} stream broke: ${(err as Error).message}`);
      }
      if (!finished) throw new KvgateError('engine_error', `engine ${this.url} ended the stream before the request finished`);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.inflight.delete(ctl);
      // Aborted by the caller, or the caller stopped reading (a stop string matched).
      if (!finished) {
        ctl.abort();
        this.postAbort(req.requestId);
      }
    }
  }

  // Fire and forget: the engine treats unknown rids as a no-op.
  private postAbort(rid: string): void {
    fetch(`${this.url}/abort_request`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ rid }),
      signal: AbortSignal.timeout(this.controlTimeoutMs),
    })
      .then((r) => r.body?.cancel())
      .catch(() => undefined);
  }

  async getJson(path: string): Promise<{ status: number; body: unknown }> {
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, { signal: AbortSignal.timeout(this.controlTimeoutMs) });
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

  // GET /health: 200 means the engine accepts requests.
  async healthy(): Promise<boolean> {
    try {
      return (await this.getJson('/health')).status === 200;
    } catch {
      return false;
    }
  }

  // The engine's model card (src/worker/model_card.ts), for an engine kvgate did not start.
  modelCard(): Promise<ModelCard> {
    return readModelCard((path) => this.getJson(path), { advertiseHost: new URL(this.url).hostname, migrationLimit: 0 });
  }

  async close(): Promise<void> {
    for (const ctl of this.inflight) ctl.abort();
    this.inflight.clear();
  }
}
