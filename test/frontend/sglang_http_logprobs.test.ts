// The SGLang HTTP client's logprobs over a real mocker engine: each chunk's output logprobs
// match its token ids (SGLang's cumulative frames and --incremental-streaming-output alike),
// and the prompt's come once, on the first chunk, with null for position 0.

import { afterEach, describe, expect, it } from 'vitest';
import type { GenerateChunk } from '../../src/engine/client.js';
import { SglangHttpEngine, generateBody } from '../../src/engine/sglang_http.js';
import { syntheticLogprob } from '../../src/mocker/logprobs.js';
import { closeAll, mocker } from '../mocker/helpers.js';

afterEach(closeAll);

const prompt = [100, 200, 300, 400, 500];

async function run(incremental: boolean, echo: boolean): Promise<GenerateChunk[]> {
  const m = await mocker({ incrementalStreamingOutput: incremental, skipTokenizerInit: true });
  const engine = new SglangHttpEngine(m.url);
  const chunks: GenerateChunk[] = [];
  try {
    const req = { requestId: `lp-${incremental}-${echo}`, tokenIds: prompt, sampling: { maxNewTokens: 20, ignoreEos: true }, logprobs: { top: 2, prompt: echo } };
    for await (const c of engine.generate(req)) chunks.push(c);
  } finally {
    await engine.close();
  }
  return chunks;
}

describe('SglangHttpEngine logprobs', () => {
  it('asks SGLang for them: return_logprob, top_logprobs_num, logprob_start_len', () => {
    const body = JSON.parse(generateBody({ requestId: 'r', tokenIds: [1], sampling: { maxNewTokens: 1 }, logprobs: { top: 3, prompt: false } }));
    expect(body).toMatchObject({ return_logprob: true, top_logprobs_num: 3, logprob_start_len: -1 });
    expect(JSON.parse(generateBody({ requestId: 'r', tokenIds: [1], sampling: { maxNewTokens: 1 }, logprobs: { top: 0, prompt: true } })).logprob_start_len).toBe(0);
    expect(JSON.parse(generateBody({ requestId: 'r', tokenIds: [1], sampling: { maxNewTokens: 1 } }))).not.toHaveProperty('return_logprob');
  });

  for (const incremental of [false, true]) {
    it(`gives each chunk its tokens' logprobs (${incremental ? 'incremental' : 'cumulative'} frames), the prompt's once`, async () => {
      const chunks = await run(incremental, true);
      const ids = chunks.flatMap((c) => c.tokenIds);
      expect(ids).toHaveLength(20);
      for (const c of chunks) expect(c.logprobs?.map((t) => t.id) ?? []).toEqual(c.tokenIds);
      const lps = chunks.flatMap((c) => c.logprobs ?? []);
      expect(lps.map((t) => t.logprob)).toEqual(ids.map((id, k) => syntheticLogprob(id, prompt.length + k)));
      for (const t of lps) expect(t.top).toHaveLength(2);
      const withPrompt = chunks.filter((c) => c.promptLogprobs);
      expect(withPrompt).toHaveLength(1);
      expect(withPrompt[0]).toBe(chunks[0]);
      expect(chunks[0]!.promptLogprobs!.map((t) => [t.id, t.logprob])).toEqual(prompt.map((id, p) => [id, p === 0 ? null : syntheticLogprob(id, p)]));
    });
  }

  it('without echo, no prompt logprobs', async () => {
    const chunks = await run(false, false);
    expect(chunks.some((c) => c.promptLogprobs)).toBe(false);
    expect(chunks.flatMap((c) => c.logprobs ?? [])).toHaveLength(20);
  });
});
