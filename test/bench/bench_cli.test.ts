// `kvgate bench` as a user runs it: a process against a real `kvgate serve` (OpenAI
// completions and chat), against a real mocker's SGLang /generate, and against a server that
// answers badly in each way the bench must tell apart; checks results.json and results.md.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KVGATE, waitFor } from '../e2e/stack.js';

const dir = mkdtempSync(join(tmpdir(), 'kvgate-bench-'));
const procs: ChildProcess[] = [];

function start(args: string[]): { proc: ChildProcess; out: () => string } {
  const proc = spawn(KVGATE[0]!, [...KVGATE.slice(1), ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  procs.push(proc);
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  return { proc, out: () => out };
}

async function listening(args: string[]): Promise<string> {
  const p = start(args);
  await waitFor(() => /listening on http:\/\/\S+/.test(p.out()) || p.proc.exitCode !== null, args[0]!, 60_000);
  const m = /listening on (http:\/\/[0-9.:]+)/.exec(p.out());
  if (!m) throw new Error(`${args[0]} did not start:\n${p.out()}`);
  return m[1]!;
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  json: Results;
  md: string;
}
interface Results {
  config: { workload: string; api: string; load: string; model: string | null };
  requests: { sent: number; completed: number; failed: number };
  errors: Record<string, { count: number; example: string }>;
  outputTokens: number;
  requestsPerS: number;
  cachedTokenShare: number | null;
  ttftMs: { p50: number; p99: number } | null;
  itlMs: { p50: number } | null;
  e2eMs: { p50: number; p99: number } | null;
}

let runs = 0;
async function bench(args: string[]): Promise<Run> {
  const out = join(dir, `run${runs++}`);
  const proc = spawn(KVGATE[0]!, [...KVGATE.slice(1), 'bench', ...args, '--output', out], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise<number | null>((r) => proc.on('exit', r));
  let json = null as unknown as Results;
  let md = '';
  try {
    json = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as Results;
    md = readFileSync(join(out, 'results.md'), 'utf8');
  } catch {
    /* no results: the test's expectations say whether that is right */
  }
  return { code, stdout, stderr, json, md };
}

const small = ['--gsp-num-groups', '3', '--gsp-prompts-per-group', '4', '--gsp-system-prompt-len', '256', '--gsp-question-len', '32', '--gsp-output-len', '16'];
const turns = ['--mt-sessions', '3', '--mt-turns', '3', '--mt-system-prompt-len', '100', '--mt-history-len', '100', '--mt-output-len', '8'];

// A server that answers each path prefix with one kind of bad response.
let bad: Server;
let badUrl = '';
function badServer(): Promise<void> {
  bad = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.method === 'GET') return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"data":[{"id":"m"}]}');
      const kind = req.url!.split('/')[1];
      const sse = (events: string[]) => res.writeHead(200, { 'content-type': 'text/event-stream' }).end(events.map((e) => `data: ${e}\n\n`).join(''));
      const chunk = (text: string) => JSON.stringify({ choices: [{ index: 0, text, finish_reason: null }] });
      const usage = (n: number) => JSON.stringify({ choices: [], usage: { prompt_tokens: 10, completion_tokens: n, total_tokens: 10 + n } });
      if (kind === 'rejects') return void res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":{"message":"no","type":"invalid_request_error"}}');
      if (kind === 'garbled') return sse([chunk('a'), '{not json']);
      if (kind === 'short') return sse([chunk('a'), chunk('b'), usage(2), '[DONE]']);
      if (kind === 'cut') return sse([chunk('a')]);
      res.writeHead(404).end();
    });
  });
  return new Promise((r) =>
    bad.listen(0, '127.0.0.1', () => {
      badUrl = `http://127.0.0.1:${(bad.address() as AddressInfo).port}`;
      r();
    }),
  );
}

let serveUrl = '';
let mockerUrl = '';
beforeAll(async () => {
  [serveUrl, mockerUrl] = await Promise.all([listening(['serve', '--port', '0', '--log-level', 'warn']), listening(['mocker', '--port', '0', '--speedup-ratio', '20', '--log-level', 'warn']), badServer()]);
}, 90_000);

afterAll(async () => {
  for (const p of procs) {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGTERM');
      await new Promise((r) => p.once('exit', r));
    }
  }
  await new Promise((r) => bad?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

describe('kvgate bench', () => {
  it('against kvgate serve: completions with token-id prompts, every request complete and measured, shared prefixes reported cached', async () => {
    const r = await bench(['--url', serveUrl, '--workload', 'shared-prefix', ...small, '--concurrency', '4', '--progress', 'lines']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.requests).toEqual({ sent: 12, completed: 12, failed: 0 });
    expect(r.json.errors).toEqual({});
    expect(r.json.outputTokens).toBe(12 * 16);
    expect(r.json.config).toMatchObject({ workload: 'shared-prefix', api: 'openai-completions', load: 'concurrency 4', model: 'Qwen/Qwen3-0.6B' });
    expect(r.json.cachedTokenShare).toBeGreaterThan(0.3); // 3 system prompts of 256 shared by 4 prompts each
    expect(r.json.ttftMs!.p50).toBeGreaterThan(0);
    expect(r.json.e2eMs!.p99).toBeGreaterThanOrEqual(r.json.ttftMs!.p99);
    expect(r.md).toContain('| 12 | 12 | 0 |');
    expect(r.md).toMatch(/\| TTFT \| [\d.]+ \|/);
    expect(r.stdout).toBe(r.md);
    expect(r.stderr).toContain('bench: finished 12 requests, 0 failed');
  }, 60_000);

  it('against kvgate serve: chat multi-turn with text prompts, every turn sent', async () => {
    const r = await bench(['--url', serveUrl, '--api', 'openai-chat', '--workload', 'multi-turn', ...turns, '--concurrency', '2', '--progress', 'none']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.json.requests).toEqual({ sent: 9, completed: 9, failed: 0 });
    expect(r.json.outputTokens).toBe(9 * 8);
    expect(r.json.cachedTokenShare).toBeGreaterThan(0.3); // later turns extend earlier prompts
  }, 60_000);

  it("against a mocker's /generate: trace replay with warm-up, and Poisson multi-turn", async () => {
    const trace = await bench(['--url', mockerUrl, '--api', 'sglang-generate', '--workload', 'trace', '--trace-speedup', '50', '--trace-max-input', '4000', '--trace-max-output', '16', '--warmup', '2', '--requests', '6', '--progress', 'none']);
    expect(trace.code, trace.stderr).toBe(0);
    expect(trace.json.requests).toEqual({ sent: 6, completed: 6, failed: 0 });
    expect(trace.json.config.load).toBe('trace timestamps / 50');
    expect(trace.json.cachedTokenShare).toBeGreaterThan(0); // every request starts with hash id 0
    const mt = await bench(['--url', mockerUrl, '--api', 'sglang-generate', '--workload', 'multi-turn', ...turns, '--rate', '50', '--progress', 'none']);
    expect(mt.code, mt.stderr).toBe(0);
    expect(mt.json.requests).toEqual({ sent: 9, completed: 9, failed: 0 });
    expect(mt.json.config.model).toBeNull();
    // A count below the concurrency: loops starting together must not overshoot it.
    const some = await bench(['--url', mockerUrl, '--api', 'sglang-generate', '--workload', 'multi-turn', ...turns, '--concurrency', '4', '--requests', '2', '--progress', 'none']);
    expect(some.json.requests).toEqual({ sent: 2, completed: 2, failed: 0 });
  }, 60_000);

  it('counts errors by kind: HTTP status, garbled stream, wrong output length, cut stream, refused connection', async () => {
    const cases: Array<[string, string]> = [
      [`${badUrl}/rejects`, 'http_400'],
      [`${badUrl}/garbled`, 'malformed'],
      [`${badUrl}/short`, 'output_length'],
      [`${badUrl}/cut`, 'truncated_stream'],
      ['http://127.0.0.1:1', 'connect'],
    ];
    for (const [url, kind] of cases) {
      const r = await bench(['--url', url, '--workload', 'shared-prefix', '--gsp-num-groups', '2', '--gsp-prompts-per-group', '2', '--gsp-output-len', '4', '--concurrency', '2', '--progress', 'none']);
      expect(r.code, url).toBe(1);
      expect(r.stderr).toContain('no request completed');
      expect(r.json.requests, url).toEqual({ sent: 4, completed: 0, failed: 4 });
      expect(Object.keys(r.json.errors), url).toEqual([kind]);
      expect(r.json.errors[kind]!.count).toBe(4);
      expect(r.md).toContain(`| ${kind} | 4 |`);
    }
  }, 60_000);

  it('rejects a bad command line with a clear message', async () => {
    const r = await bench(['--workload', 'shared-prefix', '--concurrency', '2']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('--url is required');
    const both = await bench(['--url', serveUrl, '--workload', 'shared-prefix', '--concurrency', '2', '--rate', '3']);
    expect(both.stderr).toContain('give --concurrency or --rate, not both');
  }, 30_000);
});
