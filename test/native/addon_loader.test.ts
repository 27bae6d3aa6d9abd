// The addon loader: KVGATE_ADDON picks the build to load, and a checkout where the addon
// was never built must say what to run. The loader is copied into an empty directory tree (no build/) and imported in a
// child process, as a user's first `kvgate` start would.

import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { ADDON_PATHS } from '../../src/native/addon.js';

const repo = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'kvgate-loader-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Imports the copied loader in a child with KVGATE_ADDON set to `override` ('' = unset).
function load(override: string): { code?: string; message?: string; loaded?: boolean } {
  mkdirSync(join(dir, 'src', 'native'), { recursive: true });
  copyFileSync(join(repo, 'src/native/addon.ts'), join(dir, 'src/native/addon.ts'));
  copyFileSync(join(repo, 'src/errors.ts'), join(dir, 'src/errors.ts'));
  const url = pathToFileURL(join(dir, 'src/native/addon.ts')).href;
  const script = `import(${JSON.stringify(url)}).then(
    () => console.log(JSON.stringify({ loaded: true })),
    (e) => console.log(JSON.stringify({ code: e.code, message: e.message })))`;
  const env = { ...process.env, KVGATE_ADDON: override };
  const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: repo, encoding: 'utf8', timeout: 30_000, env });
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!);
}

describe('native addon loader', () => {
  it('loads the build KVGATE_ADDON names, and only that one', () => {
    const built = ADDON_PATHS.find((p) => existsSync(p))!;
    expect(load(built)).toEqual({ loaded: true });
    const missing = join(dir, 'elsewhere', 'kvgate.node');
    const out = load(missing);
    expect(out.code).toBe('ERR_NATIVE_ADDON');
    expect(out.message).toContain(missing);
  });

  it('fails with ERR_NATIVE_ADDON naming `npm run build:native` when nothing is built', () => {
    const out = load('');
    expect(out.code).toBe('ERR_NATIVE_ADDON');
    expect(out.message).toContain('npm run build:native');
    expect(out.message).toContain(join(dir, 'build', 'native', 'Release', 'kvgate.node'));
  });
});
