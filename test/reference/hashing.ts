// Dynamo block hashing (reference/dynamo.md §2.2) with the npm xxhash package, for the
// reference router. Test and bench only: @node-rs/xxhash is a dev dependency.

import { xxh3 } from '@node-rs/xxhash';

const SEED = 1337n;

/** XXH3-64 (seed 1337) of each full block of little-endian u32 tokens. */
export function localHashes(tokens: Uint32Array, blockSize: number): bigint[] {
  const out: bigint[] = [];
  const bytes = Buffer.from(tokens.buffer, tokens.byteOffset, tokens.byteLength);
  for (let b = 0; (b + 1) * blockSize <= tokens.length; b++) {
    out.push(xxh3.xxh64(bytes.subarray(b * blockSize * 4, (b + 1) * blockSize * 4), SEED));
  }
  return out;
}

/** The hash chaining `prev` (a sequence hash) and `local` (the next block's local hash). */
export function chainHash(prev: bigint, local: bigint): bigint {
  const pair = Buffer.alloc(16);
  pair.writeBigUInt64LE(prev, 0);
  pair.writeBigUInt64LE(local, 8);
  return xxh3.xxh64(pair, SEED);
}

/** seq[0] = local[0]; seq[i] = chainHash(seq[i-1], local[i]). */
export function sequenceHashes(local: bigint[]): bigint[] {
  const out: bigint[] = [];
  for (const h of local) out.push(out.length === 0 ? h : chainHash(out[out.length - 1]!, h));
  return out;
}
