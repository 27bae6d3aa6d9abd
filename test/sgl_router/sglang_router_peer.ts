// SGLang's own routers from PyPI, installed on first use into venvs under build/ (about 20 s
// each): sglang-router (the smg-based Rust router behind `python -m sglang_router.launch_router`)
// and smg (the Shepherd Model Gateway it became, `smg launch`). Used by the comparison and PD
// tests and by bench/router/sgl_router.bench.ts.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const SGLANG_ROUTER_VERSION = '0.3.2';
export const SMG_VERSION = '1.13.0';

// The venv's python with `pkg==version` installed (installed now if missing).
function venvWith(pkg: string, version: string): string {
  const venv = resolve('build', `${pkg}-venv-${version}`);
  const exe = join(venv, 'bin', 'python');
  const works = () => {
    try {
      return execFileSync(exe, ['-c', `import importlib.metadata as m; print(m.version("${pkg}"))`], { encoding: 'utf8' }).trim() === version;
    } catch {
      return false;
    }
  };
  if (existsSync(exe) && works()) return exe;
  execFileSync('python3', ['-m', 'venv', venv], { stdio: 'ignore', timeout: 120_000 });
  execFileSync(exe, ['-m', 'pip', 'install', '--quiet', `${pkg}==${version}`], { stdio: 'ignore', timeout: 300_000 });
  if (!works()) throw new Error(`${exe} has no ${pkg} ${version} after pip install`);
  return exe;
}

export function sglangRouterPython(): string {
  return venvWith('sglang-router', SGLANG_ROUTER_VERSION);
}

// The `smg` executable.
export function smgBinary(): string {
  return join(venvWith('smg', SMG_VERSION), '..', 'smg');
}
