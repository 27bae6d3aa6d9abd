// KvRouter.addRouted: a request another router (frontend replica) routed counts as load on
// its unit here, steers this router's own choices away from it, and leaves with free().

import { describe, expect, it } from 'vitest';
import { addon } from '../../src/native/addon.js';

const tokens = (n: number, from = 1) => Uint32Array.from({ length: n }, (_, i) => from + i);

describe('KvRouter.addRouted', () => {
  it('records another router\'s request as load until it is freed', () => {
    const r = new addon.KvRouter({ blockSize: 16, policy: 'kv', overlapWeight: 1, temperature: 0 });
    r.addWorker(0);
    r.addWorker(1);
    expect(r.addRouted(tokens(100), 7, 1, 0, 100)).toBe(true);
    const unit1 = () => r.units().find((u) => u.worker === 1)!;
    expect(unit1()).toMatchObject({ activeRequests: 1, prefillTokens: 100, activeBlocks: 7, cachedBlocks: 0 });
    // The index is untouched, so only the load differs: a new prompt goes to worker 0.
    const out = new Uint32Array(3);
    expect(r.route(tokens(64, 1000), 1, out)).toBe(true);
    expect(out[0]).toBe(0);
    r.free(1);
    expect(r.markPrefillDone(7)).toBe(true);
    expect(unit1()).toMatchObject({ activeRequests: 1, prefillTokens: 0 });
    expect(r.free(7)).toBe(true);
    expect(unit1()).toMatchObject({ activeRequests: 0, activeBlocks: 0 });
    r.close();
  });

  it('refuses units that are not candidates, duplicate ids and bad arguments', () => {
    const r = new addon.KvRouter({ blockSize: 16 });
    r.addWorker(0);
    expect(r.addRouted(tokens(32), 1, 5, 0, 32)).toBe(false);
    expect(r.addRouted(tokens(32), 1, 0, 3, 32)).toBe(false);
    expect(r.addRouted(tokens(32), 1, 0, 0, 32)).toBe(true);
    expect(() => r.addRouted(tokens(32), 1, 0, 0, 32)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    expect(() => r.addRouted([1, 2] as unknown as Uint32Array, 2, 0, 0, 2)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    expect(() => r.addRouted(tokens(8), 2, -1, 0, 8)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG' }));
    r.close();
    expect(() => r.addRouted(tokens(8), 3, 0, 0, 8)).toThrow(expect.objectContaining({ code: 'ERR_CLOSED' }));
  });
});
