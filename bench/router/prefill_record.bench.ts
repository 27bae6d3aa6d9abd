// What the wait for a shared prefill adds to a request whose worker has nothing in flight
// (`kvgate serve`, kv mode): hashing the prompt's blocks once and recording, then settling, it
// in InflightPrefills, beside the native route + free every request pays. A 4,096-token
// prompt, block size 16, 4 workers; median per-request µs of 21 rounds, interleaved.
// `node --import tsx bench/router/prefill_record.bench.ts` (bench/README.md).

import { addon } from '../../src/native/addon.js';
import { InflightPrefills } from '../../src/router/inflight_prefills.js';

const router = new addon.KvRouter({ blockSize: 16, policy: 'kv' });
for (let w = 0; w < 4; w++) router.addWorker(w, 0);
const out = new Uint32Array(3);
const prefills = new InflightPrefills();
const tokens = Uint32Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 0);
const N = 5000;
const route: number[] = [];
const record: number[] = [];
for (let round = 0; round < 21; round++) {
  let t = performance.now();
  for (let i = 0; i < N; i++) {
    router.route(tokens, i, out);
    router.free(i);
  }
  route.push(((performance.now() - t) / N) * 1000);
  t = performance.now();
  for (let i = 0; i < N; i++) prefills.add(0, addon.blockHashes(tokens, 16), true)();
  record.push(((performance.now() - t) / N) * 1000);
}
const med = (x: number[]) => x.sort((a, b) => a - b)[x.length >> 1]!;
console.log(`route + free ${med(route).toFixed(2)} µs; blockHashes + record + settle ${med(record).toFixed(2)} µs (${(med(record) / med(route)).toFixed(2)}x)`);
router.close();
