// OpenAI's logprobs objects from the engine's per-token log probabilities: chat's
// { content: [{ token, logprob, bytes, top_logprobs }] } and completions' { tokens,
// token_logprobs, top_logprobs, text_offset }. A token's string is its own decode and its
// bytes the raw bytes it stands for: a token that holds only part of a multi-byte character
// reads U+FFFD (no text can show half a character) while its bytes are the partial ones, so
// joining a response's bytes gives its UTF-8 text.

import type { PromptLogprob, TokenLogprob } from '../engine/client.js';

export interface TokenText {
  (id: number): string;
  bytes(id: number): number[];
}

export interface ChatTokenLogprobJson {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

export interface ChatLogprobsJson {
  content: ChatTokenLogprobJson[];
}

export interface CompletionLogprobsJson {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[] | null;
  text_offset: number[];
}

function item(text: TokenText, id: number, logprob: number): { token: string; logprob: number; bytes: number[] } {
  const token = text(id);
  return { token, logprob, bytes: text.bytes(id) };
}

export function chatLogprobs(lps: readonly TokenLogprob[], text: TokenText): ChatLogprobsJson {
  return { content: lps.map((t) => ({ ...item(text, t.id, t.logprob), top_logprobs: (t.top ?? []).map((a) => item(text, a.id, a.logprob)) })) };
}

// `offset`: characters of completion text before these tokens (text_offset counts from there).
// `top`: the alternatives asked for; 0 gives top_logprobs null, as OpenAI. An echoed prompt's
// first token has null for its logprob and its alternatives.
export function completionLogprobs(lps: readonly PromptLogprob[], text: TokenText, offset: number, top: number): CompletionLogprobsJson {
  const out: CompletionLogprobsJson = { tokens: [], token_logprobs: [], top_logprobs: top > 0 ? [] : null, text_offset: [] };
  let at = offset;
  for (const t of lps) {
    const s = text(t.id);
    out.tokens.push(s);
    out.token_logprobs.push(t.logprob);
    out.text_offset.push(at);
    at += s.length;
    if (out.top_logprobs) out.top_logprobs.push(t.logprob === null ? null : Object.fromEntries((t.top ?? []).map((a) => [text(a.id), a.logprob])));
  }
  return out;
}

// Characters the tokens stand for (the next text_offset).
export function tokensLength(lps: readonly PromptLogprob[], text: TokenText): number {
  let n = 0;
  for (const t of lps) n += text(t.id).length;
  return n;
}
