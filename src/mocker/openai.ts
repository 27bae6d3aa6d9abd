// The mocker's OpenAI routes (/v1/chat/completions, /v1/completions), as SGLang serves them
// (entrypoints/openai/serving_chat.py, serving_completions.py; reference/sglang.md §1.6): the
// OpenAI body becomes the /generate request SGLang's serving layer builds, so n, logprobs, batches
// and the bootstrap fields behave exactly as on /generate, and the outputs come back in OpenAI's
// shapes with SGLang's extras (matched_stop, usage.reasoning_tokens, metadata).
//
// Prompts live in the mocker's own token space: a chat is rendered with the chat template (from
// --tokenizer-path when it holds one, else the vendored Qwen3 template), and the text is tokenized
// one id per UTF-8 byte, as /generate does.

import { existsSync } from 'node:fs';
import { KvgateError } from '../errors.js';
import { isJsonObject, type JsonObject } from '../json.js';
import { ChatTemplate, type TemplateMessage } from '../preprocess/chat_template.js';
import { defaultModelDir, readModelFiles } from '../preprocess/model_files.js';
import { message } from '../openai/validate.js';
import { abortError, sendJson, SseWriter, type Exchange } from './http_util.js';
import { formatOutput, type OutputFormat } from './protocol.js';
import type { LogprobView } from './logprobs.js';
import type { EngineRequest, FinishReason, OutputSink } from './request.js';

export type OpenAIKind = 'chat' | 'completion';

// A 400 in SGLang's OpenAI ErrorResponse shape.
export class OpenAIRequestError extends Error {}

export function openAIError(message: string, status = 400): Record<string, unknown> {
  return { object: 'error', message, type: status === 400 ? 'BadRequestError' : 'InternalServerError', param: null, code: status };
}

// What the response needs besides the engine's outputs.
export interface OpenAIPlan {
  kind: OpenAIKind;
  model: string;
  created: number;
  stream: boolean;
  includeUsage: boolean;
  n: number;
  // The /generate body SGLang would build.
  generate: JsonObject;
}

function fail(msg: string): never {
  throw new OpenAIRequestError(msg);
}

function typed<T>(body: JsonObject, key: string, check: (v: unknown) => v is T, what: string): T | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  return check(v) ? v : fail(`${key}: Input should be ${what}`);
}
const isNum = (v: unknown): v is number => typeof v === 'number';
const isInt = (v: unknown): v is number => Number.isInteger(v);
const isBool = (v: unknown): v is boolean => typeof v === 'boolean';
const isStr = (v: unknown): v is string => typeof v === 'string';

// The chat template, read once: --tokenizer-path's, or the vendored Qwen3 one.
const templates = new Map<string, ChatTemplate>();
export function chatTemplate(tokenizerPath: string): ChatTemplate {
  const dir = existsSync(tokenizerPath) ? tokenizerPath : defaultModelDir();
  let t = templates.get(dir);
  if (!t) {
    const files = readModelFiles(dir);
    const special = (k: string) => {
      const v = files.tokenizerConfig[k];
      return typeof v === 'string' ? v : isJsonObject(v) && typeof v['content'] === 'string' ? v['content'] : null;
    };
    if (files.chatTemplate === null) fail(`the tokenizer at ${dir} has no chat template; use /v1/completions or /generate`);
    t = new ChatTemplate(files.chatTemplate, { bos_token: special('bos_token'), eos_token: special('eos_token') });
    templates.set(dir, t);
  }
  return t;
}

// OpenAI body -> SGLang's GenerateReqInput (sampling params named as SGLang names them).
export function planOpenAI(kind: OpenAIKind, body: unknown, defaultModel: string, render: (msgs: TemplateMessage[], addGenerationPrompt: boolean, kwargs: JsonObject, tools: unknown[] | undefined) => string): OpenAIPlan {
  if (!isJsonObject(body)) fail('Input should be a valid dictionary or object to extract fields from');
  const stream = typed(body, 'stream', isBool, 'a valid boolean') ?? false;
  const so = typed(body, 'stream_options', isJsonObject, 'a valid dictionary');
  const n = typed(body, 'n', isInt, 'a valid integer') ?? 1;
  if (n < 1) fail('n: Input should be greater than or equal to 1');
  const gen: JsonObject = {};
  if (kind === 'chat') {
    const msgs = body['messages'];
    if (!Array.isArray(msgs) || msgs.length === 0) fail('messages: Field required (a non-empty list)');
    let messages: TemplateMessage[];
    try {
      messages = msgs.map(message);
    } catch (err) {
      fail((err as Error).message);
    }
    const tools = typed(body, 'tools', Array.isArray, 'a valid list');
    const kwargs = typed(body, 'chat_template_kwargs', isJsonObject, 'a valid dictionary') ?? {};
    const addGen = typed(body, 'add_generation_prompt', isBool, 'a valid boolean') ?? true;
    gen['text'] = render(messages, addGen, kwargs, tools);
  } else {
    const p = body['prompt'];
    if (typeof p === 'string') gen['text'] = p;
    else if (Array.isArray(p) && p.length > 0 && p.every(isStr)) gen['text'] = p.length === 1 ? p[0] : p;
    else if (Array.isArray(p) && p.length > 0 && p.every(isInt)) gen['input_ids'] = p;
    else if (Array.isArray(p) && p.length > 0 && p.every((x) => Array.isArray(x) && x.every(isInt))) gen['input_ids'] = p.length === 1 ? p[0] : p;
    else fail('prompt: Input should be a string, a list of strings, a list of token ids or a list of such lists');
    if (body['echo'] === true) fail('echo is not supported by the kvgate mocker');
  }
  const sp: JsonObject = { n };
  const copy = (from: string, to: string, check: (v: unknown) => boolean, what: string) => {
    const v = typed(body, from, (x): x is unknown => check(x), what);
    if (v !== undefined) sp[to] = v;
  };
  const maxTokens = typed(body, 'max_completion_tokens', isInt, 'a valid integer') ?? typed(body, 'max_tokens', isInt, 'a valid integer');
  if (maxTokens !== undefined) sp['max_new_tokens'] = maxTokens;
  copy('temperature', 'temperature', isNum, 'a valid number');
  copy('top_p', 'top_p', isNum, 'a valid number');
  copy('min_p', 'min_p', isNum, 'a valid number');
  copy('frequency_penalty', 'frequency_penalty', isNum, 'a valid number');
  copy('presence_penalty', 'presence_penalty', isNum, 'a valid number');
  copy('repetition_penalty', 'repetition_penalty', isNum, 'a valid number');
  copy('min_tokens', 'min_new_tokens', isInt, 'a valid integer');
  copy('ignore_eos', 'ignore_eos', isBool, 'a valid boolean');
  copy('skip_special_tokens', 'skip_special_tokens', isBool, 'a valid boolean');
  copy('no_stop_trim', 'no_stop_trim', isBool, 'a valid boolean');
  copy('seed', 'sampling_seed', isInt, 'a valid integer');
  copy('stop_token_ids', 'stop_token_ids', (v) => Array.isArray(v) && v.every(isInt), 'a list of integers');
  copy('stop', 'stop', (v) => isStr(v) || (Array.isArray(v) && v.every(isStr)), 'a string or a list of strings');
  const topK = typed(body, 'top_k', isInt, 'a valid integer');
  if (topK !== undefined) sp['top_k'] = topK === -1 ? 1 << 30 : topK;
  gen['sampling_params'] = sp;
  // Logprobs: chat's logprobs + top_logprobs, completions' logprobs = the top count.
  const lp = body['logprobs'];
  if (kind === 'chat' ? lp === true : typeof lp === 'number') {
    gen['return_logprob'] = true;
    gen['return_text_in_logprobs'] = true;
    gen['top_logprobs_num'] = kind === 'chat' ? (typed(body, 'top_logprobs', isInt, 'a valid integer') ?? 0) : lp;
  } else if (lp !== undefined && lp !== null && lp !== false) {
    fail(`logprobs: Input should be ${kind === 'chat' ? 'a valid boolean' : 'a valid integer'}`);
  }
  gen['stream'] = stream;
  // SGLang's extras pass through as /generate fields.
  for (const k of ['rid', 'bootstrap_host', 'bootstrap_port', 'bootstrap_room', 'routed_dp_rank', 'data_parallel_rank', 'disagg_prefill_dp_rank']) {
    if (body[k] !== undefined) gen[k] = body[k];
  }
  return {
    kind,
    model: typed(body, 'model', isStr, 'a valid string') ?? defaultModel,
    created: Math.floor(Date.now() / 1000),
    stream,
    includeUsage: so?.['include_usage'] === true,
    n,
    generate: gen,
  };
}

type Entry = [number | null, number, string | null];

function finishOf(fr: FinishReason | null): { finish_reason: string | null; matched_stop: number | string | null } {
  if (!fr) return { finish_reason: null, matched_stop: null };
  return { finish_reason: fr.type, matched_stop: fr.type === 'stop' ? fr.matched : null };
}

// OpenAI's logprobs object for output entries [lp, id, text] (and their top lists).
function logprobsJson(kind: OpenAIKind, entries: Entry[], tops: Entry[][] | undefined, textOffset: number): unknown {
  const tok = (e: Entry) => e[2] ?? '';
  if (kind === 'chat') {
    const item = (e: Entry) => ({ token: tok(e), bytes: [...Buffer.from(tok(e))], logprob: e[0] });
    return { content: entries.map((e, i) => ({ ...item(e), top_logprobs: (tops?.[i] ?? []).map(item) })) };
  }
  const offsets: number[] = [];
  let at = textOffset;
  for (const e of entries) {
    offsets.push(at);
    at += tok(e).length;
  }
  return {
    text_offset: offsets,
    token_logprobs: entries.map((e) => e[0]),
    tokens: entries.map(tok),
    top_logprobs: entries.map((_, i) => (tops ? Object.fromEntries(tops[i]!.map((t) => [tok(t), t[0]])) : null)),
  };
}

interface Choice {
  index: number;
  text: string;
  finish: ReturnType<typeof finishOf>;
  logprobs: unknown;
}

// Collects the items of one OpenAI request (n samples, or a list of prompts) and writes the
// response: one JSON body at the end, or OpenAI stream chunks with incremental deltas.
export class OpenAIResponder {
  private readonly choices: (Choice | null)[];
  private readonly sentText: number[];
  private readonly sentLogprobs: number[];
  private readonly roleSent: boolean[];
  private readonly usage = { prompt: 0, completion: 0, cached: 0 };
  private readonly sse: SseWriter;
  private left: number;
  private id = '';

  constructor(
    private readonly ex: Exchange,
    private readonly plan: OpenAIPlan,
    private readonly format: OutputFormat,
    size: number,
  ) {
    this.choices = new Array<Choice | null>(size).fill(null);
    this.sentText = new Array<number>(size).fill(0);
    this.sentLogprobs = new Array<number>(size).fill(0);
    this.roleSent = new Array<boolean>(size).fill(false);
    this.left = size;
    this.sse = new SseWriter(ex);
  }

  item(index: number, logprob: LogprobView | null): OutputSink {
    return { output: (req, finished) => this.output(index, logprob, req, finished) };
  }

  private output(index: number, logprob: LogprobView | null, req: EngineRequest, finished: boolean): void {
    const ex = this.ex;
    if (ex.aborted || ex.done || (!this.plan.stream && !finished)) return;
    if (!this.plan.stream && finished) {
      const err = abortError(req);
      if (err) return sendJson(ex, err.status, openAIError(req.finishReason?.type === 'abort' ? req.finishReason.message : '', err.status));
    }
    const out = formatOutput(req, finished, this.format, performance.now(), logprob) as { text: string; meta_info: Record<string, unknown> };
    const meta = out.meta_info;
    this.id ||= String(meta['id']);
    if (finished) {
      this.left--;
      // Prompt tokens count once per prompt, not once per sample (SGLang's aggregate_token_usage).
      if (index % this.plan.n === 0) this.usage.prompt += req.isl;
      this.usage.completion += req.outputIds.length;
      this.usage.cached += req.cachedTokens;
    }
    const entries = (meta['output_token_logprobs'] as Entry[] | undefined) ?? null;
    const tops = meta['output_top_logprobs'] as Entry[][] | undefined;
    if (!this.plan.stream) {
      this.choices[index] = { index, text: out.text, finish: finishOf(req.finishReason), logprobs: entries ? logprobsJson(this.plan.kind, entries, tops, 0) : null };
      if (this.left === 0) sendJson(ex, 200, this.body());
      return;
    }
    this.streamOutput(index, req, out.text, entries, tops, finished);
  }

  private streamOutput(index: number, req: EngineRequest, text: string, entries: Entry[] | null, tops: Entry[][] | undefined, finished: boolean): void {
    const { kind } = this.plan;
    let chunks = '';
    const delta = text.slice(this.sentText[index]);
    const from = this.sentLogprobs[index]!;
    const lp = entries ? logprobsJson(kind, entries.slice(from), tops?.slice(from), this.sentText[index]!) : null;
    const finish = finished ? finishOf(req.finishReason) : { finish_reason: null, matched_stop: null };
    if (kind === 'chat') {
      if (!this.roleSent[index]) {
        this.roleSent[index] = true;
        chunks += this.chunk({ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null, matched_stop: null });
      }
      if (delta || (entries && entries.length > from)) chunks += this.chunk({ index, delta: { content: delta }, logprobs: lp, finish_reason: null, matched_stop: null });
      if (finished) chunks += this.chunk({ index, delta: {}, logprobs: null, ...finish });
    } else if (delta || finished) {
      chunks += this.chunk({ index, text: delta, logprobs: lp, ...finish });
    }
    this.sentText[index] = text.length;
    this.sentLogprobs[index] = entries?.length ?? 0;
    const last = this.left === 0;
    if (last) {
      if (this.plan.includeUsage) chunks += `data: ${JSON.stringify({ ...this.envelope(true), choices: [], usage: this.usageJson() })}\n\n`;
      chunks += 'data: [DONE]\n\n';
    }
    if (chunks) this.sse.write(chunks, last);
  }

  private envelope(stream: boolean): Record<string, unknown> {
    const object = this.plan.kind === 'chat' ? (stream ? 'chat.completion.chunk' : 'chat.completion') : 'text_completion';
    return { id: this.id, object, created: this.plan.created, model: this.plan.model };
  }

  private chunk(choice: Record<string, unknown>): string {
    return `data: ${JSON.stringify({ ...this.envelope(true), choices: [choice] })}\n\n`;
  }

  private usageJson(): Record<string, unknown> {
    const u = this.usage;
    return {
      prompt_tokens: u.prompt,
      total_tokens: u.prompt + u.completion,
      completion_tokens: u.completion,
      prompt_tokens_details: u.cached > 0 ? { cached_tokens: u.cached } : null,
      reasoning_tokens: 0,
    };
  }

  private body(): Record<string, unknown> {
    const choices = (this.choices as Choice[]).map((c) =>
      this.plan.kind === 'chat'
        ? { index: c.index, message: { role: 'assistant', content: c.text, reasoning_content: null, tool_calls: null }, logprobs: c.logprobs, ...c.finish }
        : { index: c.index, text: c.text, logprobs: c.logprobs, ...c.finish },
    );
    return { ...this.envelope(false), choices, usage: this.usageJson(), metadata: { weight_version: 'default' } };
  }
}

// KvgateErrors from the shared message validator read as the request's fault.
export function asOpenAIError(err: unknown): OpenAIRequestError | null {
  if (err instanceof OpenAIRequestError) return err;
  if (err instanceof KvgateError) return new OpenAIRequestError(err.message);
  return null;
}
