// The cache_aware tree against a naive model of what it should hold: per tenant, every
// prefix it was sent, with the logical time of its last use. Random operations on a small
// alphabet (so prefixes collide and nodes split), compared after every step.

import { describe, expect, it } from 'vitest';
import { addon } from '../../src/native/addon.js';
import { NativeTextTree, RadixTextTree, type TextTree } from '../../src/sgl_router/text_tree.js';

class NaiveTree {
  readonly held = new Map<string, Map<string, number>>();
  clock = 0;
  insert(text: string, tenant: string): void {
    const now = ++this.clock;
    let m = this.held.get(tenant);
    if (!m) this.held.set(tenant, (m = new Map()));
    for (let i = 1; i <= text.length; i++) m.set(text.slice(0, i), now);
  }
  prefixMatch(text: string): { matched: number; tenant: string | null } {
    for (let n = text.length; n > 0; n--) {
      const p = text.slice(0, n);
      let tenant: string | null = null;
      let time = -1;
      for (const [t, m] of this.held) {
        const at = m.get(p);
        if (at !== undefined && at > time) [tenant, time] = [t, at];
      }
      if (tenant !== null) return { matched: n, tenant };
    }
    return { matched: 0, tenant: null };
  }
  size(tenant: string): number {
    return this.held.get(tenant)?.size ?? 0;
  }
}

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function check(tree: TextTree, naive: NaiveTree, tenants: string[], rnd: () => number): void {
  for (const t of tenants) {
    expect(tree.tenantSize(t)).toBe(naive.size(t));
    expect(new Map([...tree.dump(t)].sort())).toEqual(new Map([...(naive.held.get(t) ?? new Map())].sort()));
  }
  const query = word(rnd, 12);
  expect(tree.prefixMatch(query)).toEqual({ ...naive.prefixMatch(query), length: query.length });
}

const word = (rnd: () => number, max: number): string => Array.from({ length: 1 + Math.floor(rnd() * max) }, () => 'abc'[Math.floor(rnd() * 3)]).join('');

const IMPLEMENTATIONS: [string, () => TextTree][] = [
  ['TypeScript', () => new RadixTextTree()],
  ['native', () => new NativeTextTree()],
];

describe.each(IMPLEMENTATIONS)('%s cache_aware tree against a naive model', (_, make) => {
  it('inserts, matches, sizes and removes tenants exactly as the model', () => {
    for (let seed = 1; seed <= 8; seed++) {
      const rnd = seeded(seed);
      const tree = make();
      const naive = new NaiveTree();
      const tenants = ['w0', 'w1', 'w2'];
      for (let step = 0; step < 200; step++) {
        const t = tenants[Math.floor(rnd() * tenants.length)]!;
        if (rnd() < 0.03) {
          tree.removeTenant(t);
          naive.held.delete(t);
        } else {
          const text = word(rnd, 12);
          tree.insert(text, t);
          naive.insert(text, t);
        }
        check(tree, naive, tenants, rnd);
      }
      const smallest = tree.smallestTenant(tenants);
      expect(naive.size(smallest!)).toBe(Math.min(...tenants.map((t) => naive.size(t))));
    }
  });

  it('evicts least recently used leaves until each tenant fits', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const rnd = seeded(100 + seed);
      const tree = make();
      const tenants = ['w0', 'w1'];
      for (let step = 0; step < 120; step++) tree.insert(word(rnd, 16), tenants[step % 2]!);
      const before = new Map(tenants.map((t) => [t, tree.dump(t)]));
      const max = 20 + Math.floor(rnd() * 40);
      tree.evict(max);
      for (const t of tenants) {
        const kept = tree.dump(t);
        const had = before.get(t)!;
        expect(kept.size).toBe(tree.tenantSize(t));
        expect(kept.size).toBeLessThanOrEqual(max);
        // What stays is what the tenant had, closed under prefixes (a tree)...
        for (const [p, at] of kept) {
          expect(had.get(p)).toBe(at);
          if (p.length > 1) expect(kept.has(p.slice(0, -1))).toBe(true);
        }
        // ...and nothing evicted was used later than a kept leaf.
        const leaves = [...kept].filter(([p]) => !['a', 'b', 'c'].some((c) => kept.has(p + c)));
        const oldestKeptLeaf = Math.min(...leaves.map(([, at]) => at));
        for (const [p, at] of had) if (!kept.has(p)) expect(at).toBeLessThanOrEqual(oldestKeptLeaf);
        // Eviction stops at the first node that brings the tenant under the limit.
        expect(kept.size).toBeGreaterThan(max - 17);
      }
      // Still a working tree: a kept prefix matches.
      const [p] = [...tree.dump('w0')].sort((x, y) => y[0].length - x[0].length)[0] ?? [''];
      if (p) expect(tree.prefixMatch(p).matched).toBe(p.length);
    }
  });
});

describe('native cache_aware tree', () => {
  it('counts UTF-8 bytes, matches across a split multi-byte character, and refuses bad arguments', () => {
    const tree = new NativeTextTree();
    tree.insert('héllo wörld', 'a');
    tree.insert('hé', 'b');
    expect(tree.tenantSize('a')).toBe(Buffer.byteLength('héllo wörld'));
    expect(tree.prefixMatch('héllo there')).toEqual({ matched: Buffer.byteLength('héllo '), length: Buffer.byteLength('héllo there'), tenant: 'a' });
    // 'ö' and 'ó' share their first UTF-8 byte: the byte tree matches it.
    expect(tree.prefixMatch('héllo wó').matched).toBe(Buffer.byteLength('héllo w') + 1);
    expect(tree.prefixMatch('hé').tenant).toBe('b');
    const raw = new addon.TextTree();
    expect(() => raw.insert(5 as unknown as string, 0)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    expect(() => raw.insert('x', -1)).toThrow(/tenant must be an integer/);
    expect(() => raw.prefixMatch('x', new Float64Array(2))).toThrow(/Float64Array of length >= 3/);
    expect(() => raw.evict(-1)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
  });
});
