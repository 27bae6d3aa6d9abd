// findMatches against the TypeScript reference (test/reference) on fleets where every unit
// caches the same leading blocks (a system prompt everywhere: every unit is in the answer,
// most at that base depth, and the native router lists them without walking the base's
// holders) and where no unit shares a first block with another, under stores, removals (a
// unit left holding a block without its parent), clears and removed units. The rows come in
// no particular order: compared as a map, each unit once.
//
// A failure names its seed; replay with KVGATE_TEST_SEED=<seed>.

import { describe, expect, it } from 'vitest';
import { ReferenceRouter } from '../reference/router.js';
import { native, rng, SEED } from './helpers.js';

const BS = 2;
const LEVELS = 6;
const WORKERS = 40;

// One random fleet and query sequence. `base`: leading blocks every unit stores first (0: each
// unit's first block is its own). Returns how many answers listed every unit holding a block.
function runFleet(seed: number, base: number, steps: number): number {
  const g = rng(seed);
  const int = (n: number) => Math.floor(g() * n);
  const router = new native.KvRouter({ blockSize: BS });
  const ref = new ReferenceRouter({ blockSize: BS, seed: 1n });
  // A path picks a content at each level; block i's tokens depend on the path up to i only
  // through the chained hash, so the same content under another parent is another block.
  // Without a base, level 0 has a content per worker and rank: no two units share block 0.
  const blockTokens = (level: number, c: number) => Array.from({ length: BS }, (_, j) => level * 1000 + c * 10 + j);
  const path = (worker: number, rank: number) =>
    Array.from({ length: LEVELS }, (_, i) => (i < base ? 0 : i === 0 ? worker * 2 + rank : int(3)));
  const tokensOf = (p: number[], from: number, to: number) => Uint32Array.from(p.slice(from, to).flatMap((c, i) => blockTokens(from + i, c)));
  // Per unit: path prefix → the engine hash it stored that block under.
  const holds = new Map<string, Map<string, bigint>>();
  let nextEngine = 1n;
  const unitKey = (w: number, r: number) => `${w}:${r}`;
  const store = (w: number, r: number, p: number[], from: number, to: number) => {
    const mine = holds.get(unitKey(w, r)) ?? new Map<string, bigint>();
    holds.set(unitKey(w, r), mine);
    const parent = from > 0 ? mine.get(p.slice(0, from).join(',')) : undefined;
    if (parent === undefined) from = 0;
    const engine: bigint[] = [];
    for (let i = from; i < to; i++) {
      engine.push(nextEngine);
      mine.set(p.slice(0, i + 1).join(','), nextEngine++);
    }
    const tokens = tokensOf(p, from, to);
    expect(router.applyStored(w, r, parent ?? null, tokens, BigInt64Array.from(engine))).toBe(ref.applyStored(w, r, parent ?? null, tokens, engine));
  };

  const outW = new Uint32Array(2 * WORKERS);
  const outR = new Uint32Array(2 * WORKERS);
  const outD = new Uint32Array(2 * WORKERS);
  for (let w = 0; w < WORKERS; w++) {
    router.addWorker(w, 0);
    ref.addWorker(w, 0);
    store(w, 0, path(w, 0), 0, Math.max(base, 1));
  }
  let everyUnit = 0;
  for (let step = 0; step < steps; step++) {
    const op = int(100);
    const w = int(WORKERS);
    const r = int(4) === 0 ? 1 : 0; // rank 1: units named by events alone
    const k = unitKey(w, r);
    if (op < 30) {
      const to = 1 + int(LEVELS);
      store(w, r, path(w, r), int(to), to);
    } else if (op < 42) {
      const mine = [...(holds.get(k) ?? [])];
      if (mine.length === 0) continue;
      const [prefix, engine] = mine[int(mine.length)]!;
      // A unit evicting part of the base is rarer (the fleet keeps a common base for a while).
      if (prefix.split(',').length <= base && int(30) !== 0) continue;
      holds.get(k)!.delete(prefix);
      expect(router.applyRemoved(w, r, BigInt64Array.of(engine))).toBe(ref.applyRemoved(w, r, [engine]));
    } else if (op < 45) {
      holds.delete(k);
      if (int(2) === 0) {
        router.clearWorker(w, r);
        ref.clearWorker(w, r);
      } else {
        router.removeWorker(w, r);
        ref.removeWorker(w, r);
      }
    } else {
      const q = path(int(WORKERS), 0);
      const tokens = tokensOf(q, 0, int(LEVELS + 1));
      const units = router.stats().units;
      expect(units).toBeLessThanOrEqual(outW.length);
      const n = router.findMatches(tokens, outW, outR, outD);
      const got = new Map<string, number>();
      for (let i = 0; i < n; i++) {
        expect(got.has(unitKey(outW[i]!, outR[i]!)), 'a unit listed twice').toBe(false);
        got.set(unitKey(outW[i]!, outR[i]!), outD[i]!);
      }
      expect(got, `seed ${seed} step ${step}`).toEqual(ref.findMatches(tokens));
      if (n > 0 && n === router.stats().indexUnits) everyUnit++;
    }
  }
  router.close();
  return everyUnit;
}

describe('findMatches against the reference', () => {
  it(`lists every unit at its depth when every unit caches the same base (seed ${SEED})`, () => {
    let everyUnit = 0;
    for (let i = 0; i < 4; i++) everyUnit += runFleet(SEED + i, 2, 600);
    // Many answers listed every unit holding a block: the base was common to all of them.
    expect(everyUnit).toBeGreaterThan(400);
  });

  it(`lists the units sharing the query's first block when no unit shares one with another (seed ${SEED})`, () => {
    for (let i = 0; i < 4; i++) runFleet(SEED + 100 + i, 0, 600);
  });
});
