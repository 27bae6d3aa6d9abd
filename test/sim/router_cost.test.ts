// The router-cost bench's fleets and its peer hook, without Dynamo (CI has no Dynamo venv; the
// Dynamo side is run by `npm run sim -- cost` where the gateway bench installed it).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { mooncakeFleet, MOONCAKE_BASE_WORKERS } from '../../bench/sim/cost_fleets.js';
import { addon } from '../../src/native/addon.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

function mooncakeRouter(workers: number) {
  const fleet = mooncakeFleet(200);
  const router = new addon.KvRouter({ blockSize: fleet.blockSize, seed: 1 });
  for (let w = 0; w < workers; w++) router.addWorker(w, 0);
  const prompts = fleet.build(workers, (w, parent, tokens, hashes) => {
    expect(router.applyStored(w, 0, parent, tokens, hashes)).toBe('ok');
  });
  return { router, prompts };
}

describe('router cost fleets', () => {
  it('mooncake: every request is stored on one of 1,000 workers and on each of its copies, and a query finds its own prompt there', () => {
    const one = mooncakeRouter(MOONCAKE_BASE_WORKERS);
    const two = mooncakeRouter(2 * MOONCAKE_BASE_WORKERS);
    expect(two.router.stats().pairs).toBe(2 * one.router.stats().pairs);
    const out = (r: typeof one.router) => Array.from({ length: 3 }, () => new Uint32Array(r.stats().units));
    const [w1, r1, d1] = out(one.router);
    const [w2, r2, d2] = out(two.router);
    for (const p of two.prompts.slice(0, 50)) {
      const full = Math.floor(p.length / 512);
      if (full === 0) continue;
      const n1 = one.router.findMatches(p, w1!, r1!, d1!);
      const n2 = two.router.findMatches(p, w2!, r2!, d2!);
      expect(n2).toBe(2 * n1);
      const byWorker = new Map(Array.from(w1!.subarray(0, n1), (w, i) => [w, d1![i]!]));
      expect(Math.max(...d1!.subarray(0, n1))).toBe(full); // the worker that served it holds all of it
      for (let i = 0; i < n2; i++) expect(d2![i]).toBe(byWorker.get(w2![i]! % MOONCAKE_BASE_WORKERS));
    }
    one.router.close();
    two.router.close();
  });

  it('mooncake: a fleet that is not whole copies of 1,000 workers is refused', () => {
    expect(() => mooncakeFleet(10).build(1500, () => {})).toThrow(/not a multiple of 1000/);
  });

  it('sim cost without the Dynamo venv reports kvgate and says why the peer is missing', () => {
    const cache = mkdtempSync(join(tmpdir(), 'kvgate-no-peers-'));
    try {
      const res = spawnSync(process.execPath, ['--import', 'tsx', 'bench/sim/main.ts', 'cost'], {
        cwd: root,
        encoding: 'utf8',
        timeout: 60_000,
        env: { ...process.env, SIM_COST_FLEETS: '64', KVGATE_BENCH_CACHE: cache },
      });
      expect(res.status).toBe(0);
      expect(res.stdout).toContain('### Router cost on one core');
      expect(res.stdout).toMatch(/\| 64 \| 16 \| pruned \|/);
      expect(res.stdout).toContain(`Dynamo's indexer: skipped, no Dynamo 1.6.1 venv at ${join(cache, 'dynamo-1.6.1')}`);
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  });
});
