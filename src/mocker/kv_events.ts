// KV events on ZMQ exactly as SGLang publishes them (reference/sglang.md §2.2-2.7): one PUB socket
// per DP rank at base port + rank, frames [topic, seq u64 BE, msgpack [ts, events, dp_rank]], and a
// ROUTER replay socket answering [b"", start_seq] with every buffered batch from start_seq on,
// then the terminator (seq -1).
//
// Two encodings, because SGLang changed its wire in 0.5.20/0.5.22 (see --kv-events-wire):
//  - array: events are arrays ["BlockStored", hashes, parent, tokens, block_size, lora_id, medium];
//    replay replies are [b"", seq, payload].
//  - map: events are tagged maps {"type":"BlockStored","block_hashes":...}; replay replies carry
//    the topic: [b"", topic, seq, payload].

import { setTimeout as sleep } from 'node:timers/promises';
import { Packr } from 'msgpackr';
import * as zmq from 'zeromq';
import { KvgateError } from '../errors.js';
import type { KvEvent } from './radix_cache.js';
import type { ResolvedKvEvents, ResolvedOptions } from './options.js';

type Wire = ResolvedOptions['kvEventsWire'];
type Config = ResolvedKvEvents;

const END_SEQ = Buffer.from('ffffffffffffffff', 'hex');
const EMPTY = Buffer.alloc(0);
const packr = new Packr({ useRecords: false, variableMapSize: true });

function encodeEvent(e: KvEvent, wire: Wire): unknown {
  if (wire === 'array') {
    switch (e.type) {
      case 'BlockStored':
        return ['BlockStored', [e.hash], e.parent, e.tokens, e.tokens.length, null, 'GPU'];
      case 'BlockRemoved':
        return ['BlockRemoved', e.hashes, 'GPU'];
      case 'AllBlocksCleared':
        return ['AllBlocksCleared'];
    }
  }
  switch (e.type) {
    case 'BlockStored':
      return { type: 'BlockStored', block_hashes: [e.hash], parent_block_hash: e.parent, token_ids: e.tokens, block_size: e.tokens.length, lora_id: null, medium: 'GPU' };
    case 'BlockRemoved':
      return { type: 'BlockRemoved', block_hashes: e.hashes, medium: 'GPU' };
    case 'AllBlocksCleared':
      return { type: 'AllBlocksCleared' };
  }
}

export function encodeBatch(events: KvEvent[], dpRank: number, wire: Wire, ts = Date.now() / 1000): Buffer {
  return packr.pack([ts, events.map((e) => encodeEvent(e, wire)), dpRank]);
}

interface Endpoint {
  host: string;
  port: number;
}

function parseTcp(endpoint: string): Endpoint {
  const m = /^tcp:\/\/(.+):(\d+)$/.exec(endpoint);
  if (!m) throw new KvgateError('invalid_config', `KV event endpoint '${endpoint}' is not tcp://host:port`);
  return { host: m[1]!, port: Number(m[2]) };
}

function boundPort(sock: zmq.Socket): number {
  const ep = sock.lastEndpoint;
  const m = ep ? /:(\d+)$/.exec(ep) : null;
  if (!m) throw new Error(`cannot read the bound port of ${ep}`);
  return Number(m[1]);
}

// Bind one socket per rank at base+rank. Port 0 means "any free base": bind rank 0 anywhere,
// then the next ranks next to it, retrying from scratch if a neighbour is taken.
async function bindRanks<S extends zmq.Socket>(make: () => S, ep: Endpoint, ranks: number, what: string): Promise<{ sockets: S[]; base: number }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const sockets: S[] = [];
    let base = ep.port;
    try {
      for (let r = 0; r < ranks; r++) {
        const s = make();
        sockets.push(s);
        await s.bind(`tcp://${ep.host}:${base === 0 ? 0 : base + r}`);
        if (base === 0) base = boundPort(s);
      }
      return { sockets, base };
    } catch (err) {
      for (const s of sockets) s.close();
      if (ep.port !== 0) {
        throw new KvgateError('invalid_config', `cannot bind the ${what} socket on tcp://${ep.host}:${ep.port}+rank: ${(err as Error).message}`);
      }
    }
  }
  throw new KvgateError('invalid_config', `no ${ranks} consecutive free ports for the ${what} sockets on ${ep.host}`);
}

// A ring of the last `capacity` published batches, for replay.
class ReplayBuffer {
  private readonly seqs: bigint[] = [];
  private readonly payloads: Buffer[] = [];
  private head = 0;
  constructor(private readonly capacity: number) {}
  push(seq: bigint, payload: Buffer): void {
    if (this.seqs.length < this.capacity) {
      this.seqs.push(seq);
      this.payloads.push(payload);
      return;
    }
    this.seqs[this.head] = seq;
    this.payloads[this.head] = payload;
    this.head = (this.head + 1) % this.capacity;
  }
  *from(start: bigint): Iterable<[bigint, Buffer]> {
    const n = this.seqs.length;
    for (let i = 0; i < n; i++) {
      const j = (this.head + i) % n;
      if (this.seqs[j]! >= start) yield [this.seqs[j]!, this.payloads[j]!];
    }
  }
}

// One rank's publisher: sequence numbers, the replay buffer, and serialized sends (a zeromq.js
// socket allows one send in flight).
class RankPublisher {
  private seq = 0n;
  private readonly buffer: ReplayBuffer;
  private readonly queue: Buffer[][] = [];
  private sending = false;
  private closed = false;
  private replayLoop: Promise<void> | null = null;

  constructor(
    private readonly rank: number,
    private readonly pub: zmq.Publisher,
    private readonly replay: zmq.Router | null,
    private readonly topic: Buffer,
    private readonly wire: Wire,
    bufferSteps: number,
  ) {
    this.buffer = new ReplayBuffer(bufferSteps);
    if (replay) this.replayLoop = this.serveReplay(replay);
  }

  publish(events: KvEvent[]): void {
    if (this.closed || events.length === 0) return;
    const seq = this.seq++;
    const payload = encodeBatch(events, this.rank, this.wire);
    this.buffer.push(seq, payload);
    const seqBuf = Buffer.allocUnsafe(8);
    seqBuf.writeBigUInt64BE(seq);
    this.queue.push([this.topic, seqBuf, payload]);
    if (!this.sending) void this.drain();
  }

  private async drain(): Promise<void> {
    this.sending = true;
    while (this.queue.length > 0 && !this.closed) {
      const msg = this.queue.shift()!;
      try {
        await this.pub.send(msg);
      } catch (err) {
        if (!this.closed) console.error(`[mocker] KV event publish failed on rank ${this.rank}: ${(err as Error).message}`);
      }
    }
    this.sending = false;
  }

  private async serveReplay(router: zmq.Router): Promise<void> {
    try {
      for await (const frames of router) {
        // [identity, b"", start_seq]; anything else is ignored as SGLang does.
        if (frames.length !== 3 || frames[2]!.length !== 8) continue;
        const [id] = frames;
        const start = frames[2]!.readBigUInt64BE(0);
        for (const [seq, payload] of this.buffer.from(start)) {
          const seqBuf = Buffer.allocUnsafe(8);
          seqBuf.writeBigUInt64BE(seq);
          await router.send(this.wire === 'map' ? [id!, EMPTY, this.topic, seqBuf, payload] : [id!, EMPTY, seqBuf, payload]);
        }
        await router.send(this.wire === 'map' ? [id!, EMPTY, EMPTY, END_SEQ, EMPTY] : [id!, EMPTY, END_SEQ, EMPTY]);
      }
    } catch (err) {
      if (!this.closed) console.error(`[mocker] KV event replay failed on rank ${this.rank}: ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {
    // Let queued batches go out before the sockets close.
    for (let i = 0; i < 50 && (this.sending || this.queue.length > 0); i++) await sleep(10);
    this.closed = true;
    this.pub.close();
    this.replay?.close();
    await this.replayLoop;
  }
}

export interface KvEventPorts {
  endpointHost: string;
  // The real base ports (resolved when the config asked for port 0).
  publishBase: number;
  replayBase: number | null;
}

export class KvEventPublishers {
  private constructor(
    private readonly ranks: RankPublisher[],
    readonly ports: KvEventPorts,
  ) {}

  static async open(cfg: Config, dpSize: number, wire: Wire): Promise<KvEventPublishers> {
    const pubEp = parseTcp(cfg.endpoint);
    const bind = cfg.bind ?? (cfg.endpoint.includes('*') || cfg.endpoint.includes('::') || cfg.endpoint.includes('0.0.0.0'));
    const makePub = () => {
      const s = new zmq.Publisher({ linger: 0 });
      s.sendHighWaterMark = cfg.hwm;
      return s;
    };
    let pubs: zmq.Publisher[];
    let publishBase = pubEp.port;
    if (bind) {
      ({ sockets: pubs, base: publishBase } = await bindRanks(makePub, pubEp, dpSize, 'KV event'));
    } else {
      // Connect style: a collector binds, engines connect (SGLang's rule for concrete hosts).
      if (pubEp.port === 0) throw new KvgateError('invalid_config', 'a connecting KV event endpoint needs a port (set "bind": true to bind a concrete host)');
      pubs = [];
      for (let r = 0; r < dpSize; r++) {
        const s = makePub();
        s.connect(`tcp://${pubEp.host}:${pubEp.port + r}`);
        pubs.push(s);
      }
    }
    let replays: zmq.Router[] | null = null;
    let replayBase: number | null = null;
    if (cfg.replay_endpoint) {
      try {
        ({ sockets: replays, base: replayBase } = await bindRanks(() => new zmq.Router({ linger: 0 }), parseTcp(cfg.replay_endpoint), dpSize, 'KV event replay'));
      } catch (err) {
        for (const p of pubs) p.close();
        throw err;
      }
    }
    const topic = Buffer.from(cfg.topic, 'utf8');
    const ranks = pubs.map((p, r) => new RankPublisher(r, p, replays?.[r] ?? null, topic, wire, cfg.buffer_steps));
    return new KvEventPublishers(ranks, { endpointHost: pubEp.host, publishBase, replayBase });
  }

  publish(rank: number, events: KvEvent[]): void {
    this.ranks[rank]?.publish(events);
  }

  async close(): Promise<void> {
    await Promise.all(this.ranks.map((r) => r.close()));
  }
}
