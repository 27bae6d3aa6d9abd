// HTTP on the wire, as raw bytes from a socket: framing and method cases that clients and
// proxies send and that the openai client never would. Each test writes exact bytes to
// the real frontend and reads the exact response, including whether the connection closes.

import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeSglang, type FakeSglang } from './fixtures/fake_sglang.js';
import { qwen3, startStack, type Stack } from './fixtures/stack.js';

const MODEL = 'Qwen/Qwen3-0.6B';
let engine: FakeSglang;
let stack: Stack;

beforeAll(async () => {
  engine = await startFakeSglang({ reply: () => [9707, 151645], servedModelName: MODEL });
  stack = await startStack([engine], { model: qwen3(MODEL), bodyTimeoutMs: 300 });
});

afterAll(async () => {
  await stack.close();
  await engine.close();
});

interface Exchange {
  text: string;
  closed: boolean; // the server closed the connection
  ms: number;
}

// Writes `data` (one write) and collects the answer until the server closes the
// connection or `quietMs` pass without new bytes after at least one arrived.
function raw(data: string, opts: { quietMs?: number; maxMs?: number } = {}): Promise<Exchange> {
  const quiet = opts.quietMs ?? 300;
  const max = opts.maxMs ?? 5000;
  return new Promise((resolve) => {
    const t0 = Date.now();
    const socket = net.connect(stack.frontend.port, '127.0.0.1', () => socket.write(data));
    let text = '';
    let idle: NodeJS.Timeout | undefined;
    const finish = (closed: boolean) => {
      clearTimeout(idle);
      clearTimeout(cap);
      socket.destroy();
      resolve({ text, closed, ms: Date.now() - t0 });
    };
    const cap = setTimeout(() => finish(false), max);
    socket.on('data', (d) => {
      text += d.toString('latin1');
      clearTimeout(idle);
      idle = setTimeout(() => finish(false), quiet);
    });
    socket.on('close', () => finish(true));
    socket.on('error', () => undefined);
  });
}

const chat = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 });

describe('framing', () => {
  it('answers two Content-Length headers with 400 and closes (request smuggling)', async () => {
    for (const [a, b] of [
      [chat.length, chat.length],
      [chat.length, 5],
    ]) {
      const r = await raw(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${a}\r\nContent-Length: ${b}\r\n\r\n${chat}`);
      expect(r.text).toMatch(/^HTTP\/1.1 400 /);
      expect(r.text).toContain('"code":"invalid_request"');
      expect(r.text).toMatch(/more than one Content-Length/);
      expect(r.closed).toBe(true);
    }
    // One Content-Length is served.
    const ok = await raw(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${chat.length}\r\n\r\n${chat}`);
    expect(ok.text).toMatch(/^HTTP\/1.1 200 /);
  });

  it('answers a body that does not arrive in time with 408 and closes', async () => {
    const r = await raw(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${chat.length}\r\n\r\n${chat.slice(0, 10)}`);
    expect(r.text).toMatch(/^HTTP\/1.1 408 /);
    expect(r.text).toContain('"code":"request_timeout"');
    expect(r.closed).toBe(true);
    expect(r.ms).toBeLessThan(4000); // well before uWS's own silent cut-off at 8-12 s
    const m = await (await fetch(`${stack.url}/metrics`)).text();
    expect(m).toMatch(/kvgate_frontend_errors_total\{code="request_timeout"\} [1-9]/);
  });

  it('lets a large body in that keeps arriving past the deadline (renewed per 160 KB)', async () => {
    // 1 MB in 160 KB slices, 200 ms apart: 1.2 s in all against a 300 ms deadline.
    const body = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'word '.repeat(200_000) }] });
    const socket = net.connect(stack.frontend.port, '127.0.0.1');
    let text = '';
    socket.on('data', (d) => (text += d.toString('latin1')));
    const closed = new Promise((r) => socket.on('close', r));
    await new Promise((r) => socket.once('connect', r));
    socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
    for (let at = 0; at < body.length; at += 160 * 1024) {
      socket.write(body.slice(at, at + 160 * 1024));
      await new Promise((r) => setTimeout(r, 200));
    }
    const end = Date.now() + 10_000;
    while (!/"code":"\w+"/.test(text) && Date.now() < end) await Promise.race([closed, new Promise((r) => setTimeout(r, 20))]);
    socket.destroy();
    // The whole body was read and judged: too long for the context, not too slow.
    expect(text).toMatch(/^HTTP\/1.1 400 /);
    expect(text).toContain('context_length_exceeded');
  });
});

describe('methods and paths', () => {
  it('answers HEAD like GET without a body', async () => {
    for (const path of ['/health', '/live', '/v1/models', '/metrics']) {
      const get = await raw(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      // HEAD then GET on one connection: the GET's response must start right after the
      // HEAD's headers, so no body bytes were sent for HEAD.
      const both = await raw(`HEAD ${path} HTTP/1.1\r\nHost: x\r\n\r\nGET /live HTTP/1.1\r\nHost: x\r\n\r\n`);
      const [head, rest] = both.text.split('\r\n\r\n', 2) as [string, string];
      expect(head).toMatch(/^HTTP\/1.1 200 /);
      const getLength = /content-length: (\d+)/i.exec(get.text)![1]!;
      // The metrics text changes between two reads; the others are byte-identical.
      if (path !== '/metrics') expect(/content-length: (\d+)/i.exec(head)![1]).toBe(getLength);
      expect(rest).toMatch(/^HTTP\/1.1 200 /);
    }
  });

  it('serves a model whose id contains "/" at /v1/models/{id}, raw or %-encoded', async () => {
    for (const path of ['/v1/models/Qwen/Qwen3-0.6B', '/v1/models/Qwen%2FQwen3-0.6B']) {
      const r = await raw(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      expect(r.text).toMatch(/^HTTP\/1.1 200 /);
      expect(JSON.parse(r.text.split('\r\n\r\n')[1]!)).toMatchObject({ id: MODEL, object: 'model' });
    }
    const missing = await raw('GET /v1/models/Qwen/nope HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(missing.text).toMatch(/^HTTP\/1.1 404 /);
    expect(missing.text).toContain(`the model 'Qwen/nope' does not exist`);
  });
});
