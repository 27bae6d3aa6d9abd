// One end-to-end suite, run against both ways of running kvgate with three mocker workers:
// - embedded: `kvgate serve --workers 3` spawns its workers (KV events over each worker's
//   own connection);
// - distributed: three `kvgate worker`s and two `kvgate serve`s found through a real etcd,
//   with KV events and routing decisions over a real nats-server.
// Both with the cluster token and the engine API key set (embedded: files given to serve,
// which passes them on to its workers; distributed: the environment). The same
// checks on each: every frontend sees the three workers; three prompts warm caches, and
// each repeated prompt (in distributed mode, on the other frontend) goes to the worker that
// holds it, which reports it cached; KV events were applied for each warmed worker; the
// active-request gauges return to zero.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { metricByWorker, waitFor } from '../e2e/stack.js';
import { EtcdServer } from './etcd_server.js';
import { NatsServer } from './nats_server.js';
import { chat, health, killAll, names, startFrontend, startWorker, type Proc } from './processes.js';

const secrets = { KVGATE_CLUSTER_TOKEN: 'both-modes-token', KVGATE_ENGINE_API_KEY: 'both-modes-key' };

let etcd: EtcdServer | null = null;
let nats: NatsServer | null = null;
const cleanups: (() => void)[] = [];
afterAll(async () => {
  await killAll();
  for (const c of cleanups) c();
  await nats?.stop();
  await etcd?.destroy();
});

interface Mode {
  // The frontends; requests go to the first, repeats to the last (the same one if only one).
  frontends: Proc[];
  workers: number;
}

// The secrets as files here: serve passes the files on to the workers it spawns.
async function embedded(): Promise<Mode> {
  const dir = mkdtempSync(join(tmpdir(), 'kvgate-modes-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, value: string) => (writeFileSync(join(dir, name), value + '\n', { mode: 0o600 }), join(dir, name));
  const flags = ['--workers', '3', '--cluster-token-file', file('token', secrets.KVGATE_CLUSTER_TOKEN), '--engine-api-key-file', file('key', secrets.KVGATE_ENGINE_API_KEY)];
  return { frontends: [await startFrontend(flags)], workers: 3 };
}

async function distributed(): Promise<Mode> {
  etcd = await EtcdServer.start();
  nats = await NatsServer.start();
  const flags = ['--discovery', etcd.url, '--event-plane', nats.url];
  await Promise.all([0, 1, 2].map(() => startWorker(flags, secrets)));
  return { frontends: await Promise.all([startFrontend(flags, secrets), startFrontend(flags, secrets)]), workers: 3 };
}

// KV events applied to each worker's index entries, from a frontend's /metrics.
async function applied(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<string, number>();
  for (const m of text.matchAll(/^kvgate_router_kv_events_total\{[^}]*worker="([^"]+)"[^}]*result="applied"[^}]*\} (\S+)$/gm)) out.set(m[1]!, (out.get(m[1]!) ?? 0) + Number(m[2]));
  return out;
}

const PROMPTS = ['You are a patient tutor of algebra. ', 'You summarise legal contracts in plain words. ', 'You write short haiku about the sea. '];

describe.each([
  ['embedded (kvgate serve --workers 3)', embedded],
  ['distributed (etcd + NATS, 3 workers, 2 frontends)', distributed],
])('three workers, %s', (_name, start) => {
  it('every frontend sees the workers; repeated prompts follow their cache; events applied; gauges back to 0', { timeout: 180_000 }, async () => {
    const mode = await start();
    const first = mode.frontends[0]!;
    const last = mode.frontends[mode.frontends.length - 1]!;
    for (const f of mode.frontends) {
      await waitFor(async () => (await names(f.url)).length === mode.workers && (await health(f.url)).status === 'healthy', `${f.url} to see ${mode.workers} healthy workers`, 60_000);
    }
    const workers = await names(first.url);
    for (const f of mode.frontends) expect(await names(f.url)).toEqual(workers);

    // Each prompt, sent once to the first frontend, lands on some worker and warms its cache.
    // The cached blocks every frontend indexes come from the workers' KV events.
    const cached = (url: string) => metricByWorker(url, 'kvgate_router_worker_cached_blocks');
    const decisions = (url: string) => metricByWorker(url, 'kvgate_router_decisions_total');
    const homes: string[] = [];
    for (const p of PROMPTS) {
      const before = await decisions(first.url);
      const blocks = await Promise.all(mode.frontends.map((f) => cached(f.url)));
      await chat(first.url, p, 12);
      const after = await decisions(first.url);
      const home = workers.find((w) => (after.get(w) ?? 0) > (before.get(w) ?? 0))!;
      expect(home).toBeDefined();
      homes.push(home);
      // Every frontend indexes the new blocks on that worker before the repeat is sent.
      for (const [i, f] of mode.frontends.entries()) {
        await waitFor(async () => ((await cached(f.url)).get(home) ?? 0) > (blocks[i]!.get(home) ?? 0), `${f.url} to index the new blocks on ${home}`);
      }
    }

    // Each repeat (on the last frontend) goes where its prompt is cached, and is served from it.
    for (const [i, p] of PROMPTS.entries()) {
      const before = await decisions(last.url);
      const r = await chat(last.url, p, 12);
      const after = await decisions(last.url);
      expect((after.get(homes[i]!) ?? 0) - (before.get(homes[i]!) ?? 0)).toBe(1);
      expect(r.usage!.prompt_tokens_details?.cached_tokens).toBeGreaterThanOrEqual(64);
    }

    for (const f of mode.frontends) {
      const events = await applied(f.url);
      for (const h of homes) expect(events.get(h) ?? 0).toBeGreaterThan(0);
      await waitFor(async () => [...(await metricByWorker(f.url, 'kvgate_router_worker_active_requests')).values()].every((n) => n === 0), `${f.url}: active requests back to 0`);
    }
    await killAll();
  });
});
