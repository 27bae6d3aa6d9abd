// The worker's event plane: relays its engine's KV-event batches (raw bytes) to every
// connected frontend, and makes sure no frontend's view of this worker is ever stale.
//
// Per (frontend, dp rank) the relay numbers batches 0, 1, 2, ... after a KvReset. A rank's
// state is (re)built after a reset in one of two ways:
// - replay: when the engine's replay buffer still reaches back to its seq 0 (and no batch
//   of this engine was ever lost), the frontend gets the engine's own batches from seq 0,
//   byte for byte, then the live ones;
// - snapshot: otherwise, the agent's table of the engine's live blocks (kv_block_table.ts)
//   is sent as synthesized SGLang batches (flagged `snapshot`), then the live ones.
// Resets happen when a frontend connects (join), when it asks (resync, after a gap on its
// side), when its frames had to be dropped because it read too slowly (resync, once it has
// drained), when the engine was replaced (engine_restart: the cache is empty), and when the
// agent itself lost engine history (history_lost: the table is cleared, so frontends forget
// blocks the agent can no longer vouch for; blocks stored before the loss and still cached
// are unknown until stored again, which costs cache hits, never correctness).

import type { Frame, KvResetReason } from './frames.js';
import { KvBlockTable } from './kv_block_table.js';
import { EngineKvSubscriber, type EngineKvBatch } from './kv_subscriber.js';
import type { Peer } from './request_plane_server.js';
import { silentLogger, type Logger } from '../observability/log.js';

export interface KvSource {
  dpRank: number;
  endpoint: string;
  // Bind the SUB at `endpoint` (the engine's PUB connects) rather than connect to it.
  bind?: boolean;
  replayEndpoint: string | null;
  topic: string;
}

interface Rank {
  dpRank: number;
  subscriber: EngineKvSubscriber;
  table: KvBlockTable;
}

interface PeerRank {
  seq: bigint;
  // live: batches go out as they come; rebuilding: waiting for a replay, live batches are
  // queued; dirty: frames were dropped, rebuild after the peer drains.
  mode: 'live' | 'rebuilding' | 'dirty';
  queue: EngineKvBatch[];
  // More live batches came during a replay than are kept: rebuild from the table instead.
  overflow?: boolean;
}

// Live batches kept per (peer, rank) while its replay is in flight.
const MAX_QUEUED = 10_000;

export interface KvRelayOptions {
  instanceId: bigint;
  replayTimeoutMs?: number;
  tailCheckMs?: number;
  log?: Logger;
}

// Outbound frames, narrowed to what a relay needs from a connection.
export type RelayPeer = Pick<Peer, 'send' | 'trySend' | 'closed' | 'id'>;

export class KvRelay {
  private ranks = new Map<number, Rank>();
  private prepared: Rank[] = [];
  private readonly peers = new Map<RelayPeer, Map<number, PeerRank>>();
  private readonly log: Logger;

  constructor(private readonly opts: KvRelayOptions) {
    this.log = opts.log ?? silentLogger;
  }

  // prepare() + start().
  async attach(sources: KvSource[]): Promise<void> {
    await this.prepare(sources);
    this.start();
  }

  // Opens (binds or connects) the subscriptions of a new engine, replacing the current
  // ones, without reading yet. On failure (a port is taken) nothing is left open.
  async prepare(sources: KvSource[]): Promise<void> {
    this.detach();
    const ranks: Rank[] = [];
    try {
      for (const s of sources) {
        const rank: Rank = {
          dpRank: s.dpRank,
          table: new KvBlockTable(),
          subscriber: new EngineKvSubscriber({
            ...s,
            replayTimeoutMs: this.opts.replayTimeoutMs,
            tailCheckMs: this.opts.tailCheckMs,
            log: this.log,
            onBatch: (b) => this.onBatch(rank, b),
            onHistoryLost: () => this.onHistoryLost(rank),
          }),
        };
        ranks.push(rank);
        await rank.subscriber.open();
      }
    } catch (err) {
      for (const r of ranks) r.subscriber.close();
      throw err;
    }
    this.prepared = ranks;
  }

  // Starts relaying the prepared engine (once it is up). Every frontend resets its ranks.
  start(): void {
    for (const r of this.prepared) this.ranks.set(r.dpRank, r);
    this.prepared = [];
    for (const [peer, states] of this.peers) {
      for (const r of this.ranks.values()) this.resetLive(peer, states, r.dpRank, states.has(r.dpRank) ? 'engine_restart' : 'join');
    }
    for (const r of this.ranks.values()) r.subscriber.start();
  }

  // The engine is gone (crashed or stopped): its cache with it. Frontends forget it now.
  detach(): void {
    for (const r of this.prepared) r.subscriber.close();
    this.prepared = [];
    for (const r of this.ranks.values()) r.subscriber.close();
    for (const [peer, states] of this.peers) for (const r of this.ranks.values()) this.resetLive(peer, states, r.dpRank, 'engine_restart');
    this.ranks = new Map();
  }

  close(): void {
    for (const r of [...this.ranks.values(), ...this.prepared]) r.subscriber.close();
    this.ranks = new Map();
    this.prepared = [];
    this.peers.clear();
  }

  addPeer(peer: RelayPeer): void {
    this.peers.set(peer, new Map());
    for (const r of this.ranks.values()) void this.rebuild(peer, r, 'join');
  }

  removePeer(peer: RelayPeer): void {
    this.peers.delete(peer);
  }

  // The frontend saw a gap on this rank.
  resync(peer: RelayPeer, dpRank: number): void {
    const r = this.ranks.get(dpRank);
    if (r && this.peers.has(peer)) void this.rebuild(peer, r, 'resync');
  }

  // The peer's send buffer drained: rebuild what had to be dropped.
  drained(peer: RelayPeer): void {
    const states = this.peers.get(peer);
    if (!states) return;
    for (const [dpRank, st] of states) {
      const r = this.ranks.get(dpRank);
      if (st.mode === 'dirty' && r) void this.rebuild(peer, r, 'resync');
    }
  }

  // Live blocks the agent knows of, per rank (diagnostics and tests).
  tableSizes(): Map<number, number> {
    return new Map([...this.ranks.values()].map((r) => [r.dpRank, r.table.size]));
  }

  // The subscribers' counters, per rank.
  stats(): Map<number, EngineKvSubscriber['stats']> {
    return new Map([...this.ranks.values()].map((r) => [r.dpRank, { ...r.subscriber.stats }]));
  }

  private batchFrame(dpRank: number, seq: bigint, b: EngineKvBatch, snapshot: boolean): Frame {
    return { type: 'kv_batch', instanceId: this.opts.instanceId, dpRank, seq, engineSeq: b.engineSeq, snapshot, payload: b.payload };
  }

  private resetFrame(dpRank: number, reason: KvResetReason): Frame {
    return { type: 'kv_reset', instanceId: this.opts.instanceId, dpRank, reason };
  }

  private resetLive(peer: RelayPeer, states: Map<number, PeerRank>, dpRank: number, reason: KvResetReason): void {
    states.set(dpRank, { seq: 0n, mode: 'live', queue: [] });
    peer.send(this.resetFrame(dpRank, reason));
  }

  private onBatch(rank: Rank, b: EngineKvBatch): void {
    try {
      rank.table.apply(b.payload);
    } catch (err) {
      this.log.warn(`rank ${rank.dpRank}: cannot read KV batch ${b.engineSeq} (${(err as Error).message}); relaying it as is`);
    }
    for (const [peer, states] of this.peers) {
      const st = states.get(rank.dpRank);
      if (!st) continue;
      if (st.mode === 'rebuilding') {
        if (st.queue.length < MAX_QUEUED) st.queue.push(b);
        else {
          st.queue = [];
          st.overflow = true;
        }
      } else if (st.mode === 'live') {
        if (peer.trySend(this.batchFrame(rank.dpRank, st.seq, b, false))) st.seq++;
        else {
          st.mode = 'dirty';
          this.log.debug(`peer ${peer.id} rank ${rank.dpRank}: congested, KV batches dropped until it drains`);
        }
      }
    }
  }

  private onHistoryLost(rank: Rank): void {
    rank.table.clear();
    for (const [peer, states] of this.peers) this.resetLive(peer, states, rank.dpRank, 'history_lost');
  }

  private async rebuild(peer: RelayPeer, rank: Rank, reason: KvResetReason): Promise<void> {
    const states = this.peers.get(peer);
    if (!states || peer.closed) return;
    const st: PeerRank = { seq: 0n, mode: 'rebuilding', queue: [] };
    states.set(rank.dpRank, st);
    peer.send(this.resetFrame(rank.dpRank, reason));
    // Rebuild frames are sent even above the high-water mark: they are bounded (the
    // engine's replay buffer or the table), and a peer that cannot take them hits the
    // connection's hard limit.
    const send = (b: EngineKvBatch, snapshot: boolean) => peer.send(this.batchFrame(rank.dpRank, st.seq++, b, snapshot));
    const current = () => !peer.closed && this.peers.get(peer)?.get(rank.dpRank) === st && this.ranks.get(rank.dpRank) === rank;

    if (rank.subscriber.historyIntact && rank.subscriber.canReplay) {
      const delivered = rank.subscriber.nextSeq;
      const replayed = await rank.subscriber.replay(0n);
      if (!current()) return;
      if (replayed && !st.overflow && rank.subscriber.historyIntact && this.replayCovers(replayed, delivered, st.queue)) {
        for (const b of replayed) send(b, false);
        const last = replayed.length ? replayed[replayed.length - 1]!.engineSeq : -1n;
        for (const b of st.queue) if (b.engineSeq > last) send(b, false);
        st.queue = [];
        st.mode = 'live';
        return;
      }
    }
    // The table already holds every batch queued meanwhile.
    const resumeAt = rank.subscriber.nextSeq;
    for (const payload of rank.table.snapshot(rank.dpRank)) send({ engineSeq: resumeAt, payload }, true);
    st.queue = [];
    st.mode = 'live';
  }

  // The replay starts at seq 0, has no holes, holds every batch delivered before the
  // rebuild started, and reaches the live batches queued since.
  private replayCovers(replayed: EngineKvBatch[], delivered: bigint, queued: EngineKvBatch[]): boolean {
    for (let i = 0; i < replayed.length; i++) if (replayed[i]!.engineSeq !== BigInt(i)) return false;
    const next = BigInt(replayed.length);
    return next >= delivered && (queued.length === 0 || queued[0]!.engineSeq <= next);
  }
}
