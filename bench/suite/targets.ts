// What one routing-quality row of bench:report sends its `kvgate bench` run to: `kvgate serve`
// in a router mode, or a peer over the same kind of simulated fleet (same worker count, page
// size, KV capacity, running-request cap and speedup, so the same model time):
//
//   sglang-router, smg  SGLang's routers (cache_aware) in front of standalone kvgate mockers
//   router-POLICY       `kvgate router --policy POLICY` (the drop-in router) over the same
//                       standalone mockers as SGLang's routers
//   dynamo              NVIDIA Dynamo's KV-routing frontend and its own mockers (Dynamo's mocker
//                       runs the same polynomial timing model, with the same --speedup-ratio)
//
// Every row gets the same token ids. kvgate and Dynamo take them as an OpenAI completions
// prompt; SGLang's routers take them on SGLang's /generate as input_ids (their completions
// route takes only text, which the mocker would read one token per byte).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startRouter, startMockers } from '../router/sgl_routers.js';
import { stop } from '../gateway/procs.js';
import { mockerArgs, startSystem, type EngineSettings } from '../gateway/systems.js';
import { type Peers } from '../gateway/peers.js';
import { startServe } from './procs.js';
export { isPeer, PEERS, type PeerName } from './summary.js';

export interface Target {
  url: string;
  // kvgate bench flags this target needs (its API).
  api: string[];
  stop(): Promise<void>;
}

// `system` is a kvgate router mode (kv, round-robin, random, ...) or a peer. `peers` (the
// bench cache's Dynamo venv and model folder) is needed only for dynamo.
export async function startTarget(system: string, e: EngineSettings, logDir: string, peers: Peers | null): Promise<Target> {
  mkdirSync(logDir, { recursive: true });
  if (system === 'dynamo') {
    if (!peers) throw new Error('dynamo: the bench cache (ensurePeers) is needed');
    const sys = await startSystem('dynamo', peers, e, logDir, () => undefined);
    return { url: sys.url, api: ['--api', 'openai-completions'], stop: () => sys.stop() };
  }
  const standalone = system === 'sglang-router' || system === 'smg' ? `${system}:cache_aware` : system.startsWith('router-') ? `kvgate:${system.slice('router-'.length)}` : null;
  if (standalone) {
    const fleet = await startMockers(e.workers, mockerArgs(e), logDir);
    const stopFleet = () => Promise.all(fleet.procs.map((p) => stop(p))).then(() => undefined);
    try {
      const router = await startRouter(standalone, fleet.urls, { logDir });
      return { url: router.urls[0]!, api: ['--api', 'sglang-generate'], stop: () => router.stop().then(stopFleet) };
    } catch (err) {
      await stopFleet();
      throw err;
    }
  }
  const serve = await startServe(['--workers', String(e.workers), ...routerModeArgs(system), '--', ...mockerArgs(e)]);
  return { url: serve.url, api: ['--api', 'openai-completions'], stop: () => serve.stop() };
}

// `kvgate serve`'s flags for a router mode; `kv-nowait` is kv without the wait for a shared
// prefill (--router-prefill-wait-share 1).
export function routerModeArgs(mode: string): string[] {
  return mode === 'kv-nowait' ? ['--router-mode', 'kv', '--router-prefill-wait-share', '1'] : ['--router-mode', mode];
}

export const logDirOf = (root: string, tag: string) => join(root, `${tag}-procs`);
