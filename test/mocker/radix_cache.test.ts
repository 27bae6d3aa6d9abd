// The paged radix cache against a naive model (a list of cached sequences), with random workloads:
// prefix hits, page accounting, events that balance, and pinned pages that survive eviction.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { pageDigest, digestToInt64 } from '../../src/mocker/page_hash.js';
import { PagedRadixCache, type KvEvent } from '../../src/mocker/radix_cache.js';

// Naive reference: the longest page-aligned common prefix with any cached sequence.
function naiveMatch(cached: number[][], q: number[], maxTokens: number, ps: number): number {
  let best = 0;
  for (const s of cached) {
    let n = 0;
    while (n < s.length && n < q.length && s[n] === q[n]) n++;
    best = Math.max(best, n);
  }
  return Math.floor(Math.min(best, maxTokens) / ps) * ps;
}

const seqArb = fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 0, maxLength: 24 });

describe('PagedRadixCache', () => {
  it('matches the naive longest cached prefix (page-aligned) on random inserts and splits', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4 }), fc.array(seqArb, { minLength: 1, maxLength: 12 }), fc.array(seqArb, { maxLength: 8 }), (ps, inserts, queries) => {
        const events: KvEvent[] = [];
        const cache = new PagedRadixCache(ps, 10_000, (e) => events.push(e));
        const cached: number[][] = [];
        for (const s of inserts) {
          const len = Math.floor(s.length / ps) * ps;
          const leaf = cache.insertAndRelock(cache.root, s, len);
          cache.unlock(leaf);
          cached.push(s.slice(0, len));
        }
        for (const q of [...queries, ...inserts]) {
          const { node, length } = cache.matchAndLock(q, q.length);
          expect(length).toBe(naiveMatch(cached, q, q.length, ps));
          cache.unlock(node);
        }
        // Every distinct cached page is stored exactly once.
        const distinctPages = new Set<string>();
        for (const s of cached) for (let i = ps; i <= s.length; i += ps) distinctPages.add(s.slice(0, i).join(','));
        expect(events.filter((e) => e.type === 'BlockStored')).toHaveLength(distinctPages.size);
        // Evicting everything frees every page and removes every stored hash once.
        expect(cache.evict(1_000_000)).toBe(distinctPages.size);
        const stored = events.flatMap((e) => (e.type === 'BlockStored' ? [e.hash] : []));
        const removed = events.flatMap((e) => (e.type === 'BlockRemoved' ? e.hashes : []));
        expect([...removed].sort()).toEqual([...stored].sort());
        expect(cache.freePages).toBe(10_000);
      }),
      { numRuns: 200 },
    );
  });

  it('chains hashes on the parent page even across node splits', () => {
    const events: KvEvent[] = [];
    const cache = new PagedRadixCache(2, 100, (e) => events.push(e));
    cache.unlock(cache.insertAndRelock(cache.root, [1, 2, 3, 4, 5, 6], 6));
    // Diverges after the first page: the node splits, the new page hangs off page [1, 2].
    cache.unlock(cache.insertAndRelock(cache.root, [1, 2, 9, 9], 4));
    const d12 = pageDigest(null, [1, 2], 0, 2);
    const d99 = pageDigest(d12, [9, 9], 0, 2);
    const last = events.at(-1)!;
    expect(last).toEqual({ type: 'BlockStored', hash: digestToInt64(d99), parent: digestToInt64(d12), tokens: [9, 9] });
  });

  it('never evicts pinned pages and refuses reservations it cannot meet', () => {
    const cache = new PagedRadixCache(1, 8, () => undefined);
    const pinned = cache.insertAndRelock(cache.root, [1, 2, 3, 4], 4);
    cache.unlock(cache.insertAndRelock(cache.root, [7, 8, 9], 3));
    expect(cache.freePages).toBe(1);
    // Needs 4: evicts the 3 unpinned pages, not the 4 pinned ones.
    expect(cache.reservePrivate(4)).toBe(true);
    expect(cache.matchAndLock([7, 8, 9], 3).length).toBe(0);
    expect(cache.reservePrivate(1)).toBe(false);
    const hit = cache.matchAndLock([1, 2, 3, 4], 4);
    expect(hit.length).toBe(4);
    cache.unlock(hit.node);
    cache.unlock(pinned);
    cache.releasePrivate(4);
    expect(cache.activePages).toBe(0);
    expect(cache.evictable).toBe(4);
  });
});
