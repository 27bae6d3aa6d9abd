// The request plane end to end over a real socket: uWS server, ws client, flatbuffers frames.
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { KvgateError } from '../../src/errors.js';
import type { GenerateChunk, GenerateRequest } from '../../src/engine/client.js';
import { decodeFrame, encodeFrame, PROTOCOL_VERSION, type Frame } from '../../src/transport/frames.js';
import { RequestPlaneClient } from '../../src/transport/request_plane_client.js';
import { RequestPlaneServer, type RequestPlaneServerOptions } from '../../src/transport/request_plane_server.js';
import { FakeEngine } from './fake_engine.js';
import { card } from './card.js';


const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startServer(engine: FakeEngine, extra: Partial<RequestPlaneServerOptions> = {}) {
  const server = new RequestPlaneServer({
    host: '127.0.0.1',
    port: 0,
    engine: () => engine,
    hello: () => ({ type: 'hello', protocolVersion: PROTOCOL_VERSION, instanceId: 42n, card }),
    ...extra,
  });
  await server.listen();
  cleanups.push(() => server.close());
  return server;
}

async function connect(server: RequestPlaneServer, window?: number) {
  const client = new RequestPlaneClient({ url: server.url, window });
  cleanups.push(() => client.close());
  await client.connect();
  return client;
}

const req = (id: string, first: number, maxNewTokens: number): GenerateRequest => ({
  requestId: id,
  tokenIds: [first, 7, 8, 9],
  sampling: { maxNewTokens, temperature: 0.7, topP: 0.9, topK: 40, seed: 1234, stopTokenIds: [2, 3] },
});

async function collect(it: AsyncIterable<GenerateChunk>) {
  const tokens: number[] = [];
  let last: GenerateChunk | undefined;
  for await (const c of it) {
    tokens.push(...c.tokenIds);
    last = c;
  }
  return { tokens, last: last! };
}

const waitFor = async (cond: () => boolean, what: string, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('frames', () => {
  it('round-trip every frame type', () => {
    const frames: Frame[] = [
      { type: 'hello', protocolVersion: 1, instanceId: 2n ** 63n + 5n, card: { ...card, role: 'prefill', bootstrapHost: '10.0.0.1', bootstrapPort: 8998 } },
      {
        type: 'generate',
        stream: 7,
        window: 32,
        request: {
          requestId: 'r1',
          tokenIds: [1, 2, 4_000_000_000],
          sampling: { maxNewTokens: 5, temperature: 0, seed: 99, ignoreEos: true, minNewTokens: 2, stopTokenIds: [9] },
          dpRank: 3,
          bootstrap: { host: 'h', port: 1234, room: 2n ** 62n + 1n },
        },
      },
      { type: 'generate', stream: 8, window: 0, request: { requestId: 'r2', tokenIds: [5], sampling: { maxNewTokens: 1 } } },
      // Zeros in optional fields stay zeros (not "unset").
      { type: 'generate', stream: 9, window: 1, request: { requestId: 'r3', tokenIds: [0], sampling: { maxNewTokens: 0, temperature: 0, topK: 0, seed: 0 }, dpRank: 0 } },
      { type: 'abort', stream: 7 },
      { type: 'credit', stream: 7, chunks: 16 },
      { type: 'kv_resync', dpRank: 2 },
      { type: 'tokens', stream: 7, tokenIds: [10, 11] },
      { type: 'tokens', stream: 7, tokenIds: [12], cachedTokens: 0 },
      { type: 'final', stream: 7, tokenIds: [], finishReason: { type: 'stop', matched: 2 }, usage: { promptTokens: 3, completionTokens: 4, cachedTokens: 1 } },
      { type: 'final', stream: 7, tokenIds: [1], finishReason: { type: 'stop', matched: '</s>' }, usage: { promptTokens: 3, completionTokens: 4, cachedTokens: 0 } },
      { type: 'final', stream: 7, tokenIds: [1], finishReason: { type: 'stop', matched: null }, usage: { promptTokens: 3, completionTokens: 4, cachedTokens: 0 } },
      { type: 'final', stream: 7, tokenIds: [1], finishReason: { type: 'length', length: 4 }, usage: { promptTokens: 3, completionTokens: 4, cachedTokens: 0 } },
      { type: 'final', stream: 7, tokenIds: [], finishReason: { type: 'abort', message: 'gone', statusCode: 499 }, usage: { promptTokens: 3, completionTokens: 0, cachedTokens: 0 } },
      { type: 'error', stream: 0, code: 'invalid_request', message: 'bad' },
      { type: 'kv_batch', instanceId: 1n, dpRank: 1, seq: 5n, engineSeq: 77n, snapshot: true, payload: new Uint8Array([0x93, 1, 2, 3]) },
      { type: 'kv_reset', instanceId: 1n, dpRank: 1, reason: 'history_lost' },
      {
        type: 'load',
        report: {
          instanceId: 1n,
          timestampMs: 1_700_000_000_000,
          ranks: [{ dpRank: 0, running: 3, queued: 1, kvUsedTokens: 100, kvTotalTokens: 1000, kvUsedBlocks: 7, kvTotalBlocks: 63, tokenUsage: 0.1 }],
        },
      },
    ];
    for (const f of frames) expect(decodeFrame(encodeFrame(f))).toEqual(f);
  });

  it('rejects bytes that are not a frame', () => {
    expect(() => decodeFrame(new Uint8Array([1, 2, 3]))).toThrow();
    expect(() => decodeFrame(new TextEncoder().encode('hello world, not flatbuffers'))).toThrow();
    // A real frame with its body offset corrupted.
    const bytes = encodeFrame({ type: 'tokens', stream: 1, tokenIds: [1, 2, 3] });
    bytes.fill(0xff, 8, 16);
    expect(() => decodeFrame(bytes)).toThrow();
  });

  it('maps an unknown error code to engine_error', () => {
    const f = decodeFrame(encodeFrame({ type: 'error', stream: 1, code: 'no_such_code' as never, message: 'x' }));
    expect(f).toMatchObject({ type: 'error', code: 'engine_error' });
  });
});

describe('request plane', () => {
  it('sends the hello with the model card first', async () => {
    const server = await startServer(new FakeEngine());
    const client = await connect(server);
    expect(client.hello).toEqual({ instanceId: 42n, card });
  });

  it('multiplexes many concurrent streams on one connection', async () => {
    const engine = new FakeEngine({ chunkTokens: 3 });
    const server = await startServer(engine);
    const client = await connect(server, 4);
    const n = 200;
    const results = await Promise.all(
      Array.from({ length: n }, (_, i) => collect(client.generate(req(`r${i}`, 1000 * i, 10 + (i % 17))))),
    );
    expect(server.connectedPeers()).toHaveLength(1);
    results.forEach((r, i) => {
      const max = 10 + (i % 17);
      expect(r.tokens).toEqual(Array.from({ length: max }, (_, k) => 1000 * i + k));
      expect(r.last.finishReason).toEqual({ type: 'length', length: max });
      expect(r.last.usage).toEqual({ promptTokens: 4, completionTokens: max, cachedTokens: 3 });
    });
    expect(engine.finished).toHaveLength(n);
    expect(server.inflightStreams()).toBe(0);
  });

  it('passes sampling, dp rank and bootstrap info through unchanged', async () => {
    let seen: GenerateRequest | undefined;
    const engine = new FakeEngine();
    const spy = { generate: (r: GenerateRequest, s?: AbortSignal) => ((seen = r), engine.generate(r, s)), close: async () => {} };
    const server = await startServer(engine, { engine: () => spy });
    const client = await connect(server);
    const r: GenerateRequest = { ...req('x', 5, 2), dpRank: 1, bootstrap: { host: '10.1.2.3', port: 8998, room: 123456789012345n } };
    const chunks: GenerateChunk[] = [];
    for await (const c of client.generate(r)) chunks.push(c);
    expect(seen).toEqual(r);
    expect(chunks[0]).toEqual({ tokenIds: [5], cachedTokens: 3 });
  });

  it('aborts upstream when the caller aborts, and when the consumer stops early', async () => {
    const engine = new FakeEngine({ delayMs: 5 });
    const server = await startServer(engine);
    const client = await connect(server);
    const ac = new AbortController();
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const c of client.generate(req('abort-me', 1, 10_000), ac.signal)) {
          seen.push(...c.tokenIds);
          if (seen.length === 3) ac.abort();
        }
      })(),
    ).rejects.toMatchObject({ name: 'AbortError' });
    await waitFor(() => engine.aborted.includes('abort-me'), 'engine abort');

    for await (const c of client.generate(req('break-me', 1, 10_000))) if (c.tokenIds.length) break;
    await waitFor(() => engine.aborted.includes('break-me'), 'engine abort after break');
    await waitFor(() => server.inflightStreams() === 0, 'no streams in flight');
    // The connection is still good.
    expect((await collect(client.generate(req('after', 1, 3)))).tokens).toEqual([1, 2, 3]);
  });

  it('an already-aborted signal never reaches the worker', async () => {
    const engine = new FakeEngine();
    const server = await startServer(engine);
    const client = await connect(server);
    const ac = new AbortController();
    ac.abort();
    await expect(collect(client.generate(req('no', 1, 3), ac.signal))).rejects.toMatchObject({ name: 'AbortError' });
    expect(engine.started).toBe(0);
  });

  it('reports engine errors, bad requests and truncated streams with their codes', async () => {
    const engine = new FakeEngine({ failOn: { token: 666, code: 'context_length_exceeded' }, truncateOn: 777 });
    const server = await startServer(engine);
    const client = await connect(server);
    await expect(collect(client.generate(req('e1', 666, 3)))).rejects.toMatchObject({ code: 'context_length_exceeded' });
    await expect(collect(client.generate(req('e2', 777, 3)))).rejects.toMatchObject({ code: 'engine_error', message: expect.stringContaining('without a finish reason') });
    await expect(collect(client.generate({ ...req('e3', 1, 3), tokenIds: [] }))).rejects.toMatchObject({ code: 'invalid_request' });
    // Other streams are unaffected.
    expect((await collect(client.generate(req('ok', 10, 2)))).tokens).toEqual([10, 11]);
  });

  it('answers engine_unavailable while there is no engine and shutting_down while draining', async () => {
    let engine: FakeEngine | null = null;
    const server = await startServer(new FakeEngine(), { engine: () => engine });
    const client = await connect(server);
    await expect(collect(client.generate(req('u', 1, 1)))).rejects.toMatchObject({ code: 'engine_unavailable' });
    engine = new FakeEngine({ delayMs: 2 });
    const inflight = collect(client.generate(req('long', 1, 50)));
    await waitFor(() => server.inflightStreams() === 1, 'stream started');
    const drained = server.drain(10_000);
    await expect(collect(client.generate(req('late', 1, 1)))).rejects.toMatchObject({ code: 'shutting_down' });
    expect((await inflight).tokens).toHaveLength(50);
    expect(await drained).toBe(true);
  });

  it('fails open streams with worker_disconnected when the worker goes away', async () => {
    const engine = new FakeEngine({ delayMs: 5 });
    const server = await startServer(engine);
    const client = await connect(server);
    const p = collect(client.generate(req('cut', 1, 10_000)));
    await waitFor(() => engine.produced > 2, 'some tokens');
    await server.close();
    const err = await p.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KvgateError);
    expect((err as KvgateError).code).toBe('worker_disconnected');
    await expect(collect(client.generate(req('after', 1, 1)))).rejects.toMatchObject({ code: 'worker_disconnected' });
  });

  it('closes a connection that sends garbage, and keeps serving others', async () => {
    const server = await startServer(new FakeEngine());
    const good = await connect(server);
    const raw = new WebSocket(server.url);
    const frames: Frame[] = [];
    const closed = new Promise<void>((resolve) => raw.on('close', () => resolve()));
    raw.on('message', (d: Buffer) => frames.push(decodeFrame(new Uint8Array(d))));
    await new Promise((r) => raw.on('open', r));
    raw.send(Buffer.from('definitely not a frame'));
    await closed;
    expect(frames.map((f) => f.type)).toEqual(['hello', 'error']);
    expect(frames[1]).toMatchObject({ stream: 0, code: 'invalid_request' });
    expect((await collect(good.generate(req('ok', 1, 2)))).tokens).toEqual([1, 2]);
  });
});

describe('backpressure', () => {
  it('a consumer that stops reading stalls only its own stream, and the engine is not read ahead', async () => {
    const engine = new FakeEngine();
    const server = await startServer(engine);
    const window = 8;
    const client = await connect(server, window);
    const slow = client.generate(req('slow', 1, 100_000))[Symbol.asyncIterator]();
    await slow.next(); // read one chunk, then stop
    // Meanwhile other streams on the same connection complete.
    const others = await Promise.all(Array.from({ length: 20 }, (_, i) => collect(client.generate(req(`o${i}`, 10, 50)))));
    expect(others.every((o) => o.tokens.length === 50)).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    const producedForOthers = 20 * 50;
    // The slow stream's engine iterator was pulled at most window + 1 chunks ahead of the read.
    expect(engine.produced - producedForOthers).toBeLessThanOrEqual(window + 2);
    // Reading again resumes the stream.
    for (let i = 0; i < 100; i++) await slow.next();
    expect(engine.produced - producedForOthers).toBeGreaterThan(100);
    await slow.return?.();
    await waitFor(() => engine.aborted.includes('slow'), 'abort of the slow stream');
  });

  it('the client queues at most its limit of outgoing bytes for a worker that stops reading', async () => {
    // A worker stand-in on the ws package: sends its hello, then never reads again.
    const { WebSocketServer } = await import('ws');
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    cleanups.push(
      () =>
        new Promise<void>((r) => {
          for (const c of wss.clients) c.terminate();
          wss.close(() => r());
        }),
    );
    await new Promise((r) => wss.once('listening', r));
    wss.on('connection', (ws) => {
      ws.send(encodeFrame({ type: 'hello', protocolVersion: PROTOCOL_VERSION, instanceId: 1n, card }));
      ws.pause();
    });
    const maxBufferedBytes = 512 * 1024;
    const client = new RequestPlaneClient({ url: `ws://127.0.0.1:${(wss.address() as { port: number }).port}`, maxBufferedBytes });
    cleanups.push(() => client.close());
    await client.connect();
    const bigPrompt = Array.from({ length: 50_000 }, (_, i) => i); // ~200 KB per frame
    const frame = encodeFrame({ type: 'generate', stream: 1, window: 8, request: req('x', 1, 1) }).byteLength + 4 * bigPrompt.length;
    const iterators = Array.from({ length: 200 }, (_, i) => client.generate({ ...req(`big${i}`, 1, 1), tokenIds: bigPrompt })[Symbol.asyncIterator]());
    // Each first next() sends its request, or waits to.
    for (const it of iterators) void it.next().catch(() => undefined);
    let maxBuffered = 0;
    for (let i = 0; i < 40; i++) {
      await new Promise((r) => setTimeout(r, 25));
      maxBuffered = Math.max(maxBuffered, client.bufferedAmount());
    }
    // The socket backed up (kernel buffers full), and the 40 MB the callers want to send
    // wait in their frames, not on the socket: at most the limit plus one frame is queued.
    expect(maxBuffered).toBeGreaterThan(maxBufferedBytes / 2);
    expect(maxBuffered).toBeLessThanOrEqual(maxBufferedBytes + frame);
  });

  it('a peer that stops reading its socket holds at most the high-water mark, then is dropped', async () => {
    const engine = new FakeEngine({ chunkTokens: 1000 });
    const highWaterBytes = 256 * 1024;
    const server = await startServer(engine, { highWaterBytes, stallTimeoutMs: 1500 });
    const raw = new WebSocket(server.url, { perMessageDeflate: false });
    await new Promise((r) => raw.on('message', r)); // hello
    // Window 0 = no per-stream flow control: only the connection limit holds the worker back.
    for (let s = 1; s <= 8; s++) {
      raw.send(encodeFrame({ type: 'generate', stream: s, window: 0, request: req(`flood${s}`, 1, 10_000_000) }));
    }
    raw.pause(); // stop reading: kernel buffers fill, then uWS's buffer
    const peer = () => server.connectedPeers()[0];
    await waitFor(() => (peer()?.bufferedAmount() ?? 0) > highWaterBytes, 'buffer above the high-water mark');
    let maxBuffered = 0;
    const producedAtStall = engine.produced;
    const closed = new Promise<void>((resolve) => raw.on('close', () => resolve()));
    const sampler = setInterval(() => (maxBuffered = Math.max(maxBuffered, peer()?.bufferedAmount() ?? 0)), 5);
    await waitFor(() => server.connectedPeers().length === 0, 'stalled peer dropped');
    clearInterval(sampler);
    // One chunk frame per stream may be in flight when the mark is crossed.
    expect(maxBuffered).toBeLessThanOrEqual(highWaterBytes + 8 * 8 * 1024);
    expect(engine.produced - producedAtStall).toBeLessThanOrEqual(8);
    await waitFor(() => engine.aborted.length === 8, 'engine streams aborted');
    raw.terminate();
    await closed;
  });
});
