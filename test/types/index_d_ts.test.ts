// The addon's type declarations (native/binding/index.d.ts) against test/types/addon.types.ts:
// what the product writes compiles, and each `@ts-expect-error` line is still an error.

import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const repo = new URL('../../', import.meta.url).pathname;

describe('native/binding/index.d.ts', () => {
  it('accepts the uses in test/types/addon.types.ts and rejects every @ts-expect-error line', () => {
    const r = spawnSync(join(repo, 'node_modules', '.bin', 'tsc'), ['-p', 'test/types'], { cwd: repo, encoding: 'utf8', timeout: 120_000 });
    expect(`${r.stdout}${r.stderr}`).toBe('');
    expect(r.status).toBe(0);
  });
});
