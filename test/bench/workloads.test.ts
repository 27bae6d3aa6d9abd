// kvgate bench's workloads are functions of their seed (a rerun sends the same prompts, so two
// configurations compared in separate runs saw the same traffic), keep the shapes they
// promise (shared prefixes, Mooncake's 512-token blocks, turns extending the last prompt),
// and survive the trip through text: one word per token, re-tokenized to the same count.

import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { idsToText } from '../../src/bench/prompts.js';
import { distribution, percentile } from '../../src/bench/stats.js';
import { GSP_DEFAULTS, mooncake, MOONCAKE_PATH, multiTurn, MULTI_TURN_DEFAULTS, sharedPrefix, type Arrival, type Workload } from '../../src/bench/workloads.js';
import { defaultModelDir } from '../../src/preprocess/model_files.js';

const drain = (w: Workload, n = Infinity): Arrival[] => {
  const out: Arrival[] = [];
  for (let a = w.next(); a && out.length < n; a = w.next()) out.push(a);
  return out;
};
const gsp = (seed: number) => sharedPrefix({ ...GSP_DEFAULTS, groups: 4, promptsPerGroup: 3, systemPromptLen: 64, questionLen: 8, outputLen: 5, seed });
const trace = (seed: number) => mooncake({ path: MOONCAKE_PATH, limit: 30, speed: 1, seed, maxInput: 4000 });

describe('bench workloads', () => {
  it('the same seed gives the same prompts and order; another seed gives others', () => {
    for (const make of [gsp, trace, (seed: number) => multiTurn({ ...MULTI_TURN_DEFAULTS, sessions: 5, seed })]) {
      const a = drain(make(7));
      expect(a.length).toBeGreaterThan(0);
      expect(drain(make(7))).toEqual(a);
      expect(drain(make(8)).map((x) => x.tokens)).not.toEqual(a.map((x) => x.tokens));
    }
  });

  it('shared-prefix: groups x prompts, each group one system prompt, questions all different', () => {
    const a = drain(gsp(1));
    expect(a).toHaveLength(12);
    const prefixes = new Set(a.map((x) => x.tokens.slice(0, 64).join(',')));
    const questions = new Set(a.map((x) => x.tokens.slice(64).join(',')));
    expect(prefixes.size).toBe(4);
    expect(questions.size).toBe(12);
    expect(a.every((x) => x.tokens.length === 72 && x.outputLen === 5)).toBe(true);
  });

  it('trace: equal hash ids are identical 512-token blocks, lengths and filters as the trace says', () => {
    const a = drain(trace(1));
    expect(a).toHaveLength(30);
    expect(a.every((x) => x.tokens.length <= 4000)).toBe(true);
    // Every conversation-trace request starts with hash id 0: the same first block.
    const first = a[0]!.tokens.slice(0, 512).join(',');
    expect(a.every((x) => x.tokens.length < 512 || x.tokens.slice(0, 512).join(',') === first)).toBe(true);
    expect(a.map((x) => x.at)).toEqual([...a.map((x) => x.at)].sort((p, q) => p - q));
  });

  it('multi-turn: a follow-up is the last prompt, then the answer, then a new question', () => {
    const w = multiTurn({ ...MULTI_TURN_DEFAULTS, sessions: 1, turns: 2, seed: 3 });
    const first = w.next()!;
    const answer = [11, 12, 13];
    const next = w.followUp!(first, answer, 0)!;
    expect(next.tokens.slice(0, first.tokens.length)).toEqual(first.tokens);
    expect(next.tokens.slice(first.tokens.length, first.tokens.length + 3)).toEqual(answer);
    expect(next.tokens.length).toBe(first.tokens.length + 3 + MULTI_TURN_DEFAULTS.questionLen);
    expect(w.followUp!(next, answer, 0)).toBeNull();
  });

  it('text prompts re-tokenize to one token per id with the packaged tokenizer', async () => {
    const { Tokenizer } = createRequire(import.meta.url)('tokenizers') as typeof import('tokenizers');
    const tok = Tokenizer.fromFile(join(defaultModelDir(), 'tokenizer.json'));
    const ids = drain(gsp(2), 3).flatMap((x) => x.tokens);
    const enc = await tok.encode(idsToText(ids), null, { addSpecialTokens: false });
    expect(enc.getIds()).toHaveLength(ids.length);
  });

  it('percentiles are nearest-rank over the sorted samples', () => {
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
    expect(distribution(xs)).toEqual({ mean: 50.5, p50: 50, p90: 90, p99: 99, max: 100 });
    expect(percentile([5], 99)).toBe(5);
  });
});
