// SGLang's own routers from PyPI, installed on first use into venvs under build/ (about 20 s
// each): sglang-router (the smg-based Rust router behind `python -m sglang_router.launch_router`)
// and smg (the Shepherd Model Gateway it became, `smg launch`). Used by the comparison and PD
// tests and by bench/router/sgl_router.bench.ts.

import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { freePort } from '../../src/worker/ports.js';

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


export interface PeerRouter {
  url: string;
  metricsUrl: string;
  stop(): Promise<void>;
}

// Starts `command args --host 127.0.0.1 --port P --prometheus-port Q` and waits until its
// /readiness says ready (it registers workers in the background: 2-15 s against mockers).
export async function startPeerRouter(command: string, args: string[], timeoutMs = 90_000): Promise<PeerRouter> {
  const [port, prom] = [await freePort(), await freePort()];
  const proc = spawn(command, [...args, '--host', '127.0.0.1', '--port', String(port), '--prometheus-host', '127.0.0.1', '--prometheus-port', String(prom), '--log-level', 'warn'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-20_000)));
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill('SIGTERM');
    const killer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await new Promise((r) => proc.once('exit', r));
    clearTimeout(killer);
  };
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ready = await fetch(`${url}/readiness`)
      .then(async (r) => r.status === 200 && (JSON.parse(await r.text()) as { status?: string }).status === 'ready')
      .catch(() => false);
    if (ready) return { url, metricsUrl: `http://127.0.0.1:${prom}`, stop };
    if (Date.now() > deadline || proc.exitCode !== null) {
      await stop();
      throw new Error(`${command} ${args.join(' ')} not ready: ${err.slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
