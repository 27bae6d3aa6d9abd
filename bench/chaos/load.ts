// The chaos runner's load and checks, over HTTP only, so they work against any kvgate
// deployment: streaming completions with ignore_eos (the answer must be exactly max_tokens
// tokens, finish_reason 'length', usage counted once), each bounded by a deadline, and the
// gauges of /metrics that must return to zero once the load is gone.

export interface StreamResult {
  ok: boolean;
  // The response id (chatcmpl-/cmpl-<request id>), once a chunk arrived.
  id: string | null;
  // A failure: the OpenAI error the stream carried, or what was malformed.
  error?: string;
  // Whether the failure was a well-formed OpenAI error (in the stream or as the response).
  cleanError?: boolean;
  ttftMs: number | null;
  e2eMs: number;
  completionTokens: number | null;
}

export interface StreamSpec {
  url: string; // frontend base URL
  model: string;
  prompt: string;
  maxTokens: number;
  deadlineMs: number;
  // Counts output tokens from the text (the mocker's words are one token each); null: trust usage.
  countTokens?: (text: string) => number;
}

// One streaming completion, checked: every event well formed, text, one finish, usage.
export async function streamOnce(s: StreamSpec): Promise<StreamResult> {
  const t0 = performance.now();
  let ttftMs: number | null = null;
  let id: string | null = null;
  const fail = (error: string, cleanError = false): StreamResult => ({ ok: false, id, error, cleanError, ttftMs, e2eMs: performance.now() - t0, completionTokens: null });
  let res: Response;
  try {
    res = await fetch(`${s.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: s.model, prompt: s.prompt, max_tokens: s.maxTokens, ignore_eos: true, stream: true, stream_options: { include_usage: true } }),
      signal: AbortSignal.timeout(s.deadlineMs),
    });
  } catch (err) {
    return fail(`request failed: ${(err as Error).message}`);
  }
  if (res.status !== 200) {
    const body = (await res.json().catch(() => null)) as { error?: { message?: string } } | null;
    return fail(`HTTP ${res.status}: ${body?.error?.message ?? 'no OpenAI error body'}`, typeof body?.error?.message === 'string');
  }
  let text = '';
  let finish: string | null = null;
  let usage: { prompt_tokens: number; completion_tokens: number } | null = null;
  let done = false;
  let buf = '';
  try {
    const decoder = new TextDecoder();
    for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(bytes, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        if (!event.startsWith('data: ')) return fail(`malformed event: ${event.slice(0, 100)}`);
        const data = event.slice(6);
        if (done) return fail('data after [DONE]');
        if (data === '[DONE]') {
          done = true;
          continue;
        }
        const chunk = JSON.parse(data) as { id?: string; error?: { message?: string }; choices?: { text?: string; finish_reason?: string | null }[]; usage?: typeof usage };
        id ??= chunk.id ?? null;
        if (chunk.error) return fail(`error in stream: ${chunk.error.message}`, typeof chunk.error.message === 'string');
        if (chunk.usage) {
          if (usage) return fail('usage sent twice');
          usage = chunk.usage;
        }
        for (const c of chunk.choices ?? []) {
          if (finish) return fail('text after the finish reason');
          if (c.text) {
            ttftMs ??= performance.now() - t0;
            text += c.text;
          }
          if (c.finish_reason) finish = c.finish_reason;
        }
      }
    }
  } catch (err) {
    return fail(`stream broke: ${(err as Error).message}`);
  }
  if (!done) return fail('stream ended without [DONE]');
  if (finish !== 'length') return fail(`finish_reason ${finish}, expected length`);
  if (!usage || usage.completion_tokens !== s.maxTokens) return fail(`usage.completion_tokens ${usage?.completion_tokens}, expected ${s.maxTokens}`);
  const counted = s.countTokens?.(text);
  if (counted !== undefined && counted !== s.maxTokens) return fail(`the text holds ${counted} tokens, expected ${s.maxTokens}`);
  return { ok: true, id, ttftMs, e2eMs: performance.now() - t0, completionTokens: usage.completion_tokens };
}

// The mocker's output is words with a leading space, one token each.
export const mockerTokens = (text: string): number => text.split(' ').length - 1;

// /metrics values summed over labels, for the given metric names (absent: 0).
export async function metricSums(url: string, names: readonly string[]): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const out: Record<string, number> = {};
  for (const n of names) {
    out[n] = 0;
    for (const m of text.matchAll(new RegExp(`^${n}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))) out[n] += Number(m[1]);
  }
  return out;
}

// Every gauge of a request in flight, which must be zero once the load is gone.
export const ACTIVE_GAUGES = [
  'kvgate_frontend_inflight_requests',
  'kvgate_router_worker_active_requests',
  'kvgate_router_worker_active_blocks',
  'kvgate_router_worker_prefill_tokens',
] as const;

// Migrations by cause, from /metrics.
export async function migrationsByCause(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^kvgate_router_migrations_total\{[^}]*cause="([^"]+)"[^}]*\} (\S+)$/gm)) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
  return out;
}
