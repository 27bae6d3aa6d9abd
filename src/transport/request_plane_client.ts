// The frontend side of the control and event plane: one WebSocket (npm `ws`; Node 20 has no
// WebSocket client) to one worker agent, the source of that worker's Hello (model card, which
// names the engine URL requests stream from), KV-event batches and load reports.
// KV events: batches of (worker, dp rank) must arrive with seq 0, 1, 2, ... after a KvReset;
// on a gap the client asks the worker to rebuild that rank (KvResync) and drops the rank's
// batches until the reset arrives.

import WebSocket from 'ws';
import { KvgateError } from '../errors.js';
import type { ModelCard } from '../engine/model_card.js';
import { silentLogger, type Logger } from '../observability/log.js';
import { frontendCredential, PROOF_HEADER } from '../security/cluster_auth.js';
import { decodeFrame, encodeFrame, PROTOCOL_VERSION, type Frame, type KvResetReason, type LoadReport } from './frames.js';

export interface WorkerHello {
  instanceId: bigint;
  card: ModelCard;
}

export type KvRelayEvent =
  | { kind: 'reset'; instanceId: bigint; dpRank: number; reason: KvResetReason }
  // A sequence gap on a rank: its resync is asked for, and its batches dropped until the reset.
  | { kind: 'gap'; instanceId: bigint; dpRank: number }
  | {
      kind: 'batch';
      instanceId: bigint;
      dpRank: number;
      seq: bigint;
      engineSeq: bigint;
      snapshot: boolean;
      // SGLang's msgpack KV-event batch (reference/sglang.md §2.4), for the native index.
      payload: Uint8Array;
    };

export interface RequestPlaneClientOptions {
  url: string;
  // Reconnect with backoff when the connection is lost (until close()).
  reconnect?: boolean;
  // How long connect() waits for the worker's Hello.
  connectTimeoutMs?: number;
  // No frame or ping from the worker for this long: the connection is dead.
  deadAfterMs?: number;
  // The cluster token, proven (not sent) on the upgrade request; the worker must prove it back.
  token?: string;
  // wss:// workers: the CA (PEM) their certificates are checked against (default: the system's).
  ca?: Buffer;
  log?: Logger;
}

// How long a rank waits for the reset of a resync it asked for before asking again.
const RESYNC_RETRY_MS = 2000;

type Listener<T> = (value: T) => void;

export class RequestPlaneClient {
  hello: WorkerHello | null = null;
  // Why the last attempt to connect failed (for /health), until a Hello arrives.
  lastError: string | null = null;
  private refusedLogged = false;
  private ws: WebSocket | null = null;
  // Next expected seq per dp rank; null while waiting for a KvReset after a gap.
  private readonly kvExpect = new Map<number, bigint | null>();
  // When each rank's pending resync was asked for: the reset can be lost (over NATS, frames
  // published while a subscriber reconnects are gone), so a rank still waiting asks again.
  private readonly resyncAskedAt = new Map<number, number>();
  private readonly kvListeners = new Set<Listener<KvRelayEvent>>();
  private readonly loadListeners = new Set<Listener<LoadReport>>();
  private readonly helloListeners = new Set<Listener<WorkerHello>>();
  private readonly disconnectListeners = new Set<Listener<Error>>();
  private closedByUser = false;
  private reconnectDelay = 250;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private deadTimer: NodeJS.Timeout | null = null;
  private lastSeen = 0;
  private readonly log: Logger;

  constructor(private readonly opts: RequestPlaneClientOptions) {
    this.log = opts.log ?? silentLogger;
  }

  get url(): string {
    return this.opts.url;
  }

  // Bytes queued on the socket, not yet sent (diagnostics and tests).
  bufferedAmount(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  get connected(): boolean {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN && this.hello !== null;
  }

  // Opens the connection and resolves with the worker's Hello.
  connect(): Promise<WorkerHello> {
    this.closedByUser = false;
    return new Promise((resolve, reject) => {
      const timeoutMs = this.opts.connectTimeoutMs ?? 10_000;
      const credential = this.opts.token !== undefined ? frontendCredential(this.opts.token) : null;
      const headers = credential ? { authorization: credential.authorization } : undefined;
      const ws = new WebSocket(this.opts.url, { perMessageDeflate: false, handshakeTimeout: timeoutMs, ...(headers ? { headers } : {}), ...(this.opts.ca ? { ca: this.opts.ca } : {}) });
      this.ws = ws;
      let settled = false;
      const timer = setTimeout(() => fail(new KvgateError('engine_timeout', `no hello from worker ${this.opts.url} within ${timeoutMs} ms`)), timeoutMs);
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        ws.terminate();
        reject(err);
      };
      const onHello = (h: WorkerHello) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.helloListeners.delete(onHello);
        resolve(h);
      };
      this.helloListeners.add(onHello);
      ws.binaryType = 'nodebuffer';
      // A worker that cannot prove the token is not one of this cluster's: no prompt goes to it.
      if (credential) {
        ws.once('upgrade', (res) => {
          if (credential.expectProof(res.headers[PROOF_HEADER] as string | undefined)) return;
          this.lastError = 'worker did not prove the cluster token: not a worker of this cluster (or its token differs)';
          if (!this.refusedLogged) this.log.error(`worker ${this.opts.url}: ${this.lastError}`);
          this.refusedLogged = true;
          fail(new KvgateError('worker_disconnected', `refused worker ${this.opts.url}: ${this.lastError}`));
        });
      }
      ws.on('open', () => {
        this.lastSeen = Date.now();
        this.startDeadTimer();
      });
      ws.on('message', (data: Buffer) => {
        this.lastSeen = Date.now();
        this.onMessage(data);
      });
      ws.on('ping', () => (this.lastSeen = Date.now()));
      ws.on('error', (err) => {
        if (settled) return; // already failed (e.g. the worker's proof was refused)
        // ws reports a refused upgrade as "Unexpected server response: 401".
        if (/\b401\b/.test(err.message)) {
          this.lastError = `worker refused this frontend's cluster token (401): give both the same KVGATE_CLUSTER_TOKEN or --cluster-token-file`;
          if (!this.refusedLogged) this.log.error(`worker ${this.opts.url}: ${this.lastError}`);
          this.refusedLogged = true;
        } else {
          this.lastError = err.message;
          this.log.debug(`worker ${this.opts.url}: ${err.message}`);
        }
        fail(new KvgateError('worker_disconnected', `cannot connect to worker ${this.opts.url}: ${this.lastError}`));
      });
      ws.on('close', () => {
        this.helloListeners.delete(onHello);
        fail(new KvgateError('worker_disconnected', `worker ${this.opts.url} closed the connection before its hello`));
        if (this.ws === ws) this.onClose();
      });
    });
  }

  onKvEvent(listener: Listener<KvRelayEvent>): () => void {
    this.kvListeners.add(listener);
    return () => this.kvListeners.delete(listener);
  }

  onLoad(listener: Listener<LoadReport>): () => void {
    this.loadListeners.add(listener);
    return () => this.loadListeners.delete(listener);
  }

  // Every Hello, including after a reconnect (the instance id changes when the worker did).
  onHello(listener: Listener<WorkerHello>): () => void {
    this.helloListeners.add(listener);
    return () => this.helloListeners.delete(listener);
  }

  onDisconnect(listener: Listener<Error>): () => void {
    this.disconnectListeners.add(listener);
    return () => this.disconnectListeners.delete(listener);
  }

  // Asks the worker to reset and rebuild a dp rank's KV state.
  requestResync(dpRank: number): void {
    this.kvExpect.set(dpRank, null);
    this.resyncAskedAt.set(dpRank, Date.now());
    this.sendNow({ type: 'kv_resync', dpRank });
  }

  async close(): Promise<void> {
    this.closedByUser = true;
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    const ws = this.ws;
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      ws.once('close', () => resolve());
      ws.close(1000);
      setTimeout(() => ws.terminate(), 2000).unref();
    });
  }

  private sendNow(frame: Frame): void {
    const ws = this.ws;
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(encodeFrame(frame));
  }

  private onMessage(data: Buffer): void {
    let frame: Frame;
    try {
      frame = decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    } catch (err) {
      this.log.error(`worker ${this.opts.url} sent a malformed frame (${(err as Error).message}); closing`);
      this.ws?.terminate();
      return;
    }
    switch (frame.type) {
      case 'hello': {
        if (frame.protocolVersion !== PROTOCOL_VERSION) {
          this.log.error(`worker ${this.opts.url} speaks protocol ${frame.protocolVersion}, this frontend ${PROTOCOL_VERSION}; closing`);
          this.ws?.terminate();
          return;
        }
        this.reconnectDelay = 250;
        this.lastError = null;
        this.refusedLogged = false;
        // A new agent starts every rank over (its resets follow); the same agent re-sends
        // its Hello mid-connection when its engine restarted with a new card.
        if (this.hello?.instanceId !== frame.instanceId) this.kvExpect.clear();
        this.hello = { instanceId: frame.instanceId, card: frame.card };
        for (const l of [...this.helloListeners]) l(this.hello);
        return;
      }
      case 'error':
        this.log.error(`worker ${this.opts.url}: ${frame.code}: ${frame.message}`);
        return;
      case 'kv_reset':
      case 'kv_batch':
      case 'load':
        this.onEvent(frame);
        return;
      default:
        this.log.error(`worker ${this.opts.url} sent an unexpected ${frame.type} frame; closing`);
        this.ws?.terminate();
    }
  }

  // An event-plane frame of this worker that came another way (NATS: nats_event_plane.ts),
  // checked in sequence like the request plane's own. Ignored until the worker's Hello.
  receiveEventFrame(bytes: Uint8Array): void {
    if (!this.hello) return;
    let frame: Frame;
    try {
      frame = decodeFrame(bytes);
    } catch (err) {
      this.log.warn(`worker ${this.opts.url}: malformed event-plane frame ignored (${(err as Error).message})`);
      return;
    }
    if (frame.type === 'kv_reset' || frame.type === 'kv_batch' || frame.type === 'load') this.onEvent(frame);
    else this.log.warn(`worker ${this.opts.url}: unexpected ${frame.type} frame on the event plane ignored`);
  }

  private onEvent(frame: Frame & { type: 'kv_reset' | 'kv_batch' | 'load' }): void {
    switch (frame.type) {
      case 'kv_reset':
        this.kvExpect.set(frame.dpRank, 0n);
        this.emitKv({ kind: 'reset', instanceId: frame.instanceId, dpRank: frame.dpRank, reason: frame.reason });
        return;
      case 'kv_batch': {
        const expect = this.kvExpect.get(frame.dpRank);
        if (expect === null) {
          this.askAgainForLostResets(); // resync asked; waiting for the reset
          return;
        }
        if (expect !== frame.seq) {
          this.log.warn(`worker ${this.opts.url} rank ${frame.dpRank}: KV batch seq ${frame.seq}, expected ${expect ?? 'a reset'}; resyncing`);
          this.requestResync(frame.dpRank);
          this.emitKv({ kind: 'gap', instanceId: frame.instanceId, dpRank: frame.dpRank });
          return;
        }
        this.kvExpect.set(frame.dpRank, expect + 1n);
        const { instanceId, dpRank, seq, engineSeq, snapshot, payload } = frame;
        this.emitKv({ kind: 'batch', instanceId, dpRank, seq, engineSeq, snapshot, payload });
        return;
      }
      case 'load':
        this.askAgainForLostResets();
        for (const l of this.loadListeners) l(frame.report);
        return;
    }
  }

  // A frame from the worker while a rank still waits for the reset of its resync, asked for
  // long enough ago: the worker is there, so that reset was lost (over NATS, frames published
  // while a subscriber reconnects are gone). Ask again, or the rank would wait for ever.
  private askAgainForLostResets(): void {
    const now = Date.now();
    for (const [rank, expect] of this.kvExpect) {
      if (expect !== null || now - (this.resyncAskedAt.get(rank) ?? 0) <= RESYNC_RETRY_MS) continue;
      this.log.warn(`worker ${this.opts.url} rank ${rank}: no reset within ${RESYNC_RETRY_MS} ms of asking for a resync; asking again`);
      this.requestResync(rank);
    }
  }

  private emitKv(ev: KvRelayEvent): void {
    for (const l of this.kvListeners) l(ev);
  }

  private onClose(): void {
    this.ws = null;
    if (this.deadTimer) clearInterval(this.deadTimer);
    this.deadTimer = null;
    const wasConnected = this.hello !== null;
    this.hello = null;
    const err = new KvgateError('worker_disconnected', `lost the connection to worker ${this.opts.url}`);
    if (wasConnected) for (const l of this.disconnectListeners) l(err);
    if (this.opts.reconnect && !this.closedByUser) this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    const delay = this.reconnectDelay;
    this.reconnectDelay = Math.min(this.reconnectDelay * 2, 10_000);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (this.closedByUser) return;
      this.connect().catch((err: Error) => this.log.debug(`reconnect to ${this.opts.url}: ${err.message}`));
    }, delay);
    this.reconnectTimer.unref();
  }

  private startDeadTimer(): void {
    const deadAfter = this.opts.deadAfterMs ?? 100_000;
    if (this.deadTimer) clearInterval(this.deadTimer);
    this.deadTimer = setInterval(() => {
      if (Date.now() - this.lastSeen > deadAfter) {
        this.log.warn(`worker ${this.opts.url} silent for ${deadAfter} ms; dropping the connection`);
        this.ws?.terminate();
      }
    }, Math.min(deadAfter, 5000));
    this.deadTimer.unref();
  }
}
