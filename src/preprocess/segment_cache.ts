// Token ids of prompt segments (the text between two added tokens), keyed by the SHA-256 of
// the segment's text. HF tokenizers split added tokens off before they normalize and
// pre-tokenize, so a segment's ids do not depend on its neighbours: a cached segment gives
// exactly the ids the tokenizer would. A collision-resistant hash keeps one client from
// planting ids under another's text. Least recently used entries go first; the bound counts
// the ids, the key and the entry overhead.

import { hash } from 'node:crypto';

// A Map slot, the 44-char key string, the typed array's header and backing store.
const ENTRY_OVERHEAD_BYTES = 200;

export class SegmentCache {
  private readonly entries = new Map<string, Uint32Array>();
  private bytes = 0;

  constructor(readonly maxBytes: number) {}

  static key(text: string): string {
    return hash('sha256', text, 'base64');
  }

  get size(): number {
    return this.entries.size;
  }
  get byteSize(): number {
    return this.bytes;
  }

  get(key: string): Uint32Array | undefined {
    const ids = this.entries.get(key);
    if (ids !== undefined) {
      // Re-insert: a Map iterates in insertion order, so the front is the least recent.
      this.entries.delete(key);
      this.entries.set(key, ids);
    }
    return ids;
  }

  set(key: string, ids: Uint32Array): void {
    const cost = ids.byteLength + ENTRY_OVERHEAD_BYTES;
    // One segment may take at most a quarter of the cache, so a huge prompt cannot flush it.
    if (cost > this.maxBytes / 4 || this.entries.has(key)) return;
    this.entries.set(key, ids);
    this.bytes += cost;
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= v.byteLength + ENTRY_OVERHEAD_BYTES;
    }
  }
}
