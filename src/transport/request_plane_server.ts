// The worker side of the request plane: a uWebSockets.js WebSocket endpoint, one connection
// per frontend, many generate streams multiplexed on it (frames: schema/request_plane.fbs).
//
// Backpressure, so that a slow frontend never grows the worker's memory without bound:
// - per stream, the frontend grants a window of chunks (GenerateRequest.window) and tops it up
//   with Credit frames; a stream out of credit stops pulling from the engine, which leaves the
//   engine's own HTTP stream unread;
// - per connection, above `highWaterBytes` of unsent bytes every stream waits for uWS's drain
//   and event frames are not sent (the event plane rebuilds that peer's KV state after the
//   drain, see kv_relay.ts);
// - a peer that stays above the high-water mark for `stallTimeoutMs`, or whose buffer reaches
//   `hardLimitBytes`, is disconnected.

import { KvgateError } from '../errors.js';
import type { EngineClient, GenerateChunk, GenerateRequest } from '../engine/client.js';
import { uws, type TemplatedApp, type WebSocket, type us_listen_socket } from '../http/uws.js';
import { silentLogger, type Logger } from '../observability/log.js';
import { decodeFrame, encodeFrame, type Frame } from './frames.js';

export interface RequestPlaneServerOptions {
  host: string;
  port: number;
  // The engine requests are served by (replaceable: the supervisor swaps it on restart).
  engine: () => EngineClient | null;
  // The Hello frame of this worker, sent first on every connection.
  hello: () => Frame & { type: 'hello' };
  onConnect?: (peer: Peer) => void;
  onDisconnect?: (peer: Peer) => void;
  // The peer asked to rebuild a dp rank's KV state (KvResync).
  onResync?: (peer: Peer, dpRank: number) => void;
  // The peer's send buffer went back under the high-water mark.
  onDrain?: (peer: Peer) => void;
  highWaterBytes?: number;
  hardLimitBytes?: number;
  stallTimeoutMs?: number;
  maxPayloadBytes?: number;
  log?: Logger;
}

interface StreamState {
  abort: AbortController;
  credit: number;
  wake: (() => void) | null;
}

interface UserData {
  peer: Peer | null;
}

let nextPeerId = 1;

// One connected frontend.
export class Peer {
  readonly id = nextPeerId++;
  closed = false;
  readonly streams = new Map<number, StreamState>();
  private drainWaiters: (() => void)[] = [];
  private aboveSince: number | null = null;

  constructor(
    private readonly ws: WebSocket<UserData>,
    private readonly highWater: number,
  ) {}

  bufferedAmount(): number {
    return this.closed ? 0 : this.ws.getBufferedAmount();
  }

  // Above the high-water mark: only frames that end a stream or carry a rebuild go out.
  congested(): boolean {
    return this.bufferedAmount() > this.highWater;
  }

  // Sends whatever the buffer holds; uWS drops it (and closes) past the hard limit.
  send(frame: Frame): void {
    if (this.closed) return;
    this.ws.send(encodeFrame(frame), true);
    this.noteBuffer();
  }

  // Sends unless congested; false means the frame was not sent.
  trySend(frame: Frame): boolean {
    if (this.closed || this.congested()) return false;
    this.send(frame);
    return true;
  }

  // Resolves when the buffer is under the high-water mark (or the peer is gone).
  writable(): Promise<void> {
    if (!this.congested()) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  stalledFor(now: number): number {
    this.noteBuffer(now);
    return this.aboveSince === null ? 0 : now - this.aboveSince;
  }

  // Forceful: whatever is queued is dropped (stuck peers).
  disconnect(): void {
    if (!this.closed) this.ws.close();
  }

  // Graceful: queued frames go out first, then the close frame.
  end(code: number, reason: string): void {
    if (!this.closed) this.ws.end(code, reason);
  }

  // uWS drain callback / close.
  drained(): boolean {
    this.noteBuffer();
    if (this.congested()) return false;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
    return true;
  }

  markClosed(): void {
    this.closed = true;
    for (const st of this.streams.values()) st.abort.abort();
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }

  private noteBuffer(now = Date.now()): void {
    if (this.congested()) this.aboveSince ??= now;
    else this.aboveSince = null;
  }
}

export class RequestPlaneServer {
  // Held while listening so the uWS app outlives start(); dropped on close.
  private app: TemplatedApp | null = null;
  private listenSocket: us_listen_socket | null = null;
  private readonly peers = new Set<Peer>();
  private accepting = true;
  private inflight = 0;
  private idleWaiters: (() => void)[] = [];
  private stallTimer: NodeJS.Timeout | null = null;
  private readonly log: Logger;
  private readonly highWater: number;
  private readonly hardLimit: number;
  private readonly stallTimeout: number;
  port = 0;

  constructor(private readonly opts: RequestPlaneServerOptions) {
    this.log = opts.log ?? silentLogger;
    this.highWater = opts.highWaterBytes ?? 1 << 20;
    this.hardLimit = opts.hardLimitBytes ?? 64 << 20;
    this.stallTimeout = opts.stallTimeoutMs ?? 60_000;
  }

  async listen(): Promise<number> {
    const app = uws.App();
    app.ws<UserData>('/*', {
      maxPayloadLength: this.opts.maxPayloadBytes ?? 64 << 20,
      maxBackpressure: this.hardLimit,
      closeOnBackpressureLimit: 1,
      idleTimeout: 32,
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => {
        res.upgrade<UserData>(
          { peer: null },
          req.getHeader('sec-websocket-key'),
          req.getHeader('sec-websocket-protocol'),
          req.getHeader('sec-websocket-extensions'),
          context,
        );
      },
      open: (ws) => this.onOpen(ws),
      message: (ws, message) => this.onMessage(ws, message),
      drain: (ws) => {
        const peer = ws.getUserData().peer;
        if (peer && peer.drained()) this.opts.onDrain?.(peer);
      },
      close: (ws) => this.onClose(ws),
    });
    app.any('/*', (res) => {
      res.writeStatus('426 Upgrade Required').end('kvgate request plane: connect with a WebSocket\n');
    });
    this.app = app;
    await new Promise<void>((resolve, reject) => {
      app.listen(this.opts.host, this.opts.port, (ls) => {
        if (!ls) return reject(new KvgateError('invalid_config', `request plane cannot listen on ${this.opts.host}:${this.opts.port}`));
        this.listenSocket = ls;
        this.port = uws.us_socket_local_port(ls as never);
        resolve();
      });
    });
    this.stallTimer = setInterval(() => this.dropStalledPeers(), Math.min(1000, this.stallTimeout / 2));
    this.stallTimer.unref();
    return this.port;
  }

  get url(): string {
    return `ws://${this.opts.host}:${this.port}`;
  }

  connectedPeers(): Peer[] {
    return [...this.peers];
  }

  inflightStreams(): number {
    return this.inflight;
  }

  // Sends a frame to every peer that is not congested (load reports: the next one supersedes).
  broadcast(frame: Frame): void {
    for (const p of this.peers) p.trySend(frame);
  }

  // Drain: refuse new streams; resolves when in-flight streams are done or at the deadline.
  async drain(deadlineMs: number): Promise<boolean> {
    this.accepting = false;
    if (this.inflight === 0) return true;
    let timer: NodeJS.Timeout | undefined;
    const idle = new Promise<boolean>((resolve) => this.idleWaiters.push(() => resolve(true)));
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), deadlineMs)));
    const done = await Promise.race([idle, timeout]);
    clearTimeout(timer);
    return done;
  }

  async close(): Promise<void> {
    this.accepting = false;
    if (this.stallTimer) clearInterval(this.stallTimer);
    if (this.listenSocket) uws.us_listen_socket_close(this.listenSocket);
    this.listenSocket = null;
    for (const p of [...this.peers]) p.disconnect();
    this.app = null;
  }

  private onOpen(ws: WebSocket<UserData>): void {
    const peer = new Peer(ws, this.highWater);
    ws.getUserData().peer = peer;
    this.peers.add(peer);
    this.log.info(`frontend connected (peer ${peer.id}, ${this.peers.size} connected)`);
    peer.send(this.opts.hello());
    this.opts.onConnect?.(peer);
  }

  private onClose(ws: WebSocket<UserData>): void {
    const peer = ws.getUserData().peer;
    if (!peer) return;
    peer.markClosed();
    this.peers.delete(peer);
    this.log.info(`frontend disconnected (peer ${peer.id}, ${peer.streams.size} streams aborted)`);
    this.opts.onDisconnect?.(peer);
  }

  private onMessage(ws: WebSocket<UserData>, message: ArrayBuffer): void {
    const peer = ws.getUserData().peer;
    if (!peer) return;
    let frame: Frame;
    try {
      frame = decodeFrame(new Uint8Array(message));
    } catch (err) {
      return this.protocolError(peer, `malformed frame: ${(err as Error).message}`);
    }
    switch (frame.type) {
      case 'generate':
        return this.startStream(peer, frame.stream, frame.window, frame.request);
      case 'abort': {
        const st = peer.streams.get(frame.stream);
        if (st) {
          st.abort.abort();
          st.wake?.();
        }
        return;
      }
      case 'credit': {
        const st = peer.streams.get(frame.stream);
        if (st) {
          st.credit += frame.chunks;
          st.wake?.();
        }
        return;
      }
      case 'kv_resync':
        this.opts.onResync?.(peer, frame.dpRank);
        return;
      default:
        return this.protocolError(peer, `unexpected ${frame.type} frame from a frontend`);
    }
  }

  private protocolError(peer: Peer, message: string): void {
    this.log.warn(`peer ${peer.id}: ${message}; closing`);
    peer.send({ type: 'error', stream: 0, code: 'invalid_request', message });
    peer.end(1002, 'protocol error');
  }

  private startStream(peer: Peer, stream: number, window: number, req: GenerateRequest): void {
    const fail = (code: 'invalid_request' | 'shutting_down' | 'engine_unavailable', message: string) =>
      peer.send({ type: 'error', stream, code, message });
    if (stream === 0 || peer.streams.has(stream)) return fail('invalid_request', `stream id ${stream} is zero or already in use`);
    if (!this.accepting) return fail('shutting_down', 'worker is draining');
    if (req.tokenIds.length === 0) return fail('invalid_request', 'token_ids is empty');
    const engine = this.opts.engine();
    if (!engine) return fail('engine_unavailable', 'engine is not running (starting or restarting)');
    const st: StreamState = { abort: new AbortController(), credit: window === 0 ? Infinity : window, wake: null };
    peer.streams.set(stream, st);
    this.inflight++;
    void this.runStream(peer, stream, st, engine, req).finally(() => {
      peer.streams.delete(stream);
      if (--this.inflight === 0) {
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
      }
    });
  }

  private async runStream(peer: Peer, stream: number, st: StreamState, engine: EngineClient, req: GenerateRequest): Promise<void> {
    const signal = st.abort.signal;
    let completion = 0;
    try {
      for await (const chunk of engine.generate(req, signal)) {
        if (signal.aborted) return;
        completion += chunk.tokenIds.length;
        if (chunk.finishReason) return peer.send(finalFrame(stream, chunk, req, completion));
        if (chunk.tokenIds.length === 0 && chunk.cachedTokens === undefined) continue;
        await this.sendable(peer, st);
        if (signal.aborted) return;
        peer.send(
          chunk.cachedTokens === undefined
            ? { type: 'tokens', stream, tokenIds: chunk.tokenIds }
            : { type: 'tokens', stream, tokenIds: chunk.tokenIds, cachedTokens: chunk.cachedTokens },
        );
        st.credit--;
      }
      if (!signal.aborted) peer.send({ type: 'error', stream, code: 'engine_error', message: 'engine stream ended without a finish reason' });
    } catch (err) {
      if (signal.aborted) return;
      const code = err instanceof KvgateError ? err.code : 'engine_error';
      peer.send({ type: 'error', stream, code, message: (err as Error).message });
    }
  }

  // Waits for stream credit and connection room; an abort or close wakes it too.
  private async sendable(peer: Peer, st: StreamState): Promise<void> {
    while (!st.abort.signal.aborted) {
      if (st.credit <= 0) {
        await new Promise<void>((resolve) => (st.wake = resolve));
        st.wake = null;
        continue;
      }
      if (peer.congested()) {
        const woken = new Promise<void>((resolve) => (st.wake = resolve));
        await Promise.race([peer.writable(), woken]);
        st.wake = null;
        continue;
      }
      return;
    }
  }

  private dropStalledPeers(): void {
    const now = Date.now();
    for (const p of this.peers) {
      if (p.stalledFor(now) > this.stallTimeout) {
        this.log.warn(`peer ${p.id} has not read for ${this.stallTimeout} ms (${p.bufferedAmount()} bytes queued); disconnecting`);
        p.disconnect();
      }
    }
  }
}

function finalFrame(stream: number, chunk: GenerateChunk, req: GenerateRequest, completion: number): Frame {
  return {
    type: 'final',
    stream,
    tokenIds: chunk.tokenIds,
    finishReason: chunk.finishReason!,
    // The engine client reports usage with the finish; if it did not, what is known for sure.
    usage: chunk.usage ?? { promptTokens: req.tokenIds.length, completionTokens: completion, cachedTokens: 0 },
  };
}
