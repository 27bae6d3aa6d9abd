// The worker agent's table of one engine dp rank's live KV blocks, kept from the engine's
// own KV events, so that a frontend that joins late (or lost frames) can be given the
// current state as a snapshot when the engine's replay buffer no longer reaches back to
// seq 0. The snapshot is written as ordinary SGLang KV-event batches (reference/sglang.md
// §2.4: BlockStored per block, parents before children, in the positional form whatever
// form the engine used), so consumers parse one format.

import { Packr, Unpackr } from 'msgpackr';

interface Block {
  hash: bigint;
  parent: bigint | null;
  tokenIds: number[];
  blockSize: number;
  loraId: unknown;
  medium: string | null;
  // The optional 8th BlockStored element (metadata map), kept as is.
  extra: unknown;
}

const unpackr = new Unpackr({ int64AsType: 'bigint', useRecords: false, mapsAsObjects: true });
const packr = new Packr({ useRecords: false, variableMapSize: true });

const asHash = (v: unknown, what: string): bigint => {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  throw new Error(`${what} is not an integer`);
};

const asArray = (v: unknown, what: string): unknown[] => {
  if (!Array.isArray(v)) throw new Error(`${what} is not an array`);
  return v;
};

// SGLang's None medium means GPU; removals may name it either way. GPU blocks (nearly all)
// are keyed by their hash itself, the others by medium and hash.
const key = (hash: bigint, medium: string | null): bigint | string => (medium === null || medium === 'GPU' ? hash : `${medium}:${hash}`);

// Newer SGLang encodes events as tagged maps ({"type": "BlockStored", "block_hashes": ...});
// read them in the positional form.
function fromTaggedMap(v: unknown): unknown[] {
  if (typeof v !== 'object' || v === null) throw new Error('event is neither an array nor a map');
  const m = v as Record<string, unknown>;
  switch (m['type']) {
    case 'BlockStored':
      return ['BlockStored', m['block_hashes'], m['parent_block_hash'], m['token_ids'], m['block_size'], m['lora_id'], m['medium']];
    case 'BlockRemoved':
      return ['BlockRemoved', m['block_hashes'], m['medium']];
    default:
      return [m['type']];
  }
}

export class KvBlockTable {
  // Insertion order is kept: a block is always (re)inserted after its parent.
  private readonly blocks = new Map<bigint | string, Block>();

  get size(): number {
    return this.blocks.size;
  }

  clear(): void {
    this.blocks.clear();
  }

  // Applies one msgpack batch. Throws on a batch it cannot read (the table is then
  // missing that batch's changes; the caller decides what that means).
  apply(payload: Uint8Array): void {
    const batch = asArray(unpackr.unpack(payload), 'batch');
    const events = asArray(batch[1], 'batch events');
    for (const raw of events) {
      const ev = Array.isArray(raw) ? raw : fromTaggedMap(raw);
      switch (ev[0]) {
        case 'BlockStored':
          this.store(ev);
          break;
        case 'BlockRemoved': {
          const medium = typeof ev[2] === 'string' ? ev[2] : null;
          for (const h of asArray(ev[1], 'block_hashes')) this.blocks.delete(key(asHash(h, 'block hash'), medium));
          break;
        }
        case 'AllBlocksCleared':
          this.blocks.clear();
          break;
        default:
          // Event types newer than this table do not change which blocks exist.
          break;
      }
    }
  }

  private store(ev: unknown[]): void {
    const hashes = asArray(ev[1], 'block_hashes').map((h) => asHash(h, 'block hash'));
    let parent = ev[2] === null || ev[2] === undefined ? null : asHash(ev[2], 'parent_block_hash');
    const tokens = asArray(ev[3], 'token_ids') as number[];
    if (typeof ev[4] !== 'number') throw new Error('block_size is not a number');
    const blockSize = ev[4];
    const medium = typeof ev[6] === 'string' ? ev[6] : null;
    // One hash per page is SGLang's form; a multi-hash event is split into equal pages.
    const per = hashes.length <= 1 ? tokens.length : Math.ceil(tokens.length / hashes.length);
    hashes.forEach((hash, i) => {
      const k = key(hash, medium);
      this.blocks.delete(k);
      this.blocks.set(k, {
        hash,
        parent,
        // One page per event (SGLang's form): the decoded array is the page, no copy.
        tokenIds: hashes.length === 1 ? tokens : tokens.slice(i * per, (i + 1) * per),
        blockSize,
        loraId: ev[5] ?? null,
        medium,
        extra: ev[7],
      });
      parent = hash;
    });
  }

  // The live blocks as SGLang batches of at most `perBatch` BlockStored events.
  snapshot(dpRank: number, perBatch = 1024): Uint8Array[] {
    const out: Uint8Array[] = [];
    let events: unknown[] = [];
    const flush = () => {
      if (events.length === 0) return;
      out.push(packr.pack([Date.now() / 1000, events, dpRank]));
      events = [];
    };
    for (const b of this.blocks.values()) {
      const ev: unknown[] = ['BlockStored', [b.hash], b.parent, b.tokenIds, b.blockSize, b.loraId, b.medium];
      if (b.extra !== undefined) ev.push(b.extra);
      events.push(ev);
      if (events.length >= perBatch) flush();
    }
    flush();
    return out;
  }
}
