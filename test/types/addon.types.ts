// Type tests of the addon's declarations (native/binding/index.d.ts) as the product uses them
// through src/native/addon.ts: what must compile, and (`@ts-expect-error`) what must not.
// Checked by `tsc -p test/types` (test/types/index_d_ts.test.ts); never run.

import { KvgateError } from '../../src/errors.js';
import type { KvgateAddon, KvRouterStats, StoreStatus, UnitInfo } from '../../src/native/addon.js';

declare const addon: KvgateAddon;

// ---- hashing ----
const local: BigUint64Array = addon.blockHashes(new Uint32Array(32), 16);
addon.blockHashes(new Uint32Array(32), 16, new BigUint64Array(2));
const x: bigint = addon.xxh3(new Uint8Array(4), 1n);
for (const path of addon.xxh3Paths()) addon.xxh3(new Uint8Array(300), 0n, path);
// @ts-expect-error a path is one of the named code paths
addon.xxh3(new Uint8Array(300), 0n, 'sse2');
// @ts-expect-error tokens are a Uint32Array, not a plain array
addon.blockHashes([1, 2, 3], 16);
// @ts-expect-error the seed is a bigint
addon.xxh3(new Uint8Array(4), 1);
// @ts-expect-error the result is a BigUint64Array, not numbers
const wrong: number[] = addon.blockHashes(new Uint32Array(32), 16);

// ---- errors ----
addon.setErrorClass(KvgateError);
addon.setErrorClass(class extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
});
// @ts-expect-error a constructor is needed, not a function
addon.setErrorClass((code: string, message: string) => new Error(`${code}: ${message}`));
// @ts-expect-error the class must take (code, message)
addon.setErrorClass(class extends Error {
  constructor(code: number) {
    super(String(code));
  }
});

// ---- the router ----
const router = new addon.KvRouter({ blockSize: 16, policy: 'kv', approx: true, approxMaxBlocks: 1000, seed: 1n });
new addon.KvRouter({ blockSize: 1, seed: 7 });
// @ts-expect-error blockSize is required
new addon.KvRouter({ policy: 'kv' });
// @ts-expect-error an unknown option (a typo of approxMaxBlocks)
new addon.KvRouter({ blockSize: 16, approxMaxBlock: 5 });
// @ts-expect-error the policy is one of the named ones
new addon.KvRouter({ blockSize: 16, policy: 'fastest' });
// @ts-expect-error approx is a boolean
new addon.KvRouter({ blockSize: 16, approx: 1 });

const bs: number = router.blockSize;
// @ts-expect-error blockSize is read-only
router.blockSize = 32;
router.addWorker(1);
router.addWorker(1, 2, true);
// @ts-expect-error a worker's mode is a boolean
router.addWorker(1, 0, 'approx');
router.removeWorker(1);
router.clearWorker(1, 0);

const status: StoreStatus = router.applyStored(1, 0, null, new Uint32Array(16), new BigInt64Array(1));
router.applyStored(1, 0, 5n, new Uint32Array(16), new BigUint64Array(1));
// @ts-expect-error the parent hash is a bigint or null
router.applyStored(1, 0, 5, new Uint32Array(16), new BigInt64Array(1));
// @ts-expect-error engine hashes are 64-bit
router.applyStored(1, 0, null, new Uint32Array(16), new Uint32Array(1));
// @ts-expect-error the status is one of four strings
const notStatus: 'stored' = router.applyStored(1, 0, null, new Uint32Array(16), new BigInt64Array(1));
const missing: number = router.applyRemoved(1, 0, new BigInt64Array(2));
const errors: number = router.applyEvents(1, 0, new Uint8Array(8), new Uint32Array(5));
// @ts-expect-error a batch is bytes, not a string
router.applyEvents(1, 0, 'batch');

const out = new Uint32Array(3);
const routed: boolean = router.route(new Uint32Array(40), 1, out, 1, 0, performance.now());
// @ts-expect-error the request id is a number
router.route(new Uint32Array(40), 1n, out);
// @ts-expect-error out is a Uint32Array
router.route(new Uint32Array(40), 1, [0, 0, 0]);
const n: number = router.findMatches(local, new Uint32Array(8), new Uint32Array(8), new Uint32Array(8));
router.score(new Uint32Array(40), new Uint32Array(8), new Uint32Array(8), new Uint32Array(8), new Float64Array(8));
// @ts-expect-error costs are a Float64Array
router.score(new Uint32Array(40), new Uint32Array(8), new Uint32Array(8), new Uint32Array(8), new Uint32Array(8));
const marked: boolean = router.markPrefillDone(1);
const freed: boolean = router.free(1);
router.expire();
router.setSeed(3n);

const stats: KvRouterStats = router.stats();
const sizes: number[] = [stats.blocks, stats.bytes, stats.approxBlocks, stats.activeRequests];
// @ts-expect-error no such counter
const noSuchCounter = stats.approxBytes;
const units: UnitInfo[] = router.units();
const flags: boolean[] = units.map((u) => u.candidate);
// @ts-expect-error units are read as numbers
const names: string[] = units.map((u) => u.worker);
router.close();

export const used = [x, wrong, noSuchCounter, bs, status, notStatus, missing, errors, routed, n, marked, freed, sizes, flags, names];
