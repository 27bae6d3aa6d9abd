// HTTP on the wire, as raw bytes from a socket: framing and method cases that clients and
// proxies send and that the openai client never would. Each test writes exact bytes to
// the real frontend and reads the exact response, including whether the connection closes.
// Runs over both HTTP servers (--http-server uws|node); the cases uWS gets wrong (issue 9:
// HTTP/1.0, pipelining, too many headers, unknown methods, an HTTP/2 preface) run on node.

import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeSglang, type FakeSglang } from './fixtures/fake_sglang.js';
import { qwen3, startStack, type Stack } from './fixtures/stack.js';
import { HTTP_SERVERS } from '../../src/http/wire.js';

const MODEL = 'Qwen/Qwen3-0.6B';
describe.each(HTTP_SERVERS)('over --http-server %s', (httpServer) => {
  let engine: FakeSglang;
  let stack: Stack;

  beforeAll(async () => {
    engine = await startFakeSglang({ reply: () => [9707, 151645], servedModelName: MODEL });
    stack = await startStack([engine], { model: qwen3(MODEL), bodyTimeoutMs: 300, httpServer });
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
      // 1 MB in 160 KB slices, 100 ms apart: 0.7 s in all against a 300 ms deadline (a slice
      // late by up to 200 ms on a loaded machine still renews it).
      const body = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'word '.repeat(200_000) }] });
      const socket = net.connect(stack.frontend.port, '127.0.0.1');
      let text = '';
      socket.on('data', (d) => (text += d.toString('latin1')));
      const closed = new Promise((r) => socket.on('close', r));
      await new Promise((r) => socket.once('connect', r));
      socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
      for (let at = 0; at < body.length; at += 160 * 1024) {
        socket.write(body.slice(at, at + 160 * 1024));
        await new Promise((r) => setTimeout(r, 100));
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

  // What uWS gets wrong (issue 9, README "Node versions and the HTTP server"); node only.
  if (httpServer === 'node') {
    describe('HTTP/1.0, pipelining and what the parser refuses', () => {
      const post = (body: string, id: string, version = '1.1') =>
        `POST /v1/chat/completions HTTP/${version}\r\nHost: x\r\nX-Request-Id: ${id}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
      const streamed = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, stream: true });

      it('answers HTTP/1.0 and closes after it; a stream is delimited by the close', async () => {
        const get = await raw('GET /live HTTP/1.0\r\n\r\n');
        expect(get.text).toMatch(/^HTTP\/1.1 200 /);
        expect(get.text).toContain('{"status":"live"}');
        expect(get.closed).toBe(true);
        const unary = await raw(post(chat, 'u10', '1.0'));
        expect(unary.text).toMatch(/^HTTP\/1.1 200 /);
        expect(unary.text).toContain('"object":"chat.completion"');
        expect(unary.closed).toBe(true);
        const sse = await raw(post(streamed, 's10', '1.0'));
        expect(sse.text).toMatch(/^HTTP\/1.1 200 /);
        expect(sse.text).not.toMatch(/transfer-encoding/i);
        expect(sse.text).toContain('"object":"chat.completion.chunk"');
        expect(sse.text.trimEnd()).toMatch(/data: \[DONE\]$/);
        expect(sse.closed).toBe(true);
      });

      it('keeps an idle kept-alive connection open past node\'s default 5 s, and says for how long', async () => {
        const socket = net.connect(stack.frontend.port, '127.0.0.1');
        let text = '';
        let closed = false;
        socket.on('data', (d) => (text += d.toString('latin1')));
        socket.on('close', () => (closed = true));
        socket.on('error', () => undefined);
        const answers = async (n: number) => {
          const end = Date.now() + 5000;
          while ((text.match(/\{"status":"live"\}/g) ?? []).length < n && !closed && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
        };
        socket.write('GET /live HTTP/1.1\r\nHost: x\r\n\r\n');
        await answers(1);
        expect(text).toMatch(/keep-alive: timeout=75/i);
        await new Promise((r) => setTimeout(r, 5500));
        expect(closed).toBe(false);
        socket.write('GET /live HTTP/1.1\r\nHost: x\r\n\r\n');
        await answers(2);
        socket.destroy();
        expect(text.match(/HTTP\/1.1 200 /g)).toHaveLength(2);
      });

      it('answers pipelined requests in order: POST+POST, POST (stream)+GET', async () => {
        const two = await raw(post(chat, 'first', '1.1') + post(chat, 'second', '1.1'));
        const ids = [...two.text.matchAll(/x-request-id: (\w+)/gi)].map((m) => m[1]);
        expect(ids).toEqual(['first', 'second']);
        expect(two.text.match(/HTTP\/1.1 200 /g)).toHaveLength(2);
        expect(two.closed).toBe(false);
        const mixed = await raw(post(streamed, 'stream', '1.1') + 'GET /live HTTP/1.1\r\nHost: x\r\n\r\n');
        const at = mixed.text.indexOf('data: [DONE]');
        expect(at).toBeGreaterThan(0);
        expect(mixed.text.indexOf('{"status":"live"}')).toBeGreaterThan(at);
      });

      it('answers too many or too large headers with 431 and closes', async () => {
        const many = Array.from({ length: 120 }, (_, i) => `X-H${i}: ${i}\r\n`).join('');
        for (const extra of [many, `X-Big: ${'a'.repeat(70_000)}\r\n`]) {
          const r = await raw(`GET /live HTTP/1.1\r\nHost: x\r\n${extra}\r\n`);
          expect(r.text).toMatch(/^HTTP\/1.1 431 /);
          expect(r.text).toContain('"code":"header_fields_too_large"');
          expect(r.closed).toBe(true);
          expect(r.ms).toBeLessThan(2000); // uWS hangs ~10 s here
        }
        // 60 headers (uWS's limit is 48) are served.
        const sixty = Array.from({ length: 60 }, (_, i) => `X-H${i}: ${i}\r\n`).join('');
        expect((await raw(`GET /live HTTP/1.1\r\nHost: x\r\n${sixty}\r\n`)).text).toMatch(/^HTTP\/1.1 200 /);
      });

      it('answers an unknown method with 501 and a known one on no route with 405', async () => {
        const r = await raw('BREW /v1/models HTTP/1.1\r\nHost: x\r\n\r\n');
        expect(r.text).toMatch(/^HTTP\/1.1 501 /);
        expect(r.text).toContain('"code":"unknown_method"');
        expect(r.closed).toBe(true);
        const known = await raw('DELETE /v1/models HTTP/1.1\r\nHost: x\r\n\r\n');
        expect(known.text).toMatch(/^HTTP\/1.1 405 /);
      });

      it('closes a connection that opens with an HTTP/2 preface at once', async () => {
        const r = await raw('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
        expect(r.closed).toBe(true);
        expect(r.ms).toBeLessThan(1000);
      });

      it('refuses Content-Length with Transfer-Encoding and a bad chunk size (smuggling)', async () => {
        const te = await raw(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n${chat.length.toString(16)}\r\n${chat}\r\n0\r\n\r\n`);
        expect(te.text).toMatch(/^HTTP\/1.1 400 /);
        expect(te.closed).toBe(true);
        const chunk = await raw(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n${chat}\r\n0\r\n\r\n`);
        expect(chunk.text).toMatch(/^HTTP\/1.1 400 /);
        expect(chunk.closed).toBe(true);
      });
    });
  }
});
