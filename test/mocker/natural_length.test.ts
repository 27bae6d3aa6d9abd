// The simulated model ends its answers at EOS after a typical length (--natural-output-len),
// as a real model does long before a client's max_tokens, which defaults to the rest of the
// context. Under ignore_eos it runs to max_new_tokens.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMocker, type MockerHandle } from '../../src/mocker/index.js';

let mocker: MockerHandle;
beforeAll(async () => {
  mocker = await startMocker({ port: 0, pageSize: 16, speedupRatio: 1000, naturalOutputLen: 40, contextLength: 32768 });
});
afterAll(() => mocker.close());

async function generate(sampling: Record<string, unknown>, prompt: number[]) {
  const r = await fetch(`${mocker.url}/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ input_ids: prompt, sampling_params: sampling }),
  });
  expect(r.status).toBe(200);
  return (await r.json()) as { output_ids: number[]; meta_info: { finish_reason: { type: string } } };
}

describe('natural output length', () => {
  it('stops at EOS within 0.5-1.25x the natural length when max_new_tokens is far larger', async () => {
    for (let i = 0; i < 8; i++) {
      const out = await generate({ max_new_tokens: 20000 }, [1000 + i, 2000 + i, 3000 + i]);
      expect(out.meta_info.finish_reason.type).toBe('stop');
      expect(out.output_ids.length).toBeGreaterThan(20);
      expect(out.output_ids.length).toBeLessThanOrEqual(50);
    }
  });

  it('runs to max_new_tokens under ignore_eos', async () => {
    const out = await generate({ max_new_tokens: 300, ignore_eos: true }, [7, 8, 9]);
    expect(out.output_ids.length).toBe(300);
    expect(out.meta_info.finish_reason.type).toBe('length');
  });
});
