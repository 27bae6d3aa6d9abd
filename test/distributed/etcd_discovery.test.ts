// Discovery on etcd, with real processes: a real etcd (Debian etcd-server), `kvgate worker
// --engine mocker --discovery etcd://...` and two `kvgate serve --discovery etcd://...`
// frontends. Both frontends find both workers and route on the same view of their caches; a
// killed worker's lease lapses and it leaves both; with etcd stopped the frontends keep
// serving the last known set and /health and /metrics show the outage; after etcd restarts
// they reconnect and a worker started meanwhile is found.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { KVGATE, metricByWorker, MODEL, waitFor } from '../e2e/stack.js';
import { EtcdServer } from './etcd_server.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const started: ChildProcess[] = [];
let etcd: EtcdServer | null = null;

afterAll(async () => {
  for (const p of started.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await exited;
    }
  }
  await etcd?.destroy();
});

interface Proc {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
}

function kvgate(args: string[]): Proc {
  const proc = spawn(KVGATE[0]!, [...KVGATE.slice(1), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  started.push(proc);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err = (err + d).slice(-50_000)));
  return { proc, stdout: () => out, stderr: () => err };
}

async function ready(p: Proc, re: RegExp, what: string): Promise<string> {
  await waitFor(() => re.test(p.stdout()) || p.proc.exitCode !== null, what, 60_000);
  const m = re.exec(p.stdout());
  if (!m) throw new Error(`${what} did not start:\n${p.stderr().slice(-3000)}`);
  return m[1]!;
}

const startWorker = async (url: string) => {
  const p = kvgate(['worker', '--engine', 'mocker', '--discovery', url, '--load-interval', '0.2', '--', '--model-path', MODEL, '--page-size', '16', '--speedup-ratio', '10']);
  return { ...p, url: await ready(p, /kvgate worker ready: (ws:\/\/\S+)/, 'a worker') };
};

const startFrontend = async (url: string) => {
  const p = kvgate(['serve', '--discovery', url, '--port', '0']);
  return { ...p, url: await ready(p, /listening on (http:\/\/\S+)/, 'a frontend') };
};

interface Health {
  status: string;
  workers: { name: string; healthy: boolean }[];
  discovery: { backend: string; connected: boolean; workers: number; error?: string };
}

const health = async (url: string) => (await (await fetch(`${url}/health`)).json()) as Health;
const names = async (url: string) => (await health(url)).workers.map((w) => w.name).sort();
const metric = async (url: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await (await fetch(`${url}/metrics`)).text())?.[1]);

// A prompt long enough to fill several 16-token blocks.
const messages = [
  { role: 'system' as const, content: 'You answer in one short sentence about distributed caches. '.repeat(12) },
  { role: 'user' as const, content: 'Which worker holds my prefix?' },
];
const chat = (url: string) =>
  new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 30_000 }).chat.completions.create({ model: MODEL, messages, max_tokens: 8 });

describe('discovery on etcd: two frontends, workers registered under leases', () => {
  it('find the same workers, route on the same view, drop a dead worker, ride out an etcd restart', { timeout: 180_000 }, async () => {
    etcd = await EtcdServer.start();
    const [w1, w2] = await Promise.all([startWorker(etcd.url), startWorker(etcd.url)]);
    const [a, b] = await Promise.all([startFrontend(etcd.url), startFrontend(etcd.url)]);
    const both = [w1.url, w2.url].sort();

    // Both frontends find both workers through etcd (no --worker-urls anywhere).
    for (const f of [a, b]) await waitFor(async () => JSON.stringify(await names(f.url)) === JSON.stringify(both), `${f.url} to see both workers`);
    const h = await health(a.url);
    expect(h.status).toBe('healthy');
    expect(h.discovery).toMatchObject({ backend: 'etcd', connected: true, workers: 2 });

    // A request on A warms one worker; B's index sees the same blocks on the same worker (each
    // frontend gets every worker's KV events), so B routes the same prompt there, cached.
    const first = await chat(a.url);
    expect(first.usage!.prompt_tokens).toBeGreaterThan(64);
    const warmed = async (url: string) => [...(await metricByWorker(url, 'kvgate_router_worker_cached_blocks')).entries()].filter(([, n]) => n > 0);
    await waitFor(async () => (await warmed(a.url)).length === 1 && JSON.stringify(await warmed(b.url)) === JSON.stringify(await warmed(a.url)), 'both frontends to index the same blocks');
    const [[hot]] = (await warmed(b.url)) as [[string, number]];
    const second = await chat(b.url);
    expect(second.usage!.prompt_tokens_details?.cached_tokens).toBeGreaterThanOrEqual(64);
    expect((await metricByWorker(b.url, 'kvgate_router_decisions_total')).get(hot)).toBe(1);

    // Kill the warmed worker hard: its lease lapses (10 s TTL), its key goes, and it leaves
    // both frontends (routing, index, /health) for good.
    const dead = hot === w1.url ? w1 : w2;
    const alive = dead === w1 ? w2 : w1;
    dead.proc.kill('SIGKILL');
    for (const f of [a, b]) await waitFor(async () => JSON.stringify(await names(f.url)) === JSON.stringify([alive.url]), `${f.url} to drop the dead worker`, 30_000);
    for (const f of [a, b]) {
      expect((await metricByWorker(f.url, 'kvgate_router_worker_cached_blocks')).has(dead.url)).toBe(false);
      const r = await chat(f.url);
      expect(r.choices[0]!.message.content!.length).toBeGreaterThan(0);
      expect((await health(f.url)).discovery.workers).toBe(1);
    }

    // etcd stops: the frontends keep serving the last known worker; /health says degraded
    // with the discovery outage, /metrics counts it; nothing exits.
    await etcd.stop();
    for (const f of [a, b]) await waitFor(async () => (await health(f.url)).discovery.connected === false, `${f.url} to notice etcd is gone`);
    for (const f of [a, b]) {
      const hh = await health(f.url);
      expect(hh.status).toBe('degraded');
      expect(hh.workers).toEqual([{ name: alive.url, model: MODEL, healthy: true }]);
      expect(hh.discovery.error).toBeTruthy();
      expect((await chat(f.url)).usage!.completion_tokens).toBeGreaterThan(0);
      expect(await metric(f.url, 'kvgate_discovery_connected')).toBe(0);
      expect(await metric(f.url, 'kvgate_discovery_outages_total')).toBe(1);
    }

    // etcd back (same data): frontends reconnect, the surviving worker is still registered,
    // and a worker started now is found by both.
    await etcd.start();
    for (const f of [a, b]) await waitFor(async () => (await health(f.url)).discovery.connected, `${f.url} to reconnect to etcd`, 30_000);
    const w3 = await startWorker(etcd.url);
    const now = [alive.url, w3.url].sort();
    for (const f of [a, b]) await waitFor(async () => JSON.stringify(await names(f.url)) === JSON.stringify(now), `${f.url} to find the new worker`, 30_000);
    for (const f of [a, b]) {
      expect((await health(f.url)).status).toBe('healthy');
      expect(await metric(f.url, 'kvgate_discovery_connected')).toBe(1);
    }
    for (const p of [w1, w2, w3, a, b]) expect(p.proc.exitCode === null || p === dead).toBe(true);

    // A worker that stops cleanly revokes its lease: gone from both frontends without waiting out the TTL.
    const exited = new Promise((r) => w3.proc.once('exit', r));
    w3.proc.kill('SIGTERM');
    await exited;
    // (Bounded below the 10 s TTL: only the revocation can do it in time.)
    for (const f of [a, b]) await waitFor(async () => JSON.stringify(await names(f.url)) === JSON.stringify([alive.url]), `${f.url} to drop the stopped worker`, 8_000);
  });
});
