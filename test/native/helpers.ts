// Shared by the native suites: the addon (through the product's one loader) and a seeded
// random source. KVGATE_TEST_SEED=<n> replays a run; each suite prints its seed on failure.
export { addon as native } from '../../src/native/addon.js';
export type { KvEventBatchObject, KvEventObject } from '../../src/native/addon.js';

export const SEED = Number(process.env.KVGATE_TEST_SEED ?? Math.floor(Math.random() * 2 ** 32));

// mulberry32 (src/bench/workloads.ts): small, seeded, good enough to pick lengths, bytes and operations.
export { rng } from '../../src/bench/workloads.js';
