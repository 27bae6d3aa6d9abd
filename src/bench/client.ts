// One streaming request to the target, timed: the three request formats (OpenAI completions,
// OpenAI chat, SGLang /generate) over one undici connection pool, the server-sent events
// parsed as they arrive, and every way a response can go wrong reduced to an error kind.

import { Pool, errors as undiciErrors } from 'undici';

export type Api = 'openai-completions' | 'openai-chat' | 'sglang-generate';

export interface TargetOptions {
  url: string;
  api: Api;
  model?: string;
  apiKey?: string;
  connections: number;
  timeoutMs: number;
  // Send ignore_eos and hold the server to the requested output length.
  checkOutputLength: boolean;
}

export interface Outcome {
  error: { kind: string; message: string } | null;
  ttftMs: number | null;
  e2eMs: number;
  itlMs: number[]; // gaps between chunks that carried output
  outputTokens: number;
  promptTokens: number | null;
  cachedTokens: number | null; // null when the server does not report it
  outputText: string;
  outputIds: number[] | null; // SGLang /generate returns them; OpenAI APIs do not
}

const PATHS: Record<Api, string> = {
  'openai-completions': '/v1/completions',
  'openai-chat': '/v1/chat/completions',
  'sglang-generate': '/generate',
};

class Failure extends Error {
  constructor(
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}

// What a transport error was, for the errors-by-kind table.
function transportKind(err: unknown): string {
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) return 'timeout';
  const code = (err as { code?: string }).code ?? '';
  if (code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EHOSTUNREACH' || code === 'UND_ERR_CONNECT_TIMEOUT') return 'connect';
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE') return 'connection_reset';
  return 'transport';
}

export class Target {
  readonly api: Api;
  private readonly pool: Pool;
  private readonly prefix: string;
  private model: string | undefined;

  constructor(private readonly o: TargetOptions) {
    const u = new URL(o.url);
    this.api = o.api;
    this.prefix = u.pathname.replace(/\/+$/, '');
    this.model = o.model;
    this.pool = new Pool(u.origin, { connections: o.connections, headersTimeout: o.timeoutMs, bodyTimeout: o.timeoutMs, keepAliveTimeout: 30_000 });
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = { 'content-type': 'application/json', accept: 'text/event-stream' };
    if (this.o.apiKey) h['authorization'] = `Bearer ${this.o.apiKey}`;
    return h;
  }

  // OpenAI requests need a model name: the one given, else the first the server lists.
  async resolveModel(): Promise<string | undefined> {
    if (this.api === 'sglang-generate' || this.model) return this.model;
    try {
      const r = await this.pool.request({ path: `${this.prefix}/v1/models`, method: 'GET', headers: this.headers() });
      const body = (await r.body.json()) as { data?: Array<{ id?: string }> };
      this.model = r.statusCode === 200 ? body.data?.[0]?.id : undefined;
    } catch {
      this.model = undefined;
    }
    this.model ??= 'default';
    return this.model;
  }

  private body(prompt: readonly number[] | string, outputLen: number): unknown {
    const ignoreEos = this.o.checkOutputLength ? { ignore_eos: true } : {};
    switch (this.api) {
      case 'openai-completions':
        return { model: this.model, prompt, max_tokens: outputLen, temperature: 0, stream: true, stream_options: { include_usage: true }, ...ignoreEos };
      case 'openai-chat':
        if (typeof prompt !== 'string') throw new Error('chat prompts are text');
        return { model: this.model, messages: [{ role: 'user', content: prompt }], max_tokens: outputLen, temperature: 0, stream: true, stream_options: { include_usage: true }, ...ignoreEos };
      case 'sglang-generate':
        return {
          ...(typeof prompt === 'string' ? { text: prompt } : { input_ids: prompt }),
          sampling_params: { max_new_tokens: outputLen, temperature: 0, ...ignoreEos },
          stream: true,
        };
    }
  }

  async send(prompt: readonly number[] | string, outputLen: number): Promise<Outcome> {
    const out: Outcome = { error: null, ttftMs: null, e2eMs: 0, itlMs: [], outputTokens: 0, promptTokens: null, cachedTokens: null, outputText: '', outputIds: null };
    const t0 = performance.now();
    let last = t0;
    let events = 0;
    const tokenEvent = () => {
      const now = performance.now();
      if (out.ttftMs === null) out.ttftMs = now - t0;
      else out.itlMs.push(now - last);
      last = now;
      events++;
    };
    let reported: number | null = null; // completion tokens the server says it sent
    try {
      const r = await this.pool.request({ path: this.prefix + PATHS[this.api], method: 'POST', headers: this.headers(), body: JSON.stringify(this.body(prompt, outputLen)) });
      if (r.statusCode !== 200) {
        const text = await r.body.text();
        throw new Failure(`http_${r.statusCode}`, text.slice(0, 300));
      }
      const decoder = new TextDecoder();
      let buf = '';
      let done = false;
      const onData = (data: string) => {
        if (data === '[DONE]') {
          done = true;
          return;
        }
        if (done) throw new Failure('malformed', 'data after [DONE]');
        let obj: Record<string, unknown>;
        try {
          obj = JSON.parse(data) as Record<string, unknown>;
        } catch {
          throw new Failure('malformed', `not JSON: ${data.slice(0, 120)}`);
        }
        if (obj['error'] !== undefined) throw new Failure('stream_error', JSON.stringify(obj['error']).slice(0, 300));
        if (this.api === 'sglang-generate') reported = this.onGenerateChunk(obj, out, tokenEvent, reported);
        else reported = this.onOpenAIChunk(obj, out, tokenEvent) ?? reported;
      };
      for await (const chunk of r.body) {
        buf += decoder.decode(chunk as Buffer, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).replace(/\r$/, '');
          buf = buf.slice(nl + 1);
          if (line.startsWith('data:')) onData(line.slice(5).trim());
        }
      }
      if (!done) throw new Failure('truncated_stream', 'the stream ended without data: [DONE]');
      out.outputTokens = reported ?? events;
      if (events === 0) throw new Failure('empty_output', 'no output chunk');
      if (this.o.checkOutputLength && out.outputTokens !== outputLen) throw new Failure('output_length', `asked for ${outputLen} tokens with ignore_eos, got ${out.outputTokens}`);
    } catch (err) {
      out.error = err instanceof Failure ? { kind: err.kind, message: err.message } : { kind: transportKind(err), message: (err as Error).message };
    }
    out.e2eMs = performance.now() - t0;
    return out;
  }

  // Returns usage.completion_tokens when this chunk reports usage.
  private onOpenAIChunk(obj: Record<string, unknown>, out: Outcome, tokenEvent: () => void): number | null {
    const choices = obj['choices'];
    if (!Array.isArray(choices)) throw new Failure('malformed', 'a chunk without choices');
    const c = choices[0] as { text?: unknown; delta?: { content?: unknown } } | undefined;
    const piece = this.api === 'openai-chat' ? c?.delta?.content : c?.text;
    if (typeof piece === 'string' && piece.length > 0) {
      tokenEvent();
      out.outputText += piece;
    }
    const usage = obj['usage'] as { prompt_tokens?: number; completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } } | null | undefined;
    if (!usage) return null;
    out.promptTokens = usage.prompt_tokens ?? null;
    out.cachedTokens = usage.prompt_tokens_details?.cached_tokens ?? null;
    return usage.completion_tokens ?? null;
  }

  // SGLang streams cumulative output_ids/text by default, disjoint pieces with
  // --incremental-streaming-output; meta_info.completion_tokens tells which.
  private onGenerateChunk(obj: Record<string, unknown>, out: Outcome, tokenEvent: () => void, before: number | null): number | null {
    const meta = obj['meta_info'] as { completion_tokens?: number; prompt_tokens?: number; cached_tokens?: number } | undefined;
    if (!meta || typeof meta !== 'object') throw new Failure('malformed', 'a /generate chunk without meta_info');
    const total = meta.completion_tokens ?? null;
    const ids = Array.isArray(obj['output_ids']) ? (obj['output_ids'] as number[]) : null;
    const cumulative = ids !== null && total !== null && ids.length === total;
    if (ids) out.outputIds = cumulative ? ids.slice() : (out.outputIds ?? []).concat(ids);
    if (typeof obj['text'] === 'string') out.outputText = cumulative ? obj['text'] : out.outputText + obj['text'];
    if (total === null ? (ids?.length ?? 0) > 0 : total > (before ?? 0)) tokenEvent();
    out.promptTokens = meta.prompt_tokens ?? out.promptTokens;
    out.cachedTokens = meta.cached_tokens ?? out.cachedTokens;
    return total ?? before;
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}
