// The addon's XXH3-64 (written from the spec) against the reference package @node-rs/xxhash
// on random inputs of every length class, random seeds. KVGATE_TEST_SEED=<n> replays a run.
import { xxh3 as ref } from '@node-rs/xxhash';
import { describe, expect, it } from 'vitest';
import { native, rng, SEED } from './helpers.js';




function randomBytes(next: () => number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (next() * 256) | 0;
  return b;
}

function randomSeed(next: () => number): bigint {
  const kind = (next() * 4) | 0;
  if (kind === 0) return 0n;
  if (kind === 1) return BigInt((next() * 2 ** 32) >>> 0);
  return (BigInt((next() * 2 ** 32) >>> 0) << 32n) | BigInt((next() * 2 ** 32) >>> 0);
}

const CLASSES: Array<[string, number, number]> = [
  ['0', 0, 0],
  ['1-3', 1, 3],
  ['4-8', 4, 8],
  ['9-16', 9, 16],
  ['17-128', 17, 128],
  ['129-240', 129, 240],
  ['241-1024', 241, 1024],
  ['1025-65536', 1025, 65536],
];

describe(`xxh3 vs @node-rs/xxhash (KVGATE_TEST_SEED=${SEED})`, () => {
  for (const [name, lo, hi] of CLASSES) {
    it(`random inputs of ${name} bytes`, () => {
      const next = rng(SEED ^ lo);
      const rounds = hi > 4096 ? 40 : 300;
      for (let r = 0; r < rounds; r++) {
        const len = lo + Math.floor(next() * (hi - lo + 1));
        const data = randomBytes(next, len);
        const seed = randomSeed(next);
        expect(native.xxh3(data, seed), `len ${len} seed ${seed} (KVGATE_TEST_SEED=${SEED})`).toBe(ref.xxh64(data, seed));
      }
    });
  }

  it('every length from 0 to 2,100 (all class, stripe and block boundaries)', () => {
    const next = rng(SEED + 1);
    const data = randomBytes(next, 2100);
    for (let len = 0; len <= 2100; len++) {
      const seed = randomSeed(next);
      const view = data.subarray(0, len);
      expect(native.xxh3(view, seed), `len ${len} seed ${seed} (KVGATE_TEST_SEED=${SEED})`).toBe(ref.xxh64(view, seed));
    }
  });

  it('lists the code paths of long inputs this CPU runs, widest first, scalar last', () => {
    const paths = native.xxh3Paths();
    expect(paths.at(-1)).toBe('scalar');
    expect(paths).toEqual(['avx512', 'avx2', 'scalar'].filter((p) => paths.includes(p as never)));
  });

  // Each path forced, long inputs (the ones the paths differ on) and the edges of stripes
  // (64 bytes) and blocks (1,024).
  for (const path of native.xxh3Paths()) {
    it(`the ${path} path: random long inputs and every length from 230 to 2,100`, () => {
      const next = rng(SEED + 3);
      const data = randomBytes(next, 20000);
      for (let r = 0; r < 200; r++) {
        const len = 241 + Math.floor(next() * 19000);
        const off = Math.floor(next() * (data.length - len + 1));
        const view = data.subarray(off, off + len);
        const seed = randomSeed(next);
        expect(native.xxh3(view, seed, path), `${path} len ${len} seed ${seed} (KVGATE_TEST_SEED=${SEED})`).toBe(
          ref.xxh64(view, seed),
        );
      }
      for (let len = 230; len <= 2100; len++) {
        const seed = randomSeed(next);
        const view = data.subarray(len % 7, (len % 7) + len);
        expect(native.xxh3(view, seed, path), `${path} len ${len} seed ${seed} (KVGATE_TEST_SEED=${SEED})`).toBe(
          ref.xxh64(view, seed),
        );
      }
    });
  }

  it('the seed defaults to 0 and views at any byte offset hash their own bytes', () => {
    const next = rng(SEED + 2);
    const data = randomBytes(next, 5000);
    for (const len of [0, 3, 7, 15, 100, 200, 300, 4000]) {
      for (let off = 0; off < 9; off++) {
        const view = data.subarray(off, off + len);
        expect(native.xxh3(view)).toBe(ref.xxh64(view, 0n));
      }
    }
    expect(native.xxh3(Buffer.from('kvgate'), 1337n)).toBe(ref.xxh64(Buffer.from('kvgate'), 1337n));
  });

  it('rejects bad arguments with ERR_INVALID_ARG', () => {
    const bad: Array<() => unknown> = [
      () => (native.xxh3 as (...a: unknown[]) => unknown)(),
      () => native.xxh3('abc' as unknown as Uint8Array),
      () => native.xxh3([1, 2, 3] as unknown as Uint8Array),
      () => native.xxh3(new Uint16Array(4) as unknown as Uint8Array),
      () => native.xxh3(new Uint8Array(4), 1 as unknown as bigint),
      () => native.xxh3(new Uint8Array(4), -1n),
      () => native.xxh3(new Uint8Array(4), 2n ** 64n),
      () => native.xxh3(new Uint8Array(4), 0n, 'sse2' as never),
      () => native.xxh3(new Uint8Array(4), 0n, 1 as never),
    ];
    for (const call of bad) expect(call).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
  });
});
