// SGLang's KV-event block hash (reference/sglang.md §2.5): each page's digest is
// SHA-256(previous page's 32-byte digest || uint32-LE token ids); the event carries the first
// 8 digest bytes read big-endian as a signed int64. The first page under the root has no prior
// digest.

import { createHash } from 'node:crypto';

// Digest of one page, chained on `prior` (null at the root).
export function pageDigest(prior: Buffer | null, tokens: ArrayLike<number>, start: number, end: number): Buffer {
  const h = createHash('sha256');
  if (prior) h.update(prior);
  const buf = Buffer.allocUnsafe((end - start) * 4);
  for (let i = start; i < end; i++) buf.writeUInt32LE(tokens[i]! >>> 0, (i - start) * 4);
  h.update(buf);
  return h.digest();
}

export function digestToInt64(digest: Buffer): bigint {
  return digest.readBigInt64BE(0);
}
