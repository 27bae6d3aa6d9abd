// Builders of OpenAI response bodies and stream chunks (pure).

import type { Usage } from '../engine/client.js';
import type {
  ChatCompletionChunkJson,
  ChatCompletionJson,
  CompletionJson,
  OpenAIFinishReason,
  UsageJson,
} from './types.js';
import type { ChatLogprobsJson, CompletionLogprobsJson } from './logprobs.js';

export interface ResponseMeta {
  id: string; // "chatcmpl-..." or "cmpl-..."
  created: number; // unix seconds
  model: string;
}

export function usageJson(u: Usage): UsageJson {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    prompt_tokens_details: { cached_tokens: u.cachedTokens },
  };
}

export function chatCompletion(m: ResponseMeta, content: string, finish: OpenAIFinishReason, usage: Usage, logprobs: ChatLogprobsJson | null = null): ChatCompletionJson {
  return {
    id: m.id,
    object: 'chat.completion',
    created: m.created,
    model: m.model,
    choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs, finish_reason: finish }],
    usage: usageJson(usage),
  };
}

// With stream_options.include_usage every chunk carries "usage": null and a last chunk
// with no choices carries the usage (OpenAI's convention).
export function chatChunk(
  m: ResponseMeta,
  delta: { role?: 'assistant'; content?: string },
  finish: OpenAIFinishReason | null,
  includeUsage: boolean,
  logprobs: ChatLogprobsJson | null = null,
): ChatCompletionChunkJson {
  const c: ChatCompletionChunkJson = {
    id: m.id,
    object: 'chat.completion.chunk',
    created: m.created,
    model: m.model,
    choices: [{ index: 0, delta, logprobs, finish_reason: finish }],
  };
  if (includeUsage) c.usage = null;
  return c;
}

export function chatUsageChunk(m: ResponseMeta, usage: Usage): ChatCompletionChunkJson {
  return { id: m.id, object: 'chat.completion.chunk', created: m.created, model: m.model, choices: [], usage: usageJson(usage) };
}

export function completion(m: ResponseMeta, text: string, finish: OpenAIFinishReason, usage: Usage, logprobs: CompletionLogprobsJson | null = null): CompletionJson {
  return {
    id: m.id,
    object: 'text_completion',
    created: m.created,
    model: m.model,
    choices: [{ index: 0, text, logprobs, finish_reason: finish }],
    usage: usageJson(usage),
  };
}

export function completionChunk(
  m: ResponseMeta,
  text: string,
  finish: OpenAIFinishReason | null,
  includeUsage: boolean,
  logprobs: CompletionLogprobsJson | null = null,
): CompletionJson {
  const c: CompletionJson = {
    id: m.id,
    object: 'text_completion',
    created: m.created,
    model: m.model,
    choices: [{ index: 0, text, logprobs, finish_reason: finish }],
  };
  if (includeUsage) c.usage = null;
  return c;
}

export function completionUsageChunk(m: ResponseMeta, usage: Usage): CompletionJson {
  return { id: m.id, object: 'text_completion', created: m.created, model: m.model, choices: [], usage: usageJson(usage) };
}

export function sseEvent(body: unknown): string {
  return `data: ${JSON.stringify(body)}\n\n`;
}

export const SSE_DONE = 'data: [DONE]\n\n';

// The SSE event of a text delta, for every delta of one response: the event is built once
// around a marker text and split there, so each delta costs one JSON string escape and a
// concatenation instead of building and serializing the whole chunk. The marker is found
// from the end: the text field comes after the id and the model name.
const TEXT_MARKER = '\u0000kvgate-text\u0000';

export function textEventFormat(kind: 'chat' | 'completion', m: ResponseMeta, includeUsage: boolean): (text: string) => string {
  const event = sseEvent(kind === 'chat' ? chatChunk(m, { content: TEXT_MARKER }, null, includeUsage) : completionChunk(m, TEXT_MARKER, null, includeUsage));
  const quoted = JSON.stringify(TEXT_MARKER);
  const at = event.lastIndexOf(quoted);
  const prefix = event.slice(0, at);
  const suffix = event.slice(at + quoted.length);
  return (text) => prefix + JSON.stringify(text) + suffix;
}
