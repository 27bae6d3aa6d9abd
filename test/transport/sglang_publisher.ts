// A test stand-in for one SGLang KV-event publisher (reference/sglang.md §2.2-2.7), on real
// ZMQ sockets: a PUB sending [topic, seq u64 BE, msgpack batch] and a ROUTER replay socket
// keeping the last `bufferSteps` batches. `publish(..., {drop: true})` assigns a seq but
// does not send it, as SGLang does when a send fails, to force gaps on the subscriber.
// It also keeps the ground truth: the set of block hashes the engine holds.

import { Publisher, Router } from 'zeromq';
import { Packr } from 'msgpackr';

const packr = new Packr({ useRecords: false, variableMapSize: true });
const TERMINATOR = Buffer.from('ffffffffffffffff', 'hex');

export type KvEvent =
  | { type: 'stored'; hash: bigint; parent: bigint | null; tokens: number[] }
  | { type: 'removed'; hashes: bigint[] }
  | { type: 'cleared' };

export class TestKvPublisher {
  private readonly pub = new Publisher({ linger: 0 });
  private readonly router = new Router({ linger: 0 });
  private readonly buffer: { seq: bigint; payload: Buffer }[] = [];
  private seq = 0n;
  readonly truth = new Set<bigint>();
  endpoint = '';
  replayEndpoint = '';
  replays: bigint[] = []; // start seqs asked for
  // Replies left out of the next replay that would carry them, as a ROUTER does when the
  // requester's pipe is full.
  readonly dropInReplay = new Set<bigint>();

  constructor(
    private readonly opts: {
      topic?: string;
      bufferSteps?: number;
      dpRank?: number;
      pageSize?: number;
      // Connect the PUB to a collector that binds (SGLang's rule for a concrete host).
      connectTo?: string;
      // 'map': newer SGLang's tagged-map events and [b"", topic, seq, payload] replay replies.
      wire?: 'array' | 'map';
    } = {},
  ) {}

  async start(): Promise<this> {
    if (this.opts.connectTo) {
      this.pub.connect(this.opts.connectTo);
      this.endpoint = this.opts.connectTo;
    } else {
      await this.pub.bind('tcp://127.0.0.1:*');
      this.endpoint = this.pub.lastEndpoint!;
    }
    await this.router.bind('tcp://127.0.0.1:*');
    this.replayEndpoint = this.router.lastEndpoint!;
    void this.serveReplay();
    return this;
  }

  get published(): bigint {
    return this.seq;
  }

  // Encodes the events as one SGLang batch, publishes it and returns its seq.
  async publish(events: KvEvent[], opts: { drop?: boolean } = {}): Promise<bigint> {
    const size = this.opts.pageSize ?? 4;
    const map = this.opts.wire === 'map';
    const wire = events.map((e) => {
      if (e.type === 'stored') {
        this.truth.add(e.hash);
        return map
          ? { type: 'BlockStored', block_hashes: [e.hash], parent_block_hash: e.parent, token_ids: e.tokens, block_size: size, lora_id: null, medium: 'GPU' }
          : ['BlockStored', [e.hash], e.parent, e.tokens, size, null, 'GPU'];
      }
      if (e.type === 'removed') {
        for (const h of e.hashes) this.truth.delete(h);
        return map ? { type: 'BlockRemoved', block_hashes: e.hashes, medium: 'GPU' } : ['BlockRemoved', e.hashes, 'GPU'];
      }
      this.truth.clear();
      return map ? { type: 'AllBlocksCleared' } : ['AllBlocksCleared'];
    });
    const payload = packr.pack([Date.now() / 1000, wire, this.opts.dpRank ?? 0]);
    const seq = this.seq++;
    const seqBuf = Buffer.alloc(8);
    seqBuf.writeBigUInt64BE(seq);
    this.buffer.push({ seq, payload });
    if (this.buffer.length > (this.opts.bufferSteps ?? 10_000)) this.buffer.shift();
    if (!opts.drop) await this.pub.send([this.opts.topic ?? 'kv', seqBuf, payload]);
    return seq;
  }

  payloadOf(seq: bigint): Buffer | undefined {
    return this.buffer.find((b) => b.seq === seq)?.payload;
  }

  close(): void {
    this.pub.close();
    this.router.close();
  }

  private async serveReplay(): Promise<void> {
    try {
      for await (const [id, , start] of this.router) {
        const from = start!.readBigUInt64BE(0);
        this.replays.push(from);
        const topic = this.opts.wire === 'map' ? [Buffer.from(this.opts.topic ?? 'kv')] : [];
        for (const b of this.buffer) {
          if (b.seq < from) continue;
          if (this.dropInReplay.delete(b.seq)) continue;
          const seqBuf = Buffer.alloc(8);
          seqBuf.writeBigUInt64BE(b.seq);
          await this.router.send([id!, Buffer.alloc(0), ...topic, seqBuf, b.payload]);
        }
        await this.router.send([id!, Buffer.alloc(0), ...topic, TERMINATOR, Buffer.alloc(0)]);
      }
    } catch {
      // closed
    }
  }
}

// A random walk over a small radix tree: stores chains, removes leaves, sometimes clears.
export function* workload(seed: number): Generator<KvEvent[]> {
  let s = seed;
  const rand = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const live: bigint[] = [];
  let next = 1n;
  for (;;) {
    const r = rand();
    if (r < 0.6 || live.length === 0) {
      const parent = live.length && rand() < 0.7 ? live[Math.floor(rand() * live.length)]! : null;
      const n = 1 + Math.floor(rand() * 3);
      const evs: KvEvent[] = [];
      let p = parent;
      for (let i = 0; i < n; i++) {
        // Signed 64-bit hashes, like SGLang's.
        const hash = (next++ * 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
        const signed = hash >= 1n << 63n ? hash - (1n << 64n) : hash;
        evs.push({ type: 'stored', hash: signed, parent: p, tokens: [1, 2, 3, 4].map((t) => t + Number(next)) });
        live.push(signed);
        p = signed;
      }
      yield evs;
    } else if (r < 0.97) {
      const i = Math.floor(rand() * live.length);
      const [h] = live.splice(i, 1);
      yield [{ type: 'removed', hashes: [h!] }];
    } else {
      live.length = 0;
      yield [{ type: 'cleared' }];
    }
  }
}
