// Subscribes to one engine publisher (one dp rank) of SGLang KV events over ZMQ and hands
// the batches on in sequence order with no gaps (reference/sglang.md §2.2-2.7).
//
// Live frames are [topic, seq u64 BE, msgpack]; seq counts from 0 per publisher. When a seq
// is skipped (the SUB joined late, or ZMQ dropped frames past its high-water mark), live
// batches are held back and the missing ones are fetched from the engine's replay socket
// (DEALER sends [b"", start_seq u64 BE]; replies [b"", seq, payload] until seq = 2^64-1;
// newer SGLang puts the topic before the seq: [b"", topic, seq, payload], also accepted).
// If the replay buffer no longer reaches the missing seq, `onHistoryLost` is called and
// delivery resumes at the oldest batch still available.
// A lost *last* batch shows no gap until the next one arrives, and SGLang sends no
// heartbeats, so when the stream is quiet the replay socket is asked for anything newer
// every `tailCheckMs` (this also covers batches published before the SUB was connected).

import { Dealer, Subscriber } from 'zeromq';
import { silentLogger, type Logger } from '../observability/log.js';

export interface EngineKvBatch {
  engineSeq: bigint;
  // The msgpack batch exactly as the engine published it.
  payload: Uint8Array;
}

export interface EngineKvSubscriberOptions {
  dpRank: number;
  // Where the engine's PUB socket is, e.g. tcp://127.0.0.1:5557 (already offset by rank).
  endpoint: string;
  // Bind the SUB there and let the engine's PUB connect (SGLang connects when the endpoint
  // names a concrete host), instead of connecting to a PUB that binds.
  bind?: boolean;
  // The engine's replay ROUTER socket for this rank; null if it has none.
  replayEndpoint: string | null;
  topic: string;
  onBatch: (batch: EngineKvBatch) => void;
  // Batches from `expected` up to (not including) `resumedAt` will never be delivered.
  onHistoryLost: (expected: bigint, resumedAt: bigint | null) => void;
  replayTimeoutMs?: number;
  tailCheckMs?: number;
  // Live batches held while a replay runs; past it they are dropped and replayed after.
  maxPending?: number;
  log?: Logger;
}

const TERMINATOR = 0xffffffffffffffffn;

export class EngineKvSubscriber {
  private readonly sub = new Subscriber({ receiveHighWaterMark: 100_000, linger: 0 });
  private dealer: Dealer | null = null;
  private replayQueue: Promise<unknown> = Promise.resolve();
  private expected = 0n;
  private recovering = false;
  private pending: EngineKvBatch[] = [];
  private pendingOverflow = false;
  private closed = false;
  private lost = false;
  private lastLive = 0;
  // Counters for diagnostics: batches received live, batches delivered from a replay,
  // gaps seen on the live stream, and times history was lost.
  readonly stats = { live: 0, replayed: 0, gaps: 0, lost: 0 };
  private tailTimer: NodeJS.Timeout | null = null;
  private readonly log: Logger;

  constructor(private readonly opts: EngineKvSubscriberOptions) {
    this.log = opts.log ?? silentLogger;
  }

  // The next engine seq this subscriber will deliver.
  get nextSeq(): bigint {
    return this.expected;
  }

  // True until a batch of this engine was lost for good.
  get historyIntact(): boolean {
    return !this.lost;
  }

  get canReplay(): boolean {
    return this.opts.replayEndpoint !== null;
  }

  // Binds or connects the SUB. Binding reserves the port before the engine starts; it
  // throws if the port is taken.
  async open(): Promise<void> {
    this.sub.subscribe(this.opts.topic);
    if (this.opts.bind) await this.sub.bind(this.opts.endpoint);
    else this.sub.connect(this.opts.endpoint);
  }

  // Starts reading (after open(), once the engine is up).
  start(): void {
    void this.readLoop();
    // Batches published before the SUB connected are only in the replay buffer: catch up.
    void this.recover();
    if (this.canReplay) {
      const every = this.opts.tailCheckMs ?? 2000;
      this.tailTimer = setInterval(() => {
        if (!this.recovering && Date.now() - this.lastLive >= every) void this.recover();
      }, every);
      this.tailTimer.unref();
    }
  }

  close(): void {
    this.closed = true;
    if (this.tailTimer) clearInterval(this.tailTimer);
    this.sub.close();
    this.dealer?.close();
    this.dealer = null;
  }

  // Every batch the engine still buffers from `from` on, or null if it cannot be asked
  // (no replay socket, no answer within the timeout, malformed answer).
  replay(from: bigint): Promise<EngineKvBatch[] | null> {
    const run = this.replayQueue.then(() => this.replayOnce(from));
    this.replayQueue = run.catch(() => undefined);
    return run;
  }

  private async replayOnce(from: bigint): Promise<EngineKvBatch[] | null> {
    if (!this.opts.replayEndpoint || this.closed) return null;
    const timeout = this.opts.replayTimeoutMs ?? 5000;
    if (!this.dealer) {
      // No receive limit: a ROUTER silently drops replies to a peer whose pipe is full, and a
      // replay is bounded by the engine's buffer anyway.
      this.dealer = new Dealer({ receiveTimeout: timeout, sendTimeout: timeout, linger: 0, receiveHighWaterMark: 0 });
      this.dealer.connect(this.opts.replayEndpoint);
    }
    const dealer = this.dealer;
    const start = Buffer.alloc(8);
    start.writeBigUInt64BE(from);
    try {
      await dealer.send([Buffer.alloc(0), start]);
      const out: EngineKvBatch[] = [];
      for (;;) {
        const frames = await dealer.receive();
        // [b"", seq, payload] or [b"", topic, seq, payload].
        const at = frames.length === 4 ? 2 : 1;
        if ((frames.length !== 3 && frames.length !== 4) || frames[at]!.length !== 8) {
          throw new Error(`malformed replay reply (${frames.length} frames)`);
        }
        const seq = frames[at]!.readBigUInt64BE(0);
        if (seq === TERMINATOR) return out;
        out.push({ engineSeq: seq, payload: new Uint8Array(frames[at + 1]!) });
      }
    } catch (err) {
      if (!this.closed) this.log.warn(`rank ${this.opts.dpRank}: replay from ${from} failed: ${(err as Error).message}`);
      // A late answer must not be read as the answer to the next request.
      dealer.close();
      if (this.dealer === dealer) this.dealer = null;
      return null;
    }
  }

  private async readLoop(): Promise<void> {
    try {
      for await (const frames of this.sub) {
        if (frames.length !== 3 || frames[1]!.length !== 8) {
          this.log.warn(`rank ${this.opts.dpRank}: ignoring a KV-event message of ${frames.length} frames`);
          continue;
        }
        this.onLive({ engineSeq: frames[1]!.readBigUInt64BE(0), payload: new Uint8Array(frames[2]!) });
      }
    } catch (err) {
      if (!this.closed) this.log.error(`rank ${this.opts.dpRank}: KV-event subscription failed: ${(err as Error).message}`);
    }
  }

  private onLive(b: EngineKvBatch): void {
    this.lastLive = Date.now();
    this.stats.live++;
    if (this.recovering) {
      if (this.pending.length < (this.opts.maxPending ?? 10_000)) this.pending.push(b);
      else this.pendingOverflow = true;
      return;
    }
    if (b.engineSeq === this.expected) return this.deliver(b);
    if (b.engineSeq < this.expected) return; // already delivered (from a replay)
    this.log.info(`rank ${this.opts.dpRank}: KV-event gap (got seq ${b.engineSeq}, expected ${this.expected}); replaying`);
    this.stats.gaps++;
    this.pending.push(b);
    void this.recover();
  }

  private deliver(b: EngineKvBatch): void {
    this.expected = b.engineSeq + 1n;
    this.opts.onBatch(b);
  }

  private historyLost(resumedAt: bigint | null): void {
    this.log.warn(`rank ${this.opts.dpRank}: KV events from seq ${this.expected} are no longer available (resuming at ${resumedAt ?? 'the next batch'})`);
    this.lost = true;
    this.stats.lost++;
    this.opts.onHistoryLost(this.expected, resumedAt);
  }

  private async recover(): Promise<void> {
    if (this.recovering) return;
    this.recovering = true;
    let failures = 0;
    try {
      for (;;) {
        this.pendingOverflow = false;
        const replayed = await this.replay(this.expected);
        if (this.closed) return;
        // A replay that timed out is retried before what it should have brought is given up.
        if (replayed === null && this.canReplay && ++failures < 3) continue;
        if (replayed === null) {
          // Cannot replay: what is missing is gone; continue with what was held back.
          const first = this.pending[0];
          if (first && first.engineSeq > this.expected) {
            this.historyLost(first.engineSeq);
            this.expected = first.engineSeq;
          }
        } else if (!this.deliverReplay(replayed)) {
          continue;
        }
        // A gap left, or live batches dropped while replaying: go again.
        if (this.deliverPending() && !this.pendingOverflow) return;
      }
    } finally {
      this.recovering = false;
    }
  }

  // Delivers a replay's batches in order; false when it has a hole. Only a replay that starts
  // past the requested seq means the buffer lost it; a hole further on is a reply the ROUTER
  // dropped, asked for again on the next round.
  private deliverReplay(replayed: EngineKvBatch[]): boolean {
    for (const b of replayed) {
      if (b.engineSeq < this.expected) continue;
      if (b.engineSeq > this.expected) {
        if (b !== replayed[0]) return false;
        this.historyLost(b.engineSeq);
        this.expected = b.engineSeq;
      }
      this.stats.replayed++;
      this.deliver(b);
    }
    return true;
  }

  // Delivers the live batches held back during a replay up to the first gap; false when
  // there is one (the rest stay held back).
  private deliverPending(): boolean {
    const held = this.pending;
    this.pending = [];
    for (let i = 0; i < held.length; i++) {
      const b = held[i]!;
      if (b.engineSeq < this.expected) continue;
      if (b.engineSeq > this.expected) {
        this.pending = held.slice(i);
        return false;
      }
      this.deliver(b);
    }
    return true;
  }
}
