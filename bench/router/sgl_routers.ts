// A fleet of standalone `kvgate mocker` servers (KV events on) and a router in front of them:
// SGLang's own routers (PyPI sglang-router and smg, installed into build/ on first use),
// `kvgate router`, an nginx round-robin proxy, or none (the client spreads requests itself).
// Shared by bench:sgl-router and bench:report's routing-quality points.

import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sglangRouterPython, smgBinary } from '../../test/sgl_router/sglang_router_peer.js';
import { startNginx } from '../../test/frontend/fixtures/nginx.js';
import { freePort, start, stop, waitReady, type Started } from '../gateway/procs.js';

const KVGATE_JS = resolve(fileURLToPath(new URL('../../bin/kvgate.js', import.meta.url)));

// `count` mockers with these extra flags (page size, KV capacity, speedup, ...).
// The workload flags bench:sgl-router and bench:cache-loss share (each adds its own speedup and
// system list).
export const WORKLOAD_FLAGS = {
  concurrency: { type: 'string', default: '16,64' },
  groups: { type: 'string', default: '16' },
  'per-group': { type: 'string', default: '20' },
  'system-words': { type: 'string', default: '150' },
  workers: { type: 'string', default: '4' },
  'max-total-tokens': { type: 'string', default: '8192' },
} as const;

export async function startMockers(count: number, mockerArgs: string[], logDir: string): Promise<{ urls: string[]; procs: Started[] }> {
  const urls: string[] = [];
  const procs: Started[] = [];
  // Every port is picked before the mockers bind theirs, and the OS may hand a released one
  // out again: each drawn port is kept out of the later draws (a mocker once found its HTTP
  // port taken at start-up).
  const picked = new Set<number>();
  const distinctPort = async (): Promise<number> => {
    const p = await freePort('127.0.0.1', picked);
    picked.add(p);
    return p;
  };
  for (let i = 0; i < count; i++) {
    const [port, events, replay] = [await distinctPort(), await distinctPort(), await distinctPort()];
    const config = JSON.stringify({ publisher: 'zmq', endpoint: `tcp://*:${events}`, replay_endpoint: `tcp://*:${replay}`, topic: 'kv' });
    procs.push(start(`mocker${i}`, process.execPath, [KVGATE_JS, 'mocker', '--port', String(port), ...mockerArgs, '--kv-events-config', config, '--log-level', 'warn'], { logPath: join(logDir, `mocker${i}.log`) }));
    urls.push(`http://127.0.0.1:${port}`);
  }
  await waitReady('mockers', procs, async () => (await Promise.all(urls.map((u) => fetch(`${u}/health`).then((r) => r.ok)))).every(Boolean), 60_000);
  return { urls, procs };
}

export interface Router {
  // Where the client sends requests (several: the engines alone, round-robin by the client).
  urls: string[];
  // The router's process (null: no router).
  pid: number | null;
  stop(): Promise<void>;
}

export interface RouterOptions {
  logDir: string;
  // Node flags for a kvgate router process (e.g. --cpu-prof).
  kvgateNodeArgs?: string[];
  // Another kvgate build's bin/kvgate.js, run as `kvgate-before:<policy>`.
  kvgateBefore?: string;
}

// `system` is kind:policy: sglang-router, smg, kvgate, kvgate-uws (`--http-server uws`) or
// kvgate-before with a policy; nginx:round_robin; engine:alone.
export async function startRouter(system: string, workers: string[], o: RouterOptions): Promise<Router> {
  const [kind, policy] = system.split(':') as [string, string];
  if (kind === 'engine') return { urls: workers, pid: null, stop: async () => undefined };
  if (kind === 'nginx') {
    const n = await startNginx(workers, 'proxy_http_version 1.1;\n      proxy_set_header Connection "";');
    return { urls: [n.url], pid: n.pid, stop: () => n.close() };
  }
  const [port, prom] = [await freePort(), await freePort()];
  const common = ['--host', '127.0.0.1', '--port', String(port), '--worker-urls', ...workers, '--policy', policy, '--prometheus-host', '127.0.0.1', '--prometheus-port', String(prom), '--log-level', 'warn'];
  const log = { logPath: join(o.logDir, `${system.replace(':', '-')}.log`) };
  if (kind === 'kvgate-before' && !o.kvgateBefore) throw new Error(`${system} needs another kvgate build (--kvgate-before DIR)`);
  const proc =
    kind === 'kvgate' || kind === 'kvgate-before' || kind === 'kvgate-uws'
      ? start(system, process.execPath, [...(o.kvgateNodeArgs ?? []), kind === 'kvgate-before' ? resolve(o.kvgateBefore!, 'bin', 'kvgate.js') : KVGATE_JS, 'router', ...common, ...(kind === 'kvgate-uws' ? ['--http-server', 'uws'] : [])], log)
      : kind === 'smg'
        ? start(system, smgBinary(), ['launch', ...common], log)
        : kind === 'sglang-router'
          ? start(system, sglangRouterPython(), ['-m', 'sglang_router.launch_router', ...common], log)
          : (() => {
              throw new Error(`unknown router '${system}'`);
            })();
  const url = `http://127.0.0.1:${port}`;
  // Ready when every worker is registered and healthy (SGLang's routers register in the background).
  try {
    await waitReady(system, [proc], async () => {
      const r = await fetch(`${url}/readiness`);
      const j = (await r.json()) as { healthy_workers?: number; status?: string };
      return r.ok && (j.healthy_workers === workers.length || (j.healthy_workers === undefined && j.status === 'ready'));
    }, 120_000);
  } catch (err) {
    await stop(proc);
    throw err;
  }
  return { urls: [url], pid: proc.pid, stop: () => stop(proc) };
}
