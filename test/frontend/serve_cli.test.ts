// `kvgate serve` as a process: flags, start-up against SGLang-protocol engines, serving
// through the openai client, and SIGTERM draining an in-flight stream before exit 0.

import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakeSglang, type FakeSglang } from './fixtures/fake_sglang.js';
import { listening, Processes } from '../fixtures/processes.js';

const procs = new Processes();
const engines: FakeSglang[] = [];

afterEach(async () => {
  await procs.reap();
  await Promise.all(engines.splice(0).map((e) => e.close()));
});

const kvgate = (args: string[]) => procs.kvgate(args);

describe('kvgate serve', () => {
  it('refuses bad flags and a missing engine list with a clear message', async () => {
    const noEngines = kvgate(['serve', '--port', '0', '--workers', '0']);
    expect(await noEngines.exited).toBe(1);
    expect(noEngines.stderr()).toMatch(/no workers: --workers 0 needs --worker-urls .* or --engine-urls/);
    const badPort = kvgate(['serve', '--port', 'eighty']);
    expect(await badPort.exited).toBe(1);
    expect(badPort.stderr()).toMatch(/--port expects a number/);
    const longBodyWait = kvgate(['serve', '--body-timeout', '30']);
    expect(await longBodyWait.exited).toBe(1);
    expect(longBodyWait.stderr()).toMatch(/--body-timeout .*7\.5/);
    const badUrl = kvgate(['serve', '--engine-urls', 'localhost:1']);
    expect(await badUrl.exited).toBe(1);
    expect(badUrl.stderr()).toMatch(/not an http\(s\):\/\/ or grpc:\/\/ URL/);
  });

  it('serves the engines\' model and drains an in-flight stream on SIGTERM', async () => {
    const engine = await startFakeSglang({ reply: () => [...Array.from({ length: 20 }, () => 279), 151645], tokenDelayMs: 25, servedModelName: 'Qwen/Qwen3-0.6B', contextLength: 2048 });
    engines.push(engine);
    const run = kvgate(['serve', '--engine-urls', engine.url, '--port', '0', '--api-key', 'sk-test', '--shutdown-timeout', '20']);
    const url = await listening(run);
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-test', maxRetries: 0 });
    const models = await client.models.list();
    expect(models.data.map((m) => [m.id, (m as unknown as { max_model_len: number }).max_model_len])).toEqual([['Qwen/Qwen3-0.6B', 2048]]);
    const stream = await client.chat.completions.create({ model: 'Qwen/Qwen3-0.6B', messages: [{ role: 'user', content: 'hi' }], stream: true });
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    run.proc.kill('SIGTERM');
    let text = '';
    for (let r = await it.next(); !r.done; r = await it.next()) text += r.value.choices[0]?.delta.content ?? '';
    expect(text).toBe(' the'.repeat(20));
    expect(await run.exited).toBe(0);
    expect(run.stderr()).toMatch(/"msg":"shutting down: draining in-flight requests".*"inflight":1/);
    expect(engine.disconnected).toEqual([]);
  });
});
