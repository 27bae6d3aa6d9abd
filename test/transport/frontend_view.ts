// What a frontend's index would hold for one worker rank, decoded independently of the
// worker's own table (with @msgpack/msgpack rather than msgpackr): the set of block hashes.
import { decode } from '@msgpack/msgpack';
import type { KvResetReason } from '../../src/transport/frames.js';
import type { KvRelayEvent } from '../../src/transport/request_plane_client.js';

export class FrontendView {
  readonly blocks = new Set<bigint>();
  readonly resets: KvResetReason[] = [];
  readonly batches: { seq: bigint; engineSeq: bigint; snapshot: boolean; payload: Uint8Array }[] = [];
  apply(ev: KvRelayEvent): void {
    if (ev.kind === 'reset') {
      this.blocks.clear();
      this.resets.push(ev.reason);
      this.batches.length = 0;
      return;
    }
    this.batches.push(ev);
    const [, events] = decode(ev.payload, { useBigInt64: true }) as [number, unknown[][]];
    for (const raw of events) {
      const e = Array.isArray(raw) ? raw : [(raw as Record<string, unknown>)['type'], (raw as Record<string, unknown>)['block_hashes']];
      if (e[0] === 'BlockStored') for (const h of e[1] as (number | bigint)[]) this.blocks.add(BigInt(h));
      else if (e[0] === 'BlockRemoved') for (const h of e[1] as (number | bigint)[]) this.blocks.delete(BigInt(h));
      else if (e[0] === 'AllBlocksCleared') this.blocks.clear();
    }
  }
  equals(truth: Set<bigint>): boolean {
    return this.blocks.size === truth.size && [...truth].every((h) => this.blocks.has(h));
  }
}

