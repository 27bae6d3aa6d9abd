// Slow streaming clients against a frontend in front of the real mocker: a raw TCP client
// that stops reading makes the frontend pause the stream (it stops pulling from the
// engine) with a bounded amount held for it, and disconnect it after the stall timeout,
// aborting the engine's request; a client that resumes in time gets the whole stream.
//
// The model name is long so that each SSE event is ~1.5 KB: the loopback socket buffers
// (several MB) fill after a few thousand tokens rather than tens of thousands.

import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_CLIENT_MAX_BUFFERED_BYTES } from '../../src/frontend/frontend.js';
import { startMocker, type MockerHandle } from '../../src/mocker/index.js';
import { metric, qwen3, startStack, waitFor, type Stack } from './fixtures/stack.js';
import { HTTP_SERVERS } from '../../src/http/wire.js';

const MODEL = `slow-client-${'m'.repeat(1400)}`;
const CONTEXT = 200_000;

describe.each(HTTP_SERVERS)('over --http-server %s', (httpServer) => {
  let mocker: MockerHandle;
  let stalling: Stack; // disconnects a client after 1 s without reading
  let patient: Stack; // waits up to 60 s

  beforeAll(async () => {
    mocker = await startMocker({ port: 0, pageSize: 16, speedupRatio: 20, servedModelName: MODEL, contextLength: CONTEXT, incrementalStreamingOutput: true });
    const model = qwen3(MODEL, CONTEXT);
    stalling = await startStack([mocker], { model, clientStallTimeoutMs: 1000, httpServer });
    patient = await startStack([mocker], { model, clientStallTimeoutMs: 60_000, httpServer });
  });

  afterAll(async () => {
    await stalling?.close();
    await patient?.close();
    await mocker?.close();
  });

  async function engineLoad(): Promise<number> {
    const body = (await (await fetch(`${mocker.url}/get_load`)).json()) as { num_reqs: number }[];
    return body.reduce((n, r) => n + r.num_reqs, 0);
  }

  async function metricsOf(s: Stack): Promise<string> {
    return (await fetch(`${s.url}/metrics`)).text();
  }

  // A streaming chat request on a raw socket that is paused (reads nothing) from the start.
  function pausedRequest(s: Stack, maxTokens: number): { socket: net.Socket; received: Buffer[] } {
    const body = JSON.stringify({
      model: MODEL,
      messages: [{ role: 'user', content: 'Tell me a very long story.' }],
      max_tokens: maxTokens,
      ignore_eos: true,
      stream: true,
      stream_options: { include_usage: true },
    });
    const socket = net.connect(s.frontend.port, '127.0.0.1');
    socket.pause();
    socket.write(`POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    const received: Buffer[] = [];
    socket.on('data', (d: Buffer) => received.push(d));
    return { socket, received };
  }

  // Reads the rest of the response: resolves with the de-chunked body once the last chunk
  // arrived, or with what came before the server closed the connection.
  function readToEnd(socket: net.Socket, received: Buffer[]): Promise<{ head: string; body: string; complete: boolean }> {
    const parse = (complete: boolean) => {
      const all = Buffer.concat(received);
      const split = all.indexOf('\r\n\r\n');
      const head = all.subarray(0, split).toString();
      const parts: Buffer[] = [];
      let at = split + 4;
      for (;;) {
        const eol = all.indexOf('\r\n', at);
        if (eol < 0) break;
        const size = parseInt(all.subarray(at, eol).toString(), 16);
        if (!(size > 0) || eol + 2 + size > all.length) break;
        parts.push(all.subarray(eol + 2, eol + 2 + size));
        at = eol + 2 + size + 2;
      }
      return { head, body: Buffer.concat(parts).toString('utf8'), complete };
    };
    return new Promise((resolve) => {
      const check = () => {
        if (received.length > 0 && Buffer.concat(received.slice(-2)).subarray(-7).toString() === '\r\n0\r\n\r\n') {
          socket.destroy();
          resolve(parse(true));
        }
      };
      socket.on('data', check);
      socket.on('close', () => resolve(parse(false)));
      check();
      socket.resume();
    });
  }

  describe('a streaming client that stops reading', () => {
    it('is paused with a bounded buffer, then disconnected and its engine request aborted', async () => {
      const { socket, received } = pausedRequest(stalling, 150_000);
      try {
        // The frontend's writes back up: it waits for the client instead of pulling tokens.
        await waitFor(async () => metric(await metricsOf(stalling), 'kvgate_frontend_stalled_streams') === 1, 30_000);
        const during = await metricsOf(stalling);
        const held = metric(during, 'kvgate_frontend_client_buffered_bytes');
        expect(held).toBeGreaterThan(0);
        expect(held).toBeLessThanOrEqual(DEFAULT_CLIENT_MAX_BUFFERED_BYTES);
        // 150k tokens take the mocker far longer than the test: the request ends only by abort.
        expect(await engineLoad()).toBe(1);

        await waitFor(async () => metric(await metricsOf(stalling), 'kvgate_frontend_slow_clients_closed_total', { reason: 'stall_timeout' }) === 1, 20_000);
        await waitFor(async () => (await engineLoad()) === 0, 10_000);
        const after = await metricsOf(stalling);
        expect(metric(after, 'kvgate_frontend_disconnected_clients_total', { model: MODEL })).toBe(1);
        expect(metric(after, 'kvgate_frontend_requests_total', { status: 'cancelled' })).toBe(1);
        expect(metric(after, 'kvgate_frontend_stalled_streams')).toBe(0);
        expect(metric(after, 'kvgate_frontend_client_buffered_bytes')).toBe(0);
        expect(stalling.frontend.inflight()).toBe(0);

        // What the client still had in its socket buffer is a cut stream without [DONE].
        const res = await readToEnd(socket, received);
        expect(res.complete).toBe(false);
        expect(res.head).toMatch(/^HTTP\/1\.1 200/);
        expect(res.body).not.toContain('data: [DONE]');
      } finally {
        socket.destroy();
      }
    }, 90_000);

    it('gets the whole stream when it resumes reading before the deadline', async () => {
      const tokens = 12_000;
      const { socket, received } = pausedRequest(patient, tokens);
      try {
        await waitFor(async () => metric(await metricsOf(patient), 'kvgate_frontend_stalled_streams') === 1, 30_000);
        const res = await readToEnd(socket, received);
        expect(res.complete).toBe(true);
        expect(res.body.endsWith('data: [DONE]\n\n')).toBe(true);
        const events = res.body.split('\n\n').filter(Boolean);
        expect(events.pop()).toBe('data: [DONE]');
        const chunks = events.map((e) => {
          expect(e.startsWith('data: ')).toBe(true);
          return JSON.parse(e.slice(6)) as { choices: { delta: { content?: string }; finish_reason: string | null }[]; usage?: { completion_tokens: number } };
        });
        const usage = chunks.at(-1)!.usage!;
        expect(usage.completion_tokens).toBe(tokens);
        expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('length');
        const streamed = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');

        // The same prompt unstreamed (the mocker is deterministic per prompt) gives the same text.
        const full = await patient.client.chat.completions.create({
          model: MODEL,
          messages: [{ role: 'user', content: 'Tell me a very long story.' }],
          max_tokens: tokens,
          ...({ ignore_eos: true } as object),
        }, { timeout: 100_000 }); // 12k tokens: slow on a loaded machine, and not what is tested
        expect(streamed).toBe(full.choices[0]!.message.content);

        const m = await metricsOf(patient);
        expect(metric(m, 'kvgate_frontend_slow_clients_closed_total', { reason: 'stall_timeout' })).toBe(0);
        expect(metric(m, 'kvgate_frontend_requests_total', { request_type: 'stream', status: 'success' })).toBe(1);
        expect(metric(m, 'kvgate_frontend_client_buffered_bytes')).toBe(0);
      } finally {
        socket.destroy();
      }
    }, 120_000);
  });
});
