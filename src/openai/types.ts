// OpenAI API shapes: the validated, normalised requests the frontend works with, and the
// response bodies and stream chunks it sends (chat.completion, text_completion, ...).

import type { TemplateMessage } from '../preprocess/chat_template.js';
import type { ChatLogprobsJson, CompletionLogprobsJson } from './logprobs.js';

// Sampling and stopping, common to chat and completions.
export interface GenerationParams {
  model: string;
  stream: boolean;
  includeUsage: boolean;
  // max_completion_tokens ?? max_tokens; null: up to the context length.
  maxTokens: number | null;
  // Which of the two the client sent, to name it in errors.
  maxTokensParam: 'max_tokens' | 'max_completion_tokens';
  stop: string[];
  stopTokenIds: number[];
  temperature?: number;
  topP?: number;
  topK?: number;
  minP?: number;
  seed?: number;
  frequencyPenalty?: number;
  presencePenalty?: number;
  repetitionPenalty?: number;
  minTokens?: number;
  ignoreEos: boolean;
  skipSpecialTokens: boolean;
  // Log probabilities of the generated tokens, with `top` alternatives each; absent: none.
  logprobs?: { top: number };
}

export interface ChatRequest extends GenerationParams {
  kind: 'chat';
  messages: TemplateMessage[];
  tools?: unknown[];
  addGenerationPrompt: boolean;
  templateKwargs: Record<string, unknown>;
}

export interface CompletionRequest extends GenerationParams {
  kind: 'completion';
  prompt: { text: string } | { tokenIds: number[] };
  // The answer's text (and logprobs, when asked) begin with the prompt's.
  echo: boolean;
}

export type OpenAIRequest = ChatRequest | CompletionRequest;

export type OpenAIFinishReason = 'stop' | 'length';

export interface UsageJson {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

export interface ChatCompletionJson {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: {
    index: number;
    message: { role: 'assistant'; content: string; refusal: null };
    logprobs: ChatLogprobsJson | null;
    finish_reason: OpenAIFinishReason;
  }[];
  usage: UsageJson;
}

export interface ChatCompletionChunkJson {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: {
    index: number;
    delta: { role?: 'assistant'; content?: string };
    logprobs: ChatLogprobsJson | null;
    finish_reason: OpenAIFinishReason | null;
  }[];
  usage?: UsageJson | null;
}

export interface CompletionJson {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: { index: number; text: string; logprobs: CompletionLogprobsJson | null; finish_reason: OpenAIFinishReason | null }[];
  usage?: UsageJson | null;
}

export interface ModelListJson {
  object: 'list';
  data: { id: string; object: 'model'; created: number; owned_by: string; max_model_len: number; pools?: { mode: string; agg: number; prefill: number; decode: number } }[];
}

export interface ErrorJson {
  error: { message: string; type: string; param: string | null; code: string };
}
