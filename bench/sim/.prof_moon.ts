// mooncost's profiling driver (not committed; copy to bench/sim/.prof_moon.ts to run):
// the 10,000-worker Mooncake fleet, route/markPrefillDone/free untimed, a checksum of picks.
// ADDON=path runs another build; COPY=1 copies each prompt into one reused buffer first.
import { addon as own } from '../../src/native/addon.js';
import { loadAddon } from './router_cost.js';
import { ROUTING_DEFAULTS } from '../../src/router/routing_defaults.js';
import { queryPicker, mooncakeFleet, sharedPrefixFleet } from './cost_fleets.js';
const addon = process.env.ADDON ? loadAddon(process.env.ADDON) : own;
const fleet = process.env.FLEET === 'shared' ? sharedPrefixFleet : mooncakeFleet();
const workers = Number(process.env.W ?? 10000), pw = Number(process.env.PW ?? ROUTING_DEFAULTS.pendingWeight);
const router = new addon.KvRouter({ blockSize: fleet.blockSize, seed: 1, pendingWeight: pw, overlapWeight: ROUTING_DEFAULTS.overlapWeight });
for (let w = 0; w < workers; w++) router.addWorker(w, 0);
const prompts = fleet.build(workers, (w, parent, tokens, hashes) => router.applyStored(w, 0, parent, tokens, hashes));
const pick = queryPicker(prompts.length);
const out = new Uint32Array(3);
const copy = process.env.COPY === '1';
const buffer = new Uint32Array(Math.max(...prompts.map((p) => p.length)));
const inFlight = workers;
let id = 0, h = 0;
const run = (n: number) => {
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    id++;
    let p = prompts[pick()]!;
    if (copy) { buffer.set(p); p = buffer.subarray(0, p.length); }
    router.route(p, id, out);
    h = (h * 31 + out[0]!) >>> 0;
    router.markPrefillDone(id);
    if (id > inFlight) router.free(id - inFlight);
  }
  const c = process.cpuUsage(c0);
  return n / ((c.user + c.system) / 1e6);
};
console.log('warm', run(20000).toFixed(0));
console.log('READY', process.pid);
const rounds = Number(process.env.ROUNDS ?? 5);
const rates: number[] = [];
for (let r = 0; r < rounds; r++) rates.push(run(Number(process.env.N ?? 40000)));
console.log('dps', rates.map((x) => x.toFixed(0)).join(' '), 'hash', h);
router.close();
