// The worker side of the control and event plane: a uWebSockets.js WebSocket endpoint, one
// connection per frontend (frames: schema/request_plane.fbs): the Hello with the model card
// (which names the engine URL frontends stream from: no token passes here), KV events, load.
//
// Backpressure, so that a slow frontend never grows the worker's memory without bound:
// - above `highWaterBytes` of unsent bytes event frames are not sent (the event plane
//   rebuilds that peer's KV state after the drain, see kv_relay.ts);
// - a peer that stays above the high-water mark for `stallTimeoutMs`, or whose buffer reaches
//   `hardLimitBytes`, is disconnected.

import { KvgateError } from '../errors.js';
import { uws, type TemplatedApp, type WebSocket, type us_listen_socket } from '../http/uws.js';
import { silentLogger, type Logger } from '../observability/log.js';
import { FrontendVerifier, PROOF_HEADER } from '../security/cluster_auth.js';
import { decodeFrame, encodeFrame, type Frame } from './frames.js';

export interface RequestPlaneServerOptions {
  host: string;
  port: number;
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
  // TLS (wss://): the worker's certificate and key, PEM files.
  tls?: { cert: string; key: string };
  // The cluster token: a connection whose upgrade request does not prove it (HMAC, see
  // security/cluster_auth.ts) is refused with 401 and logged; the 101 carries this worker's proof.
  token?: string;
  log?: Logger;
}

interface UserData {
  peer: Peer | null;
}

let nextPeerId = 1;

// One connected frontend.
export class Peer {
  readonly id = nextPeerId++;
  closed = false;
  private aboveSince: number | null = null;

  constructor(
    private readonly ws: WebSocket<UserData>,
    private readonly highWater: number,
  ) {}

  bufferedAmount(): number {
    return this.closed ? 0 : this.ws.getBufferedAmount();
  }

  // Above the high-water mark: only frames that carry a rebuild go out.
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
    return !this.congested();
  }

  markClosed(): void {
    this.closed = true;
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
  private stallTimer: NodeJS.Timeout | null = null;
  private readonly log: Logger;
  private readonly highWater: number;
  private readonly hardLimit: number;
  private readonly stallTimeout: number;
  private readonly verifier: FrontendVerifier | null;
  port = 0;

  constructor(private readonly opts: RequestPlaneServerOptions) {
    this.log = opts.log ?? silentLogger;
    this.highWater = opts.highWaterBytes ?? 1 << 20;
    this.hardLimit = opts.hardLimitBytes ?? 64 << 20;
    this.stallTimeout = opts.stallTimeoutMs ?? 60_000;
    this.verifier = opts.token !== undefined ? new FrontendVerifier(opts.token) : null;
  }

  async listen(): Promise<number> {
    const tls = this.opts.tls;
    const app = tls ? uws.SSLApp({ cert_file_name: tls.cert, key_file_name: tls.key }) : uws.App();
    app.ws<UserData>('/*', {
      maxPayloadLength: this.opts.maxPayloadBytes ?? 64 << 20,
      maxBackpressure: this.hardLimit,
      closeOnBackpressureLimit: 1,
      idleTimeout: 32,
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => {
        if (this.verifier) {
          const check = this.verifier.check(req.getHeader('authorization'));
          if (!check.ok) {
            const from = Buffer.from(res.getRemoteAddressAsText()).toString();
            const why = check.why === 'stale' ? `a stale cluster-token proof (clocks ${Math.round(check.skewMs! / 1000)} s apart?)` : `${check.why} cluster token`;
            this.log.warn(`refused a request-plane connection from ${from}: ${why} (401)`, { remote: from, refused: true });
            res.writeStatus('401 Unauthorized').writeHeader('www-authenticate', 'KvgateHmac').end('kvgate request plane: a valid cluster token proof is required\n');
            return;
          }
          // This worker's proof that it holds the token too (checked by the frontend).
          res.writeStatus('101 Switching Protocols').writeHeader(PROOF_HEADER, check.proof);
        }
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
    return `${this.opts.tls ? 'wss' : 'ws'}://${this.opts.host}:${this.port}`;
  }

  connectedPeers(): Peer[] {
    return [...this.peers];
  }

  // Sends a frame to every peer that is not congested (load reports: the next one supersedes).
  broadcast(frame: Frame): void {
    for (const p of this.peers) p.trySend(frame);
  }

  async close(): Promise<void> {
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
    this.log.info(`frontend disconnected (peer ${peer.id})`);
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
      case 'kv_resync':
        this.opts.onResync?.(peer, frame.dpRank);
        return;
      default:
        return this.protocolError(peer, `unexpected ${frame.type} frame from a frontend`);
    }
  }

  private protocolError(peer: Peer, message: string): void {
    this.log.warn(`peer ${peer.id}: ${message}; closing`);
    peer.send({ type: 'error', code: 'invalid_request', message });
    peer.end(1002, 'protocol error');
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
