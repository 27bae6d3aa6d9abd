// The mocker's expert-distribution routes, as SGLang answers them: start / stop / dump over
// GET or POST with SGLang's text, a dump file in $SGLANG_EXPERT_DISTRIBUTION_RECORDER_DIR
// holding one [layer][expert] count table per forward pass (every token goes to top-k
// distinct experts of the simulated MoE), cleared by each dump and by start; and without
// --expert-distribution-recorder-mode, SGLang's message as a 400.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { NO_RECORDER_MODE, SIMULATED_MOE } from '../../src/mocker/expert_distribution.js';
import { closeAll, generate, get, mocker, post } from './helpers.js';

let dir: string;
const saved = process.env['SGLANG_EXPERT_DISTRIBUTION_RECORDER_DIR'];
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'kvgate-experts-'));
  process.env['SGLANG_EXPERT_DISTRIBUTION_RECORDER_DIR'] = dir;
});
afterAll(() => {
  if (saved === undefined) delete process.env['SGLANG_EXPERT_DISTRIBUTION_RECORDER_DIR'];
  else process.env['SGLANG_EXPERT_DISTRIBUTION_RECORDER_DIR'] = saved;
  rmSync(dir, { recursive: true, force: true });
});
afterEach(closeAll);

interface Dump {
  rank: number;
  logical_count: number[][][];
  average_utilization_rate_over_window: null;
}

// The dump files written since the last call, oldest first.
let seen = new Set<string>();
function newDumps(): Dump[] {
  const files = readdirSync(dir)
    .filter((f) => !seen.has(f))
    .sort();
  for (const f of files) {
    expect(f).toMatch(/^expert_distribution_recorder_\d+\.\d{6}\.json$/);
    seen.add(f);
  }
  return files.map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as Dump);
}

// Tokens routed per layer, summed over passes (each token counts top-k times).
const perLayer = (d: Dump) => Array.from({ length: SIMULATED_MOE.layers }, (_, l) => d.logical_count.reduce((s, pass) => s + pass[l]!.reduce((a, b) => a + b, 0), 0));

const prompt = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 1000 + ((i * 7919 + seed * 104729) % 50000));

describe('mocker expert-distribution recording', () => {
  it('records every forward pass between start and stop, dumps it to a file and clears it', async () => {
    const m = await mocker({ expertDistributionRecorderMode: 'stat' });
    expect((await get(`${m.url}/server_info`)).json()).toMatchObject({ expert_distribution_recorder_mode: 'stat', expert_distribution_recorder_buffer_size: 1000 });
    seen = new Set(readdirSync(dir));
    const start = await post(`${m.url}/start_expert_distribution_record`, '');
    expect([start.status, start.text]).toEqual([200, 'Start recording the expert distribution.\n']);
    // 40 prompt tokens in one prefill pass, then 7 decode passes (the first token comes with the prefill).
    await generate(m, { input_ids: prompt(40, 1), sampling_params: { max_new_tokens: 8, ignore_eos: true } });
    const stop = await get(`${m.url}/stop_expert_distribution_record`);
    expect([stop.status, stop.text]).toEqual([200, 'Stop recording the expert distribution.\n']);
    // Not recorded: after stop.
    await generate(m, { input_ids: prompt(30, 2), sampling_params: { max_new_tokens: 4, ignore_eos: true } });
    const dump = await post(`${m.url}/dump_expert_distribution_record`, '');
    expect([dump.status, dump.text]).toEqual([200, 'Dump expert distribution record.\n']);

    const [d, ...more] = newDumps();
    expect(more).toEqual([]);
    expect(d!.rank).toBe(0);
    expect(d!.average_utilization_rate_over_window).toBeNull();
    expect(d!.logical_count).toHaveLength(8);
    for (const pass of d!.logical_count) {
      expect(pass).toHaveLength(SIMULATED_MOE.layers);
      for (const layer of pass) expect(layer).toHaveLength(SIMULATED_MOE.experts);
    }
    expect(perLayer(d!)).toEqual(Array(SIMULATED_MOE.layers).fill((40 + 7) * SIMULATED_MOE.topK));
    // The prefill pass: each of its 40 tokens went to top-k distinct experts in every layer.
    for (const layer of d!.logical_count[0]!) expect(Math.max(...layer)).toBeLessThanOrEqual(40);

    // The dump cleared the record: the next one is empty.
    await post(`${m.url}/dump_expert_distribution_record`, '');
    expect(newDumps().map((x) => x.logical_count)).toEqual([[]]);
  });

  it('sums the dp ranks pass by pass and keeps the last --expert-distribution-recorder-buffer-size passes', async () => {
    const m = await mocker({ expertDistributionRecorderMode: 'stat', dpSize: 2, expertDistributionRecorderBufferSize: 3 });
    seen = new Set(readdirSync(dir));
    await post(`${m.url}/start_expert_distribution_record`, '');
    await Promise.all([0, 1].map((rank) => generate(m, { input_ids: prompt(20, rank), routed_dp_rank: rank, sampling_params: { max_new_tokens: 6, ignore_eos: true } })));
    await post(`${m.url}/dump_expert_distribution_record`, '');
    const [d] = newDumps();
    // Each rank ran 1 prefill + 5 decode passes; the last 3 of each (decode, one token a rank) are kept and summed.
    expect(d!.logical_count).toHaveLength(3);
    expect(perLayer(d!)).toEqual(Array(SIMULATED_MOE.layers).fill(3 * 2 * SIMULATED_MOE.topK));
  });

  it('answers 400 with SGLang\'s message without a recorder mode, and 405 to other methods', async () => {
    const m = await mocker();
    for (const path of ['/start_expert_distribution_record', '/stop_expert_distribution_record', '/dump_expert_distribution_record']) {
      const r = await post(`${m.url}${path}`, '');
      expect([r.status, r.json()]).toEqual([400, { error: { message: NO_RECORDER_MODE } }]);
      const put = await fetch(`${m.url}${path}`, { method: 'PUT' });
      expect(put.status).toBe(405);
    }
  });
});
