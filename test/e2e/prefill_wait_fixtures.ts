// What the prefill-wait end-to-end tests share: groups of chat requests with a system prompt
// per group, a chat that returns its status and cached tokens, and a metric summed over labels.

import { expect } from 'vitest';
import { sharedPrefixWorkload } from '../../bench/http/shared_prefix.js';
import { MODEL } from './stack.js';

export type Messages = { role: string; content: string }[];

// `count` groups of `n` chat requests each (in order), every group with its own system prompt.
export function groups(seed: number, count: number, n: number, systemWords: number) {
  const all = sharedPrefixWorkload({ groups: count, perGroup: n, systemWords, seed });
  return Array.from({ length: count }, (_, g) => all.filter((r) => r.group === g).sort((a, b) => a.index - b.index));
}

export async function chat(url: string, messages: Messages, maxTokens: number, signal?: AbortSignal): Promise<{ status: number; cached: number }> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, messages, max_tokens: maxTokens }),
    signal,
  });
  const body = (await res.json()) as { usage?: { prompt_tokens_details?: { cached_tokens?: number } } };
  return { status: res.status, cached: body.usage?.prompt_tokens_details?.cached_tokens ?? 0 };
}

export const metricsText = async (url: string) => (await fetch(`${url}/metrics`)).text();

// The sum of a metric's samples (those whose labels contain `label`, if given).
export function metric(text: string, name: string, label = ''): number {
  let sum = 0;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{([^}]*)\\})? (\\S+)$`, 'gm'))) if (!label || (m[1] ?? '').includes(label)) sum += Number(m[2]);
  return sum;
}

// A burst of one group's requests, all answered: exactly one computed the system prompt, and the
// others waited for it and found it stored, all the same share (without the wait the engine
// prefills the whole burst in one batch, and nothing is cached).
export function expectOneComputedTheRestCached(results: { status: number; cached: number }[]): void {
  expect(results.every((r) => r.status === 200)).toBe(true);
  const cached = results.map((r) => r.cached).sort((a, b) => a - b);
  expect(cached[0]).toBe(0);
  expect(cached[1]).toBeGreaterThan(300);
  expect(new Set(cached.slice(1)).size).toBe(1);
}
