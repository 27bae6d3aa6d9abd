// Validation of OpenAI request bodies (already JSON-parsed) into the normalised requests
// of ./types.ts. Pure. Every problem is a KvgateError naming the offending parameter;
// parameters kvgate cannot honour are rejected rather than silently ignored. Unknown
// fields are ignored, as OpenAI-compatible servers do (clients send many extras).

import { KvgateError } from '../errors.js';
import { isJsonObject, type JsonObject } from '../json.js';
import type { TemplateMessage } from '../preprocess/chat_template.js';
import type { ChatRequest, CompletionRequest, GenerationParams } from './types.js';

const MAX_STOP_STRINGS = 16;
// Bounds the stop matcher's work per chunk (it holds back up to this much text).
const MAX_STOP_LENGTH = 1000;

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

function wrongType(param: string, expected: string, v: unknown): never {
  throw new KvgateError('invalid_type', `'${param}' must be ${expected}, got ${typeName(v)}`, param);
}

function unsupported(param: string, why: string): never {
  throw new KvgateError('unsupported_parameter', `'${param}' is not supported: ${why}`, param);
}

function outOfRange(param: string, range: string, v: unknown): never {
  throw new KvgateError('invalid_request', `'${param}' must be ${range}, got ${JSON.stringify(v)}`, param);
}

// Absent and null both mean "not given" (OpenAI clients send explicit nulls).
function given(body: JsonObject, key: string): boolean {
  return body[key] !== undefined && body[key] !== null;
}

function str(body: JsonObject, key: string): string | undefined {
  if (!given(body, key)) return undefined;
  const v = body[key];
  return typeof v === 'string' ? v : wrongType(key, 'a string', v);
}

function bool(body: JsonObject, key: string): boolean | undefined {
  if (!given(body, key)) return undefined;
  const v = body[key];
  return typeof v === 'boolean' ? v : wrongType(key, 'a boolean', v);
}

function num(body: JsonObject, key: string, min: number, max: number, range: string): number | undefined {
  if (!given(body, key)) return undefined;
  const v = body[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) return wrongType(key, 'a number', v);
  if (v < min || v > max) outOfRange(key, range, v);
  return v;
}

function int(body: JsonObject, key: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (!given(body, key)) return undefined;
  const v = body[key];
  if (typeof v !== 'number' || !Number.isInteger(v)) return wrongType(key, 'an integer', v);
  if (v < min || v > max) outOfRange(key, max === Number.MAX_SAFE_INTEGER ? `an integer from ${min} to 2^53-1` : `between ${min} and ${max}`, v);
  return v;
}

function tokenIdList(v: unknown, param: string): number[] {
  if (!Array.isArray(v)) return wrongType(param, 'an array of token ids', v);
  for (const x of v) {
    if (typeof x !== 'number' || !Number.isInteger(x) || x < 0 || x > 0xffffffff) {
      throw new KvgateError('invalid_type', `'${param}' must contain non-negative integer token ids, got ${JSON.stringify(x)}`, param);
    }
  }
  return v as number[];
}

function requireObject(body: unknown): JsonObject {
  if (!isJsonObject(body)) throw new KvgateError('invalid_request', `the request body must be a JSON object, got ${typeName(body)}`);
  return body;
}

function model(body: JsonObject): string {
  if (!given(body, 'model')) throw new KvgateError('missing_field', "'model' is required", 'model');
  const m = str(body, 'model')!;
  if (m.length === 0) throw new KvgateError('invalid_request', "'model' must not be empty", 'model');
  return m;
}

function stopStrings(body: JsonObject): string[] {
  if (!given(body, 'stop')) return [];
  const v = body['stop'];
  const list = typeof v === 'string' ? [v] : Array.isArray(v) ? v : wrongType('stop', 'a string or an array of strings', v);
  list.forEach((s, i) => {
    if (typeof s !== 'string') wrongType(`stop[${i}]`, 'a string', s);
  });
  if (list.length > MAX_STOP_STRINGS) outOfRange('stop', `at most ${MAX_STOP_STRINGS} strings`, list.length);
  if ((list as string[]).some((s) => s.length > MAX_STOP_LENGTH)) outOfRange('stop', `strings of at most ${MAX_STOP_LENGTH} characters`, 'a longer string');
  return (list as string[]).filter((s) => s.length > 0);
}

// Parameters that change what a client gets back and that kvgate does not implement.
function rejectUnsupported(body: JsonObject): void {
  const n = int(body, 'n', 1);
  if (n !== undefined && n !== 1) unsupported('n', 'only one choice per request (n=1)');
  if (isJsonObject(body['logit_bias']) && Object.keys(body['logit_bias']).length > 0) unsupported('logit_bias', 'logit bias is not passed to engines');
  const best = int(body, 'best_of', 1);
  if (best !== undefined && best !== 1) unsupported('best_of', 'only best_of=1');
  if (given(body, 'reasoning_effort')) unsupported('reasoning_effort', 'kvgate does not budget reasoning; Qwen3-style models take chat_template_kwargs.enable_thinking');
  if (given(body, 'verbosity')) unsupported('verbosity', 'the answer length is not steered; use max_tokens');
}

function generationParams(body: JsonObject): GenerationParams {
  rejectUnsupported(body);
  const stream = bool(body, 'stream') ?? false;
  let includeUsage = false;
  if (given(body, 'stream_options')) {
    if (!stream) throw new KvgateError('invalid_request', "'stream_options' is only allowed when 'stream' is true", 'stream_options');
    const so = body['stream_options'];
    if (!isJsonObject(so)) wrongType('stream_options', 'an object', so);
    includeUsage = bool(so, 'include_usage') ?? false;
  }
  const completionTokens = int(body, 'max_completion_tokens', 1);
  const maxTokens = completionTokens ?? int(body, 'max_tokens', 1) ?? null;
  let topK = int(body, 'top_k', -1);
  if (topK === 0 || topK === -1) topK = undefined; // "disabled" in OpenAI-compatible servers
  const p: GenerationParams = {
    model: model(body),
    stream,
    includeUsage,
    maxTokens,
    maxTokensParam: completionTokens !== undefined ? 'max_completion_tokens' : 'max_tokens',
    stop: stopStrings(body),
    stopTokenIds: given(body, 'stop_token_ids') ? tokenIdList(body['stop_token_ids'], 'stop_token_ids') : [],
    temperature: num(body, 'temperature', 0, 2, 'between 0 and 2'),
    topP: num(body, 'top_p', Number.MIN_VALUE, 1, 'in (0, 1]'),
    topK,
    minP: num(body, 'min_p', 0, 1, 'between 0 and 1'),
    seed: int(body, 'seed', Number.MIN_SAFE_INTEGER),
    frequencyPenalty: num(body, 'frequency_penalty', -2, 2, 'between -2 and 2'),
    presencePenalty: num(body, 'presence_penalty', -2, 2, 'between -2 and 2'),
    repetitionPenalty: num(body, 'repetition_penalty', Number.MIN_VALUE, 2, 'in (0, 2]'),
    minTokens: int(body, 'min_tokens', 0),
    ignoreEos: bool(body, 'ignore_eos') ?? false,
    skipSpecialTokens: bool(body, 'skip_special_tokens') ?? true,
  };
  if (p.minTokens !== undefined && p.maxTokens !== null && p.minTokens > p.maxTokens) {
    outOfRange('min_tokens', `at most max_tokens (${p.maxTokens})`, p.minTokens);
  }
  for (const k of Object.keys(p) as (keyof GenerationParams)[]) if (p[k] === undefined) delete p[k];
  return p;
}

// Chat's logprobs (a boolean) and top_logprobs (0-20, only with logprobs: true), as OpenAI.
function chatLogprobs(body: JsonObject): { logprobs?: { top: number } } {
  const on = body['logprobs'] === null ? false : (bool(body, 'logprobs') ?? false);
  const top = body['top_logprobs'] === null ? undefined : int(body, 'top_logprobs', 0, 20);
  if (top !== undefined && !on) throw new KvgateError('invalid_request', "'top_logprobs' needs 'logprobs': true", 'top_logprobs');
  return on ? { logprobs: { top: top ?? 0 } } : {};
}

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);

// OpenAI content: a string, or an array of parts of which kvgate takes the text ones.
function messageContent(v: unknown, param: string, role: string): string {
  if (typeof v === 'string') return v;
  if (v === undefined || v === null) {
    if (role === 'assistant') return '';
    throw new KvgateError('missing_field', `'${param}' is required for ${role} messages`, param);
  }
  if (!Array.isArray(v)) return wrongType(param, 'a string or an array of content parts', v);
  let text = '';
  v.forEach((part, j) => {
    const pp = `${param}[${j}]`;
    if (!isJsonObject(part)) wrongType(pp, 'an object', part);
    if (part['type'] !== 'text') {
      if (typeof part['type'] !== 'string') wrongType(`${pp}.type`, 'a string', part['type']);
      unsupported(`${pp}.type`, `content parts of type '${part['type']}' (only text) are not supported`);
    }
    if (typeof part['text'] !== 'string') wrongType(`${pp}.text`, 'a string', part['text']);
    text += part['text'];
  });
  return text;
}

// One chat message, its content flattened to text (also the mocker's OpenAI routes).
export function message(v: unknown, i: number): TemplateMessage {
  const param = `messages[${i}]`;
  if (!isJsonObject(v)) return wrongType(param, 'an object', v);
  const role = v['role'];
  if (typeof role !== 'string') {
    if (role === undefined) throw new KvgateError('missing_field', `'${param}.role' is required`, `${param}.role`);
    return wrongType(`${param}.role`, 'a string', role);
  }
  if (!ROLES.has(role)) {
    throw new KvgateError('invalid_request', `'${param}.role' must be one of ${[...ROLES].join(', ')}, got '${role}'`, `${param}.role`);
  }
  const m: TemplateMessage = {
    // Templates know system, not OpenAI's newer name for it.
    role: role === 'developer' ? 'system' : role,
    content: messageContent(v['content'], `${param}.content`, role),
  };
  const name = str(v, 'name');
  if (name !== undefined) m.name = name;
  if (given(v, 'tool_calls')) {
    if (!Array.isArray(v['tool_calls'])) wrongType(`${param}.tool_calls`, 'an array', v['tool_calls']);
    m.tool_calls = v['tool_calls'];
  }
  const toolCallId = str(v, 'tool_call_id');
  if (toolCallId !== undefined) m.tool_call_id = toolCallId;
  const reasoning = str(v, 'reasoning_content');
  if (reasoning !== undefined) m.reasoning_content = reasoning;
  return m;
}

function tools(body: JsonObject): unknown[] | undefined {
  if (!given(body, 'tools')) return undefined;
  const v = body['tools'];
  if (!Array.isArray(v)) return wrongType('tools', 'an array', v);
  v.forEach((t, i) => {
    if (!isJsonObject(t) || t['type'] !== 'function' || !isJsonObject(t['function']) || typeof t['function']['name'] !== 'string') {
      throw new KvgateError('invalid_request', `'tools[${i}]' must be {"type":"function","function":{"name":...}}`, `tools[${i}]`);
    }
  });
  return v;
}

export function validateChatRequest(raw: unknown): ChatRequest {
  const body = requireObject(raw);
  if (!given(body, 'messages')) throw new KvgateError('missing_field', "'messages' is required", 'messages');
  const msgs = body['messages'];
  if (!Array.isArray(msgs)) return wrongType('messages', 'an array', msgs);
  if (msgs.length === 0) throw new KvgateError('invalid_request', "'messages' must not be empty", 'messages');
  const params = generationParams(body);
  const rf = body['response_format'];
  if (given(body, 'response_format')) {
    if (!isJsonObject(rf)) wrongType('response_format', 'an object', rf);
    if (rf['type'] !== 'text') unsupported('response_format', `structured output ('${String(rf['type'])}') is not supported by kvgate`);
  }
  const toolChoice = body['tool_choice'];
  if (given(body, 'tool_choice') && toolChoice !== 'none' && toolChoice !== 'auto') {
    unsupported('tool_choice', "only 'auto' and 'none': kvgate does not force or parse tool calls");
  }
  if (body['continue_final_message'] === true) unsupported('continue_final_message', 'the last message is always followed by a new turn');
  if (given(body, 'audio')) unsupported('audio', 'audio output is not supported by kvgate');
  const modalities = body['modalities'];
  if (given(body, 'modalities') && !(Array.isArray(modalities) && modalities.every((m) => m === 'text'))) unsupported('modalities', "only ['text']");
  // The deprecated function-calling API: its answers carry message.function_call, which
  // kvgate does not parse out of the text, so accepting it would answer differently.
  if (given(body, 'functions')) unsupported('functions', "the deprecated function-calling API; send 'tools' (tool calls come back as text)");
  if (given(body, 'function_call') && body['function_call'] !== 'none') unsupported('function_call', "the deprecated function-calling API; send 'tools' and 'tool_choice'");
  if (given(body, 'web_search_options')) unsupported('web_search_options', 'kvgate does not search the web');
  let templateKwargs: Record<string, unknown> = {};
  if (given(body, 'chat_template_kwargs')) {
    const k = body['chat_template_kwargs'];
    if (!isJsonObject(k)) wrongType('chat_template_kwargs', 'an object', k);
    templateKwargs = k;
  }
  const req: ChatRequest = {
    kind: 'chat',
    ...params,
    ...chatLogprobs(body),
    messages: msgs.map(message),
    addGenerationPrompt: bool(body, 'add_generation_prompt') ?? true,
    templateKwargs,
  };
  const t = tools(body);
  if (t !== undefined) req.tools = t;
  return req;
}

// prompt: a string or token ids, or a one-element array of either (batches of several
// prompts are rejected: send one request per prompt).
function completionPrompt(body: JsonObject): CompletionRequest['prompt'] {
  if (!given(body, 'prompt')) throw new KvgateError('missing_field', "'prompt' is required", 'prompt');
  let v = body['prompt'];
  if (Array.isArray(v) && v.length > 0 && (typeof v[0] === 'string' || Array.isArray(v[0]))) {
    if (v.length > 1) unsupported('prompt', `batches of ${v.length} prompts; send one prompt per request`);
    v = v[0];
  }
  if (typeof v === 'string') {
    if (v.length === 0) throw new KvgateError('invalid_request', "'prompt' must not be empty", 'prompt');
    return { text: v };
  }
  if (Array.isArray(v)) {
    if (v.length === 0) throw new KvgateError('invalid_request', "'prompt' must not be empty", 'prompt');
    return { tokenIds: tokenIdList(v, 'prompt') };
  }
  return wrongType('prompt', 'a string or an array of token ids', v);
}

export function validateCompletionRequest(raw: unknown): CompletionRequest {
  const body = requireObject(raw);
  const prompt = completionPrompt(body);
  const params = generationParams(body);
  if (typeof body['suffix'] === 'string' && body['suffix'].length > 0) unsupported('suffix', 'insertion is not supported by kvgate');
  // Completions' logprobs is the count of alternatives per token (OpenAI: at most 5); null: none.
  const n = body['logprobs'] === null ? undefined : int(body, 'logprobs', 0, 5);
  const echo = body['echo'] === null ? false : (bool(body, 'echo') ?? false);
  return { kind: 'completion', ...params, prompt, echo, ...(n !== undefined ? { logprobs: { top: n } } : {}) };
}
