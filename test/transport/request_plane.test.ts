// The control and event plane end to end over a real socket: uWS server, ws client,
// flatbuffers frames. (Tokens do not cross it: frontends stream from the engines.)
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { decodeFrame, encodeFrame, PROTOCOL_VERSION, type Frame } from '../../src/transport/frames.js';
import { RequestPlaneClient } from '../../src/transport/request_plane_client.js';
import { RequestPlaneServer, type RequestPlaneServerOptions } from '../../src/transport/request_plane_server.js';
import { card } from './card.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function startServer(extra: Partial<RequestPlaneServerOptions> = {}) {
  const server = new RequestPlaneServer({
    host: '127.0.0.1',
    port: 0,
    hello: () => ({ type: 'hello', protocolVersion: PROTOCOL_VERSION, instanceId: 42n, card }),
    ...extra,
  });
  await server.listen();
  cleanups.push(() => server.close());
  return server;
}

async function connect(server: RequestPlaneServer) {
  const client = new RequestPlaneClient({ url: server.url });
  cleanups.push(() => client.close());
  await client.connect();
  return client;
}

const waitFor = async (cond: () => boolean, what: string, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

const load = (running: number): Frame => ({
  type: 'load',
  report: { instanceId: 42n, timestampMs: 1, ranks: [{ dpRank: 0, running, queued: 0, kvUsedTokens: 0, kvTotalTokens: 1, kvUsedBlocks: 0, kvTotalBlocks: 1, tokenUsage: 0 }] },
});

describe('frames', () => {
  it('round-trip every frame type', () => {
    const frames: Frame[] = [
      { type: 'hello', protocolVersion: 1, instanceId: 2n ** 63n + 5n, card: { ...card, role: 'prefill', bootstrapHost: '10.0.0.1', bootstrapPort: 8998 } },
      // Zeros in optional fields stay zeros (not "unset").
      { type: 'hello', protocolVersion: 2, instanceId: 0n, card: { ...card, maxRunningRequests: 0, engineUrl: 'http://[::1]:30000' } },
      { type: 'kv_resync', dpRank: 2 },
      { type: 'error', code: 'invalid_request', message: 'bad' },
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
    const bytes = encodeFrame({ type: 'kv_reset', instanceId: 1n, dpRank: 0, reason: 'join' });
    bytes.fill(0xff, 8, 16);
    expect(() => decodeFrame(bytes)).toThrow();
  });

  it('maps an unknown error code to engine_error', () => {
    const f = decodeFrame(encodeFrame({ type: 'error', code: 'no_such_code' as never, message: 'x' }));
    expect(f).toMatchObject({ type: 'error', code: 'engine_error' });
  });
});

describe('request plane', () => {
  it('sends the hello with the model card (and the engine URL) first', async () => {
    const server = await startServer();
    const client = await connect(server);
    expect(client.hello).toEqual({ instanceId: 42n, card });
    expect(client.hello!.card.engineUrl).toBe(card.engineUrl);
  });

  it('asks again for a resync whose reset never came, once the worker shows it is there', async () => {
    const asked: number[] = [];
    const server = await startServer({ onResync: (_peer, rank) => asked.push(rank) });
    const client = await connect(server);
    client.requestResync(0);
    await waitFor(() => asked.length === 1, 'the resync');
    // The reset is lost (as over NATS while a subscriber reconnects): a frame soon after asks
    // nothing more, one after the retry interval asks again.
    client.receiveEventFrame(encodeFrame(load(1)));
    await new Promise((r) => setTimeout(r, 300));
    expect(asked).toEqual([0]);
    await new Promise((r) => setTimeout(r, 2000));
    client.receiveEventFrame(encodeFrame(load(1)));
    await waitFor(() => asked.length === 2, 'the second resync');
    expect(asked).toEqual([0, 0]);
  });

  it('closes a connection that sends garbage, and keeps serving others', async () => {
    const server = await startServer();
    const good = await connect(server);
    const loads: number[] = [];
    good.onLoad((r) => loads.push(r.ranks[0]!.running));
    const raw = new WebSocket(server.url);
    const frames: Frame[] = [];
    const closed = new Promise<void>((resolve) => raw.on('close', () => resolve()));
    raw.on('message', (d: Buffer) => frames.push(decodeFrame(new Uint8Array(d))));
    await new Promise((r) => raw.on('open', r));
    raw.send(Buffer.from('definitely not a frame'));
    await closed;
    expect(frames.map((f) => f.type)).toEqual(['hello', 'error']);
    expect(frames[1]).toMatchObject({ code: 'invalid_request' });
    server.broadcast(load(5));
    await waitFor(() => loads.includes(5), 'the load report on the good connection');
    expect(good.connected).toBe(true);
  });
});

describe('backpressure', () => {
  it('a peer that stops reading its socket is sent nothing past the high-water mark, then is dropped', async () => {
    const highWaterBytes = 256 * 1024;
    const server = await startServer({ highWaterBytes, stallTimeoutMs: 1500 });
    const raw = new WebSocket(server.url, { perMessageDeflate: false });
    await new Promise((r) => raw.on('message', r)); // hello
    raw.pause(); // stop reading: kernel buffers fill, then uWS's buffer
    const peer = server.connectedPeers()[0]!;
    const batch = (seq: number): Frame => ({ type: 'kv_batch', instanceId: 42n, dpRank: 0, seq: BigInt(seq), engineSeq: BigInt(seq), snapshot: false, payload: new Uint8Array(64 * 1024) });
    let sent = 0;
    while (peer.trySend(batch(sent))) {
      sent++;
      if (sent > 10_000) throw new Error('the buffer never filled');
      if (sent % 16 === 0) await new Promise((r) => setImmediate(r));
    }
    // Congested: frames are refused, and uWS holds at most one frame past the mark.
    expect(peer.congested()).toBe(true);
    expect(peer.bufferedAmount()).toBeLessThanOrEqual(highWaterBytes + 70 * 1024);
    expect(peer.trySend(batch(sent))).toBe(false);
    const closed = new Promise<void>((resolve) => raw.on('close', () => resolve()));
    await waitFor(() => server.connectedPeers().length === 0, 'stalled peer dropped');
    raw.terminate();
    await closed;
  });
});
