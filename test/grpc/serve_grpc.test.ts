// `kvgate serve --engine-urls grpc://...` as a process in front of a mocker serving SGLang's
// gRPC API (--grpc-mode, its own process): the official openai client gets chat
// completions, streamed and not, with usage and cached tokens; a client that goes away
// mid-stream aborts the engine's request. And `kvgate serve --engine-protocol grpc`: the
// workers it spawns speak gRPC to their engines.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SglangGrpcEngine } from '../../src/engine/sglang_grpc.js';

const cli = fileURLToPath(new URL('../e2e/kvgate_cli.ts', import.meta.url));
const procs: ChildProcess[] = [];
const MODEL = 'Qwen/Qwen3-0.6B';

function kvgate(args: string[]): { proc: ChildProcess; stdout: () => string; stderr: () => string } {
  const proc = spawn(process.execPath, ['--import', 'tsx', cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(proc);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  return { proc, stdout: () => out, stderr: () => err };
}

async function line(run: ReturnType<typeof kvgate>, re: RegExp, ms = 30_000): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const m = re.exec(run.stdout());
    if (m) return m[1]!;
    if (run.proc.exitCode !== null || Date.now() > end) throw new Error(`no ${re} from kvgate:\n${run.stderr().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let engineUrl: string;
let baseUrl: string;

beforeAll(async () => {
  const mocker = kvgate(['mocker', '--grpc-mode', '--port', '0', '--page-size', '16', '--speedup-ratio', '20']);
  engineUrl = await line(mocker, /listening on (grpc:\/\/\S+)/);
  const serve = kvgate(['serve', '--engine-urls', engineUrl, '--port', '0']);
  baseUrl = await line(serve, /listening on (http:\/\/\S+)/);
});

afterAll(async () => {
  await Promise.all(
    procs.map((p) => {
      if (p.exitCode !== null || p.signalCode !== null) return;
      p.kill('SIGTERM');
      return new Promise((r) => p.once('exit', r));
    }),
  );
});

describe('kvgate serve --engine-urls grpc://', () => {
  it('answers OpenAI chat completions through the engine\'s gRPC API, with cached tokens', async () => {
    const client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: 'none', maxRetries: 0 });
    expect((await client.models.list()).data.map((m) => m.id)).toEqual([MODEL]);
    const messages = [{ role: 'system' as const, content: 'You are a careful assistant. '.repeat(8) }, { role: 'user' as const, content: 'Say something.' }];
    const first = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 8 });
    expect(first.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(first.usage!.completion_tokens).toBeLessThanOrEqual(8);
    expect(first.usage!.prompt_tokens).toBeGreaterThan(32);

    const stream = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 8, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish ??= chunk.choices[0]?.finish_reason;
      usage = chunk.usage ?? usage;
    }
    // The mocker's output is a function of the prompt: the same answer, and its pages cached.
    expect(text).toBe(first.choices[0]!.message.content);
    expect(finish).toBe(first.choices[0]!.finish_reason);
    expect(usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThanOrEqual(32);
  });

  it('a client that disconnects mid-stream aborts the engine request', async () => {
    const client = new OpenAI({ baseURL: `${baseUrl}/v1`, apiKey: 'none', maxRetries: 0 });
    const ctl = new AbortController();
    const stream = await client.chat.completions.create(
      { model: MODEL, messages: [{ role: 'user', content: 'Tell me a long story.' }], max_tokens: 30000, stream: true, ignore_eos: true } as OpenAI.ChatCompletionCreateParamsStreaming,
      { signal: ctl.signal },
    );
    let chunks = 0;
    // The SDK ends the iteration quietly on its own abort.
    for await (const _ of stream) if (++chunks === 3) ctl.abort();
    expect(chunks).toBeLessThan(100);
    const engine = new SglangGrpcEngine(engineUrl);
    try {
      const end = Date.now() + 3000;
      while ((await engine.serverInfo()).active_requests > 0) {
        if (Date.now() > end) throw new Error('the engine still runs the request');
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await engine.close();
    }
  });
});

describe('kvgate serve --engine-protocol grpc', () => {
  it('spawns workers that drive their engines over gRPC', async () => {
    const serve = kvgate(['serve', '--workers', '1', '--engine', 'mocker', '--engine-protocol', 'grpc', '--port', '0']);
    // Three processes start in turn (serve, its worker, the engine): slow on a busy machine.
    const url = await line(serve, /listening on (http:\/\/\S+)/, 100_000);
    expect(serve.stderr()).toMatch(/kvgate worker ready: ws:\/\/\S+ .*engine_protocol=grpc/);
    expect(serve.stderr()).toMatch(/ mocker .*--grpc-mode/);
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0 });
    const res = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 6 });
    expect(res.choices[0]!.message.content!.length).toBeGreaterThan(0);
    expect(res.usage!.completion_tokens).toBeLessThanOrEqual(6);
  }, 120_000);
});
