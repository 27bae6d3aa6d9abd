// The naive KV index: the same semantics as native/core/kv_index.h, written to be
// obviously correct rather than fast (Maps of BigInts, a walk over Sets). Test and bench
// only (see router.ts).
//
// A unit holds a block (identified by its sequence hash) while at least one of its engine
// hashes names it; a unit's overlap with a query is the number of leading query blocks it
// holds.

import { localHashes, sequenceHashes, chainHash } from './hashing.js';

export type StoreStatus = 'ok' | 'unknown-parent' | 'block-size-mismatch';

/** A deliberate defect, for showing that the differential tests catch one. */
export type IndexMutation = 'survivor-depth-plus-one' | 'dropout-depth-plus-one';

export class ReferenceKvIndex {
  /** unit → engine hash (signed 64-bit) → sequence hash of the block it names */
  private readonly lookup = new Map<string, Map<bigint, bigint>>();
  /** sequence hash → unit → number of the unit's engine hashes naming it */
  private readonly holders = new Map<bigint, Map<string, number>>();

  constructor(
    readonly blockSize: number,
    private readonly mutation?: IndexMutation,
  ) {}

  applyStored(unit: string, parent: bigint | null, tokens: Uint32Array, engine: bigint[]): StoreStatus {
    if (tokens.length > engine.length * this.blockSize) return 'block-size-mismatch';
    const local = localHashes(tokens, this.blockSize);
    let prev: bigint | null = null;
    if (parent !== null) {
      const p = this.lookup.get(unit)?.get(BigInt.asIntN(64, parent));
      if (p === undefined) return 'unknown-parent';
      prev = p;
    }
    local.forEach((h, i) => {
      prev = prev === null ? h : chainHash(prev, h);
      this.claim(unit, engine[i]!, prev);
    });
    return 'ok';
  }

  /** One hold of `unit` on block `seq` under `engine`; an engine hash naming another block moves. */
  claim(unit: string, engine: bigint, seq: bigint): void {
    const key = BigInt.asIntN(64, engine);
    let map = this.lookup.get(unit);
    if (!map) this.lookup.set(unit, (map = new Map()));
    const old = map.get(key);
    if (old === seq) return;
    map.set(key, seq);
    const hs = this.holders.get(seq) ?? new Map<string, number>();
    this.holders.set(seq, hs);
    hs.set(unit, (hs.get(unit) ?? 0) + 1);
    if (old !== undefined) this.dropHold(old, unit);
  }

  /** Drops the holds named by the engine hashes; returns how many were not held. */
  applyRemoved(unit: string, engine: bigint[]): number {
    return engine.filter((h) => !this.release(unit, h)).length;
  }

  release(unit: string, engine: bigint): boolean {
    const map = this.lookup.get(unit);
    const key = BigInt.asIntN(64, engine);
    const seq = map?.get(key);
    if (seq === undefined) return false;
    map!.delete(key);
    this.dropHold(seq, unit);
    return true;
  }

  clearUnit(unit: string): void {
    for (const seq of this.lookup.get(unit)?.values() ?? []) this.dropHold(seq, unit);
    this.lookup.delete(unit);
  }

  /** unit → number of leading blocks of the query (sequence hashes) it holds. */
  match(seq: bigint[]): Map<string, number> {
    const out = new Map<string, number>();
    const first = seq.length > 0 ? this.holders.get(seq[0]!) : undefined;
    if (!first) return out;
    const active = new Set(first.keys());
    let depth = 1;
    for (; depth < seq.length; depth++) {
      const hs = this.holders.get(seq[depth]!);
      if (!hs) break;
      for (const u of [...active]) {
        if (!hs.has(u)) {
          out.set(u, this.mutation === 'dropout-depth-plus-one' ? depth + 1 : depth);
          active.delete(u);
        }
      }
      if (active.size === 0) return out;
    }
    for (const u of active) out.set(u, this.mutation === 'survivor-depth-plus-one' ? depth + 1 : depth);
    return out;
  }

  matchTokens(tokens: Uint32Array): Map<string, number> {
    return this.match(sequenceHashes(localHashes(tokens, this.blockSize)));
  }

  /** Whether the unit holds block `seq`. */
  holds(unit: string, seq: bigint): boolean {
    return this.holders.get(seq)?.has(unit) ?? false;
  }

  unitBlocks(unit: string): number {
    return this.lookup.get(unit)?.size ?? 0;
  }

  stats(): { blocks: number; pairs: number; indexUnits: number } {
    let pairs = 0;
    let units = 0;
    for (const m of this.lookup.values()) {
      pairs += m.size;
      if (m.size > 0) units++;
    }
    return { blocks: this.holders.size, pairs, indexUnits: units };
  }

  private dropHold(seq: bigint, unit: string): void {
    const hs = this.holders.get(seq)!;
    const n = hs.get(unit)! - 1;
    if (n > 0) hs.set(unit, n);
    else hs.delete(unit);
    if (hs.size === 0) this.holders.delete(seq);
  }
}
