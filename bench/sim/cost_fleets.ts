// The indexes the router-cost bench measures routers on, as streams of stored events: each fleet
// hands its stores to a callback (kvgate's applyStored, or the file the Dynamo driver replays)
// and returns the prompts that queries are drawn from, so every router sees the same index and
// the same queries.
//
// - shared-prefix: a fleet serving shared-prefix traffic. 64 system prompts of 64 blocks, each
//   held by 1/32 of the workers, and one conversation of 256 blocks (a system prompt and 192
//   own blocks) per worker; a query is a 4,096-token conversation (its next turn), one per worker.
// - mooncake: Dynamo's mooncake_bench setup (its lib/kv-router/benches): the conversation
//   trace's requests spread at random over 1,000 workers, each worker storing the prompts it
//   served (at 16,384 blocks of 512 tokens per engine nothing is evicted), and that fleet
//   copied `workers / 1,000` times (its `-d 7` is 7,000 workers); hash ids are 512-token blocks
//   of tokens synthesized as the simulator's Mooncake workload does; a query is a request, in
//   the trace's order (all 12,031: 580 MB of tokens).

import { readFileSync } from 'node:fs';
import { MOONCAKE_BLOCK, MOONCAKE_PATH, rng, tokenAt } from '../../src/bench/workloads.js';

// One stored event: blocks tokens[i*bs, (i+1)*bs) under engine hashes[i], chained under parent.
export type StoreFn = (worker: number, parent: bigint | null, tokens: Uint32Array, hashes: BigInt64Array) => void;

export interface CostFleet {
  readonly name: string;
  readonly blockSize: number;
  // Stores the fleet's cached prefixes through `store`; returns the prompts queries are drawn from.
  build(workers: number, store: StoreFn): Uint32Array[];
}

// The i-th query's prompt index, for every router measured on a fleet: the prompts in turn, so
// that the requests in flight (one per worker, the oldest freed before the next is routed) are
// distinct requests, as in a fleet where a conversation's next turn waits for its answer. (A
// pool smaller than the requests in flight had every prompt in flight two or three times at
// once, which a real fleet does not see and which hid what a request's own blocks cost.)
export function queryPicker(prompts: number): () => number {
  let next = 0;
  return () => next++ % prompts;
}

const BS = 16;
const SYSTEMS = 64;
const SYSTEM_BLOCKS = 64;
const CONV_BLOCKS = 256;
const SYSTEM_SHARE = 32; // each system prompt is held by workers / SYSTEM_SHARE workers (and its conversations' workers)

export const sharedPrefixFleet: CostFleet = {
  name: 'shared-prefix',
  blockSize: BS,
  build(workers, store) {
    const block = (id: number) => Uint32Array.from({ length: BS }, (_, j) => tokenAt(7, id, j));
    const systems = Array.from({ length: SYSTEMS }, (_, s) => {
      const t = new Uint32Array(SYSTEM_BLOCKS * BS);
      for (let b = 0; b < SYSTEM_BLOCKS; b++) t.set(block(s * SYSTEM_BLOCKS + b), b * BS);
      return t;
    });
    const r = rng(3);
    const sysHash = (s: number, b: number) => (BigInt(s) << 20n) + BigInt(b);
    const sysHashes = (s: number) => BigInt64Array.from({ length: SYSTEM_BLOCKS }, (_, b) => sysHash(s, b));
    for (let s = 0; s < SYSTEMS; s++) {
      for (let k = 0; k < workers / SYSTEM_SHARE; k++) store((s * 131 + k * SYSTEM_SHARE) % workers, null, systems[s]!, sysHashes(s));
    }
    const prompts: Uint32Array[] = [];
    for (let w = 0; w < workers; w++) {
      const conv = w; // one conversation per worker
      const s = Math.floor(r() * SYSTEMS);
      const p = new Uint32Array(CONV_BLOCKS * BS);
      p.set(systems[s]!);
      for (let b = SYSTEM_BLOCKS; b < CONV_BLOCKS; b++) p.set(block(1e6 + conv * CONV_BLOCKS + b), b * BS);
      const own = BigInt64Array.from({ length: CONV_BLOCKS - SYSTEM_BLOCKS }, (_, i) => (1n << 40n) + BigInt(conv) * 1024n + BigInt(i));
      // The worker holds its system prompt too (stored before its own blocks).
      store(w, null, systems[s]!, sysHashes(s));
      store(w, sysHash(s, SYSTEM_BLOCKS - 1), p.subarray(SYSTEM_BLOCKS * BS), own);
      prompts.push(p);
    }
    return prompts;
  },
};

interface TraceLine {
  input_length: number;
  hash_ids: number[];
}

export const MOONCAKE_BASE_WORKERS = 1000;

// `limit` trace requests (all by default); workers must be a multiple of 1,000.
export function mooncakeFleet(limit = Infinity, path: string | URL = MOONCAKE_PATH): CostFleet {
  return {
    name: 'mooncake',
    blockSize: MOONCAKE_BLOCK,
    build(workers, store) {
      if (workers % MOONCAKE_BASE_WORKERS !== 0) throw new Error(`mooncake cost fleet: ${workers} workers is not a multiple of ${MOONCAKE_BASE_WORKERS}`);
      const copies = workers / MOONCAKE_BASE_WORKERS;
      const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l.trim() !== '');
      const requests = lines.slice(0, Math.min(limit, lines.length)).map((l) => JSON.parse(l) as TraceLine);
      const r = rng(11);
      const prompts: Uint32Array[] = [];
      requests.forEach((q) => {
        // Only full blocks are stored (the last block is trimmed to input_length).
        const blocks = Math.floor(q.input_length / MOONCAKE_BLOCK);
        const tokens = new Uint32Array(q.input_length);
        for (let p = 0; p < q.input_length; p++) tokens[p] = tokenAt(1, q.hash_ids[Math.floor(p / MOONCAKE_BLOCK)]!, p % MOONCAKE_BLOCK);
        const w = Math.floor(r() * MOONCAKE_BASE_WORKERS);
        if (blocks > 0) {
          const hashes = BigInt64Array.from(q.hash_ids.slice(0, blocks), BigInt);
          const stored = tokens.subarray(0, blocks * MOONCAKE_BLOCK);
          for (let c = 0; c < copies; c++) store(w + c * MOONCAKE_BASE_WORKERS, null, stored, hashes);
        }
        prompts.push(tokens);
      });
      return prompts;
    },
  };
}
