// Huge prompts must not take the server down (issue 9, item 2): a body too big for the
// context is refused by the body limit (413) or, under a raised limit, by its size alone
// before it is tokenized (400, and serve's peak memory barely moves); prompts that pass the
// size check but are long to tokenize queue for the tokenizer one at a time, and small
// requests sent meanwhile complete before them.

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TokenizeLimiter, tokenizeLimiter } from '../../src/preprocess/tokenize_limiter.js';
import { startFakeSglang, type FakeSglang } from './fixtures/fake_sglang.js';
import { qwen3, startStack, waitFor, type Stack } from './fixtures/stack.js';

const cli = fileURLToPath(new URL('../e2e/kvgate_cli.ts', import.meta.url));

// Prose-like ASCII, ~4-5 bytes per token.
function prose(bytes: number, seed = 1): string {
  const words: string[] = [];
  let s = seed;
  let n = 0;
  while (n < bytes) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    const w = 'etaoinshrdlucmfwypvbgk'.slice(s % 11, (s % 11) + 2 + ((s >>> 8) % 7)) + ((s >>> 16) % 100);
    words.push(w);
    n += w.length + 1;
  }
  return words.join(' ');
}

const chat = (content: string, model = 'qwen3') => JSON.stringify({ model, messages: [{ role: 'user', content }], max_tokens: 4 });

async function post(url: string, body: string) {
  const r = await fetch(`${url}/v1/chat/completions`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  return { status: r.status, json: (await r.json()) as { error?: { code: string; message: string; param: string | null }; choices?: unknown[] } };
}

// Announces a body of `length` bytes and waits for the answer before sending any of it: a
// server refusing from the Content-Length answers at once (and closes the connection).
function announce(url: string, length: number): Promise<{ status: number; json: { error: { code: string; message: string } } }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(port), hostname);
    let text = '';
    sock.on('data', (d) => (text += d));
    sock.on('error', reject);
    sock.on('close', () => {
      const [head, body] = text.split('\r\n\r\n');
      resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(head!)?.[1]), json: JSON.parse(body!) });
    });
    sock.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n`);
  });
}

describe('kvgate serve with a 24 MiB chat', () => {
  const procs: ChildProcess[] = [];
  let engine: FakeSglang;
  beforeAll(async () => {
    engine = await startFakeSglang({ reply: () => [9707, 151645], servedModelName: 'qwen3', contextLength: 40960 });
  });
  afterEach(() => {
    for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  });
  afterAll(() => engine.close());

  async function serve(extra: string[]): Promise<{ url: string; pid: number }> {
    const proc = spawn(process.execPath, ['--import', 'tsx', cli, 'serve', '--engine-urls', engine.url, '--port', '0', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(proc);
    let out = '';
    let err = '';
    proc.stdout!.on('data', (d) => (out += d));
    proc.stderr!.on('data', (d) => (err += d));
    const end = Date.now() + 30_000;
    for (;;) {
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) return { url: m[1]!, pid: proc.pid! };
      if (proc.exitCode !== null || Date.now() > end) throw new Error(`kvgate serve did not start:\n${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  // Peak resident memory of the process so far (kB).
  const peakRssKb = (pid: number) => Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);

  const huge = chat(prose(24 * 1024 * 1024));

  it('refuses it with 413 under the default body limit, which is what the context can hold', async () => {
    const { url } = await serve([]);
    // 40,960 tokens x 384 bytes (128-byte longest Qwen3 token, NFC) + 1 MiB.
    const r = await announce(url, Buffer.byteLength(huge));
    expect([r.status, r.json.error.code]).toEqual([413, 'payload_too_large']);
    expect(r.json.error.message).toContain(`limit of ${40960 * 384 + 1024 * 1024} bytes`);
  });

  it('refuses it with 400 from its size alone under a 32 MiB limit, without tokenizing it', async () => {
    const { url, pid } = await serve(['--max-body-bytes', String(32 * 1024 * 1024)]);
    expect((await post(url, chat('warm up'))).status).toBe(200);
    const before = peakRssKb(pid);
    const r = await post(url, huge);
    expect(r.status).toBe(400);
    expect(r.json.error).toMatchObject({ code: 'context_length_exceeded', param: 'messages' });
    expect(r.json.error!.message).toMatch(/context length is 40960 tokens, but the messages cannot have fewer than \d+ tokens/);
    // Reading, parsing and rendering 24 MiB costs a few copies of it; tokenizing it took GBs.
    const grewMb = (peakRssKb(pid) - before) / 1024;
    expect(grewMb).toBeLessThan(400);
    expect((await post(url, chat('still here'))).status).toBe(200);
  }, 60_000);
});

describe('tokenizing under load', () => {
  let engine: FakeSglang;
  let stack: Stack;
  beforeAll(async () => {
    engine = await startFakeSglang({ reply: () => [9707, 151645] });
    stack = await startStack([engine], { model: qwen3('qwen3', 8192) });
  });
  afterAll(async () => {
    await stack.close();
    await engine.close();
  });

  it('small requests sent while four large prompts tokenize all complete before any large one', async () => {
    // 700 kB passes the size check (8,192 tokens x 128 bytes: ASCII) but is ~150K tokens:
    // seconds of tokenizing each, then context_length_exceeded.
    const finished: string[] = [];
    const bigs = [1, 2, 3, 4].map((i) =>
      post(stack.url, chat(prose(700_000, i))).then((r) => {
        finished.push(`big${i}`);
        return r;
      }),
    );
    await waitFor(() => tokenizeLimiter.running >= 1, 20_000);
    const smalls = Array.from({ length: 16 }, (_, i) =>
      post(stack.url, chat(`small request ${i}: ${prose(2000, 100 + i)}`)).then((r) => {
        finished.push(`small${i}`);
        return r;
      }),
    );
    for (const r of await Promise.all(smalls)) expect(r.status).toBe(200);
    expect(finished.filter((f) => f.startsWith('big'))).toEqual([]);
    for (const r of await Promise.all(bigs)) {
      expect(r.status).toBe(400);
      expect(r.json.error!.message).toMatch(/context length is 8192 tokens, but the messages has \d{6,} tokens/);
    }
    expect([tokenizeLimiter.running, tokenizeLimiter.waiting]).toEqual([0, 0]);
  }, 120_000);
});

describe('TokenizeLimiter', () => {
  const gate = () => {
    let open!: () => void;
    const p = new Promise<void>((r) => (open = r));
    return { p, open };
  };

  it('runs small inputs at once, large ones first come first served within the budget, and drops aborted waiters', async () => {
    const lim = new TokenizeLimiter({ smallChars: 10, budgetChars: 100, maxLarge: 2 });
    const started: string[] = [];
    const job = (name: string, chars: number, g: { p: Promise<void> }, signal?: AbortSignal) =>
      lim.run(
        chars,
        async () => {
          started.push(name);
          await g.p;
          return name;
        },
        signal,
      );
    const a = gate();
    const b = gate();
    const ra = job('a', 80, a); // takes 80 of the budget
    const rb = job('b', 500, b); // over the budget: waits for all of it, runs alone
    const ac = new AbortController();
    const rc = job('c', 20, gate(), ac.signal); // would fit beside a, but queues behind b
    const s = gate();
    const rs = job('small', 5, s);
    await new Promise((r) => setImmediate(r));
    expect([...started].sort()).toEqual(['a', 'small']);
    expect([lim.running, lim.waiting]).toEqual([1, 2]);
    ac.abort();
    await expect(rc).rejects.toMatchObject({ code: 'client_closed_request' });
    expect(lim.waiting).toBe(1);
    a.open();
    expect(await ra).toBe('a');
    expect(started.slice(2)).toEqual(['b']);
    b.open();
    expect(await rb).toBe('b');
    expect([lim.running, lim.waiting]).toEqual([0, 0]);
    s.open();
    expect(await rs).toBe('small');
  });
});
