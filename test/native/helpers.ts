// Shared by the native suites: the addon (through the product's one loader) and a seeded
// random source. KVGATE_TEST_SEED=<n> replays a run; each suite prints its seed on failure.
export { addon as native } from '../../src/native/addon.js';
export type { KvEventBatchObject, KvEventObject } from '../../src/native/addon.js';

export const SEED = Number(process.env.KVGATE_TEST_SEED ?? Math.floor(Math.random() * 2 ** 32));

// mulberry32: small, seeded, good enough to pick lengths, bytes and operations.
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}
