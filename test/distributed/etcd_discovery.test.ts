// Discovery on etcd, with real processes: a real etcd (Debian etcd-server), `kvgate worker
// --engine mocker --discovery etcd://...` and two `kvgate serve --discovery etcd://...`
// frontends. Both frontends find both workers and route on the same view of their caches; a
// killed worker's lease lapses and it leaves both; with etcd stopped the frontends keep
// serving the last known set (requests in flight finish) and /health and /metrics show the
// outage; after etcd restarts they reconnect and a worker started meanwhile is found; a worker
// that stops cleanly leaves at once (revoked lease); a killed frontend leaves the other serving.

import { afterAll, describe, expect, it } from 'vitest';
import { metricByWorker, MODEL, waitFor } from '../e2e/stack.js';
import { chat, health, killAll, metric, names, startFrontend, startWorker } from './processes.js';
import { EtcdServer } from './etcd_server.js';

let etcd: EtcdServer | null = null;
afterAll(async () => {
  await killAll();
  await etcd?.destroy();
});


describe('discovery on etcd: two frontends, workers registered under leases', () => {
  it('find the same workers, route on the same view, drop a dead worker, ride out an etcd restart', { timeout: 180_000 }, async () => {
    etcd = await EtcdServer.start();
    const [w1, w2] = await Promise.all([startWorker(['--discovery', etcd.url]), startWorker(['--discovery', etcd.url])]);
    const [a, b] = await Promise.all([startFrontend(['--discovery', etcd.url]), startFrontend(['--discovery', etcd.url])]);
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
    // Requests in flight while etcd goes all finish.
    const during = [a, b, a, b, a, b].map((f) => chat(f.url));
    await etcd.stop();
    for (const r of await Promise.all(during)) expect(r.choices[0]!.finish_reason).toBeTruthy();
    for (const f of [a, b]) await waitFor(async () => (await health(f.url)).discovery.connected === false, `${f.url} to notice etcd is gone`);
    for (const f of [a, b]) {
      const hh = await health(f.url);
      expect(hh.status).toBe('degraded');
      expect(hh.workers).toEqual([{ name: alive.url, model: MODEL, role: 'agg', healthy: true }]);
      expect(hh.discovery.error).toBeTruthy();
      expect((await chat(f.url)).usage!.completion_tokens).toBeGreaterThan(0);
      expect(await metric(f.url, 'kvgate_discovery_connected')).toBe(0);
      expect(await metric(f.url, 'kvgate_discovery_outages_total')).toBe(1);
    }

    // etcd back (same data): frontends reconnect, the surviving worker is still registered,
    // and a worker started now is found by both.
    await etcd.start();
    for (const f of [a, b]) await waitFor(async () => (await health(f.url)).discovery.connected, `${f.url} to reconnect to etcd`, 30_000);
    const w3 = await startWorker(['--discovery', etcd.url]);
    const now = [alive.url, w3.url].sort();
    for (const f of [a, b]) await waitFor(async () => JSON.stringify(await names(f.url)) === JSON.stringify(now), `${f.url} to find the new worker`, 30_000);
    // A worker just found is healthy once its agent connection is up.
    for (const f of [a, b]) await waitFor(async () => (await health(f.url)).status === 'healthy', `${f.url} to be healthy`, 30_000);
    for (const f of [a, b]) expect(await metric(f.url, 'kvgate_discovery_connected')).toBe(1);
    for (const p of [w1, w2, w3, a, b]) expect(p.proc.exitCode === null || p === dead).toBe(true);

    // A worker that stops cleanly revokes its lease: gone from both frontends without waiting out the TTL.
    const exited = new Promise((r) => w3.proc.once('exit', r));
    w3.proc.kill('SIGTERM');
    await exited;
    // (Bounded below the 10 s TTL: only the revocation can do it in time.)
    for (const f of [a, b]) await waitFor(async () => JSON.stringify(await names(f.url)) === JSON.stringify([alive.url]), `${f.url} to drop the stopped worker`, 8_000);

    // A frontend killed: the other serves on.
    a.proc.kill('SIGKILL');
    expect((await chat(b.url)).usage!.completion_tokens).toBeGreaterThan(0);
    expect((await health(b.url)).status).toBe('healthy');
  });
});
