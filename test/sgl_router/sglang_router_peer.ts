// SGLang's own router from PyPI (sglang-router, the smg-based Rust router behind
// `python -m sglang_router.launch_router`), installed on first use into a venv under build/
// (about 20 s). Used by the comparison test and by bench/router/sgl_router.bench.ts.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const SGLANG_ROUTER_VERSION = '0.3.2';
const VERSION = SGLANG_ROUTER_VERSION;

export function sglangRouterPython(): string {
  const venv = resolve('build', `sglang-router-venv-${VERSION}`);
  const exe = join(venv, 'bin', 'python');
  const works = () => {
    try {
      return execFileSync(exe, ['-c', 'import importlib.metadata as m; print(m.version("sglang-router"))'], { encoding: 'utf8' }).trim() === VERSION;
    } catch {
      return false;
    }
  };
  if (existsSync(exe) && works()) return exe;
  execFileSync('python3', ['-m', 'venv', venv], { stdio: 'ignore', timeout: 120_000 });
  execFileSync(exe, ['-m', 'pip', 'install', '--quiet', `sglang-router==${VERSION}`], { stdio: 'ignore', timeout: 300_000 });
  if (!works()) throw new Error(`${exe} has no sglang-router ${VERSION} after pip install`);
  return exe;
}

