// The addon's block and sequence hashes against a TypeScript computation of Dynamo's formulas
// (reference/dynamo.md §2.2) over @node-rs/xxhash. KVGATE_TEST_SEED=<n> replays a run.
import { xxh3 } from '@node-rs/xxhash';
import { describe, expect, it } from 'vitest';
import { native, rng, SEED } from './helpers.js';




// Reference: XXH3-64(seed 1337) of each full block's tokens as little-endian u32.
function refBlockHashes(tokens: Uint32Array, blockSize: number): bigint[] {
  const out: bigint[] = [];
  for (let start = 0; start + blockSize <= tokens.length; start += blockSize) {
    const bytes = new DataView(new ArrayBuffer(blockSize * 4));
    for (let i = 0; i < blockSize; i++) bytes.setUint32(i * 4, tokens[start + i]!, true);
    out.push(xxh3.xxh64(new Uint8Array(bytes.buffer), 1337n));
  }
  return out;
}

// Reference: seq[0] = local[0]; seq[i] = XXH3-64(le64(seq[i-1]) ++ le64(local[i]), 1337).
function refSequenceHashes(local: bigint[]): bigint[] {
  const seq: bigint[] = [];
  for (let i = 0; i < local.length; i++) {
    if (i === 0) {
      seq.push(local[0]!);
      continue;
    }
    const pair = new DataView(new ArrayBuffer(16));
    pair.setBigUint64(0, seq[i - 1]!, true);
    pair.setBigUint64(8, local[i]!, true);
    seq.push(xxh3.xxh64(new Uint8Array(pair.buffer), 1337n));
  }
  return seq;
}

function randomTokens(next: () => number, n: number): Uint32Array {
  const t = new Uint32Array(n);
  // Mostly vocabulary-sized ids, some full-range u32 to exercise every byte.
  for (let i = 0; i < n; i++) t[i] = next() < 0.9 ? Math.floor(next() * 152000) : (next() * 2 ** 32) >>> 0;
  return t;
}

describe(`block hashes vs a TypeScript reference (KVGATE_TEST_SEED=${SEED})`, () => {
  it('random token arrays and block sizes 1..1024', () => {
    const next = rng(SEED);
    for (let r = 0; r < 200; r++) {
      const blockSize = r % 4 === 0 ? 16 : 1 + Math.floor(next() * 1024);
      const n = Math.floor(next() * 5000);
      const tokens = randomTokens(next, n);
      const local = refBlockHashes(tokens, blockSize);
      const msg = `n ${n} blockSize ${blockSize} (KVGATE_TEST_SEED=${SEED})`;
      const got = native.blockHashes(tokens, blockSize);
      expect(got.length, msg).toBe(Math.floor(n / blockSize));
      expect([...got], msg).toEqual(local);
      expect([...native.sequenceHashes(got)], msg).toEqual(refSequenceHashes(local));
    }
  });

  it('a 4,096-token request at block size 16 gives 256 chained hashes', () => {
    const tokens = randomTokens(rng(SEED + 1), 4096 + 7); // 7 tokens of a partial block
    const local = native.blockHashes(tokens, 16);
    expect(local.length).toBe(256);
    expect([...local]).toEqual(refBlockHashes(tokens, 16));
    expect([...native.sequenceHashes(local)]).toEqual(refSequenceHashes([...local]));
  });

  it('hashes a token view at its own offset', () => {
    const tokens = randomTokens(rng(SEED + 2), 100);
    const view = tokens.subarray(3, 3 + 64);
    expect([...native.blockHashes(view, 16)]).toEqual(refBlockHashes(view, 16));
  });

  it('writes into a caller-owned out array', () => {
    const tokens = randomTokens(rng(SEED + 3), 64);
    const expected = refBlockHashes(tokens, 16);

    const exact = new BigUint64Array(4);
    expect(native.blockHashes(tokens, 16, exact)).toBe(exact);
    expect([...exact]).toEqual(expected);

    const roomy = new BigUint64Array(10).fill(7n);
    const view = native.blockHashes(tokens, 16, roomy);
    expect(view.buffer).toBe(roomy.buffer);
    expect(view.byteOffset).toBe(0);
    expect([...view]).toEqual(expected);
    expect([...roomy.subarray(4)]).toEqual(new Array(6).fill(7n));

    const offset = new BigUint64Array(12).subarray(2);
    const inOffset = native.blockHashes(tokens, 16, offset);
    expect(inOffset.byteOffset).toBe(16);
    expect([...inOffset]).toEqual(expected);

    const seq = new BigUint64Array(4);
    expect(native.sequenceHashes(exact, seq)).toBe(seq);
    expect([...seq]).toEqual(refSequenceHashes(expected));
    // In place: out is local itself.
    expect(native.sequenceHashes(exact, exact)).toBe(exact);
    expect([...exact]).toEqual([...seq]);
  });

  it('empty inputs give empty results', () => {
    expect(native.blockHashes(new Uint32Array(0), 16).length).toBe(0);
    expect(native.blockHashes(new Uint32Array(15), 16).length).toBe(0);
    expect(native.sequenceHashes(new BigUint64Array(0)).length).toBe(0);
  });

  it('rejects bad arguments with ERR_INVALID_ARG', () => {
    const tokens = new Uint32Array(32);
    const block = native.blockHashes as (...a: unknown[]) => unknown;
    const seq = native.sequenceHashes as (...a: unknown[]) => unknown;
    const bad: Array<() => unknown> = [
      () => block(),
      () => block(new Int32Array(32), 16),
      () => block([1, 2, 3], 1),
      () => block(tokens),
      () => block(tokens, 0),
      () => block(tokens, 1025),
      () => block(tokens, 1.5),
      () => block(tokens, Number.NaN),
      () => block(tokens, '16'),
      () => block(tokens, 16, new BigUint64Array(1)),
      () => block(tokens, 16, new BigInt64Array(2)),
      () => block(tokens, 16, [0n, 0n]),
      () => seq(),
      () => seq(new BigInt64Array(2)),
      () => seq(new BigUint64Array(3), new BigUint64Array(2)),
      () => seq(new BigUint64Array(3), new Float64Array(3)),
    ];
    for (const [i, call] of bad.entries()) {
      expect(call, `case ${i}`).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    }
  });
});
