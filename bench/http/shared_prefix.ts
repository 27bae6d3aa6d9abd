// The shared-prefix workload: `groups` conversations, each with its own long system prompt
// (a team's instructions, ~1,000+ tokens), asked `perGroup` different questions. Requests
// arrive in a seeded random order, so the groups interleave the way independent users do.
// A router that sends each group to the worker holding its system prompt turns every
// request but the group's first into a prefix-cache hit.

import type OpenAI from 'openai';
import { rng } from '../../src/bench/workloads.js';

export interface SharedPrefixOptions {
  groups: number;
  perGroup: number;
  // Words of each system prompt (about one token each).
  systemWords: number;
  seed: number;
}

export interface WorkloadRequest {
  group: number;
  index: number;
  messages: { role: 'system' | 'user'; content: string }[];
}

const VOCAB = (
  'cache block prefix token router worker engine request latency throughput queue batch decode prefill ' +
  'memory page index event schedule policy cost load balance stream model reply answer context window ' +
  'system user assistant message format rule example detail summary report table value number metric ' +
  'review check test deploy release version change issue fix build run start stop wait retry error'
).split(' ');

export function sharedPrefixWorkload(o: SharedPrefixOptions): WorkloadRequest[] {
  const rand = rng(o.seed);
  const words = (n: number) => Array.from({ length: n }, () => VOCAB[Math.floor(rand() * VOCAB.length)]!).join(' ');
  const requests: WorkloadRequest[] = [];
  for (let g = 0; g < o.groups; g++) {
    // The group's identity comes first, so different groups share no leading block.
    const system = `Team ${g} (code ${Math.floor(rand() * 1e9)}): you answer for this team only. ${words(o.systemWords)}`;
    for (let i = 0; i < o.perGroup; i++) {
      requests.push({ group: g, index: i, messages: [{ role: 'system', content: system }, { role: 'user', content: `Question ${i} from team ${g}: ${words(12)}?` }] });
    }
  }
  for (let i = requests.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [requests[i], requests[j]] = [requests[j]!, requests[i]!];
  }
  return requests;
}

export interface WorkloadResult {
  requests: number;
  promptTokens: number;
  cachedTokens: number;
  seconds: number;
}

// Sends the requests one after another (each group's later requests find the earlier
// ones' blocks stored) and sums the usage the engines reported.
export async function runWorkload(client: OpenAI, model: string, requests: readonly WorkloadRequest[], maxTokens = 4): Promise<WorkloadResult> {
  const t0 = performance.now();
  let promptTokens = 0;
  let cachedTokens = 0;
  for (const r of requests) {
    const res = await client.chat.completions.create({ model, messages: r.messages, max_tokens: maxTokens });
    promptTokens += res.usage!.prompt_tokens;
    cachedTokens += res.usage!.prompt_tokens_details?.cached_tokens ?? 0;
  }
  return { requests: requests.length, promptTokens, cachedTokens, seconds: (performance.now() - t0) / 1000 };
}
