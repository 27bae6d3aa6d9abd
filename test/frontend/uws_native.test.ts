// The frontend (--http-server uws) runs on uWebSockets.js's native build, never on its
// silent JS fallback.

import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { uws } from '../../src/http/uws.js';
import { startFakeSglang } from './fixtures/fake_sglang.js';
import { startStack } from './fixtures/stack.js';

describe('uWebSockets.js', () => {
  it('is the native binary', async () => {
    expect(typeof uws.App).toBe('function');
    const cache = Object.keys(createRequire(import.meta.url).cache);
    expect(cache.some((k) => /uws_linux_x64_\d+\.node$/.test(k))).toBe(true);
    // Only the native server writes this header.
    const engine = await startFakeSglang({});
    const stack = await startStack([engine], { httpServer: 'uws' });
    try {
      const r = await fetch(`${stack.url}/live`);
      expect(r.headers.get('uwebsockets')).toBe('20');
    } finally {
      await stack.close();
      await engine.close();
    }
  });
});
