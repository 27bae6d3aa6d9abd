// SplitMix64, the native scheduler's generator (native/core/scheduler.h), in BigInt so the
// reference draws exactly the same numbers from the same seed.

const MASK = (1n << 64n) - 1n;

export class SplitMix64 {
  private state: bigint;
  constructor(seed: bigint) {
    this.state = BigInt.asUintN(64, seed);
  }
  next(): bigint {
    this.state = (this.state + 0x9e3779b97f4a7c15n) & MASK;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
    return z ^ (z >> 31n);
  }
  /** Uniform in [0, 1) from the top 53 bits. */
  uniform(): number {
    return Number(this.next() >> 11n) * 2 ** -53;
  }
  /** Uniform in [0, n). */
  below(n: number): number {
    return Number(this.next() % BigInt(n));
  }
}
