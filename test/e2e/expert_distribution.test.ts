// The expert-distribution routes through a real `kvgate serve`, fanned out to every worker's
// engine: two `kvgate worker --engine mocker` processes, one engine recording experts
// (--expert-distribution-recorder-mode stat) and one without a recorder mode, which SGLang
// refuses. One frontend in front of both shows each worker's outcome and fails the call
// (502, naming the worker); one in front of the recording worker alone succeeds, and its
// engine writes the dump file. The engines run with an API key, which the calls carry.

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NO_RECORDER_MODE, SIMULATED_MOE } from '../../src/mocker/expert_distribution.js';
import { listening, Processes } from '../fixtures/processes.js';
import { MODEL } from './stack.js';

const dir = mkdtempSync(join(tmpdir(), 'kvgate-experts-e2e-'));
const procs = new Processes();
// The engines take requests with this key only: the frontend's calls must carry it.
const ENGINE_KEY = { KVGATE_ENGINE_API_KEY: 'engine-secret' };

async function worker(engineArgs: string[]): Promise<string> {
  const w = procs.kvgate(['worker', '--engine', 'mocker', '--port', '0', '--', '--page-size', '16', '--speedup-ratio', '20', ...engineArgs], { env: { SGLANG_EXPERT_DISTRIBUTION_RECORDER_DIR: dir, ...ENGINE_KEY } });
  for (;;) {
    const m = /kvgate worker ready: (ws:\/\/\S+)/.exec(w.stdout());
    if (m) return m[1]!;
    if (w.proc.exitCode !== null) throw new Error(`worker exited (${w.proc.exitCode}) before ready:\n${w.stderr().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function serve(urls: string[]): Promise<string> {
  return listening(procs.kvgate(['serve', '--port', '0', '--worker-urls', urls.join(',')], { env: ENGINE_KEY }), 60_000);
}

let recording: string;
let refusing: string;
beforeAll(async () => {
  [recording, refusing] = await Promise.all([worker(['--expert-distribution-recorder-mode', 'stat']), worker([])]);
}, 90_000);

afterAll(async () => {
  await procs.reap();
  rmSync(dir, { recursive: true, force: true });
});

interface Outcome {
  worker: string;
  engine: string | null;
  status: number | null;
  message: string;
}

async function call(url: string, path: string, method = 'POST'): Promise<{ status: number; body: any }> {
  const res = await fetch(url + path, { method });
  return { status: res.status, body: await res.json() };
}

describe('expert-distribution routes on the frontend', () => {
  it('fan out to every worker\'s engine: one refusing fails the call with each worker\'s outcome', { timeout: 60_000 }, async () => {
    const url = await serve([recording, refusing]);
    const r = await call(url, '/start_expert_distribution_record');
    expect(r.status).toBe(502);
    expect(r.body.error.code).toBe('engine_error');
    expect(r.body.error.message).toContain(`failed on 1 of 2 worker(s): ${refusing}: 400 ${NO_RECORDER_MODE}`);
    const byWorker = Object.fromEntries((r.body.workers as Outcome[]).map((o) => [o.worker, o]));
    expect(byWorker[recording]).toMatchObject({ status: 200, message: 'Start recording the expert distribution.' });
    expect(byWorker[recording]!.engine).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(byWorker[refusing]).toMatchObject({ status: 400, message: NO_RECORDER_MODE });
    expect((await fetch(`${url}/dump_expert_distribution_record`, { method: 'PUT' })).status).toBe(405);
  });

  it('start, serve, stop and dump through the frontend; the engine writes what it recorded', { timeout: 60_000 }, async () => {
    const url = await serve([recording]);
    const before = new Set(readdirSync(dir));
    const start = await call(url, '/start_expert_distribution_record', 'GET');
    expect(start).toEqual({
      status: 200,
      body: { success: true, message: 'Start recording the expert distribution.', workers: [{ worker: recording, engine: expect.any(String), status: 200, message: 'Start recording the expert distribution.' }] },
    });
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
    const r = await client.completions.create({ model: MODEL, prompt: 'Which experts does this sentence visit?', max_tokens: 5 });
    expect((await call(url, '/stop_expert_distribution_record')).body).toMatchObject({ success: true, message: 'Stop recording the expert distribution.' });
    expect((await call(url, '/dump_expert_distribution_record')).body).toMatchObject({ success: true, message: 'Dump expert distribution record.' });

    const files = readdirSync(dir).filter((f) => !before.has(f));
    expect(files).toHaveLength(1);
    const dump = JSON.parse(readFileSync(join(dir, files[0]!), 'utf8')) as { logical_count: number[][][] };
    const routed = dump.logical_count.reduce((s, pass) => s + pass[0]!.reduce((a, b) => a + b, 0), 0);
    // Every prompt token and every decode step but the last token, top-k experts each, in layer 0.
    expect(routed).toBe((r.usage!.prompt_tokens + r.usage!.completion_tokens - 1) * SIMULATED_MOE.topK);
  });
});
