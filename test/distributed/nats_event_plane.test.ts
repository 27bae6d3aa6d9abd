// The event plane on NATS, with real processes: a real nats-server and etcd (Debian), two
// mocker workers and two frontends, all with --event-plane nats://... and --discovery
// etcd://.... KV events reach both frontends over NATS only (not over the worker
// connections), so both index the same blocks; with NATS stopped the frontends route
// approximately from their own decisions; after it restarts they route exactly again on a
// rebuilt index (resync). A
// request routed by one frontend counts as load in the other until it ends (replica sync).

import { afterAll, describe, expect, it } from 'vitest';
import { metricByWorker, MODEL, waitFor } from '../e2e/stack.js';
import { EtcdServer } from './etcd_server.js';
import { NatsServer } from './nats_server.js';
import { chat, health, killAll, metric, names, startFrontend, startWorker } from './processes.js';

let etcd: EtcdServer | null = null;
let nats: NatsServer | null = null;
afterAll(async () => {
  await killAll();
  await nats?.stop();
  await etcd?.destroy();
});

const cached = async (url: string) => [...(await metricByWorker(url, 'kvgate_router_worker_cached_blocks')).entries()].filter(([, n]) => n > 0).sort();
const total = (rows: [string, number][]) => rows.reduce((a, [, n]) => a + n, 0);
const same = async (a: string, b: string) => JSON.stringify(await cached(a)) === JSON.stringify(await cached(b));

describe('event plane on NATS: two frontends, two workers', () => {
  it('both frontends index the same blocks from NATS, ride out a NATS restart and catch up', { timeout: 180_000 }, async () => {
    etcd = await EtcdServer.start();
    nats = await NatsServer.start();
    const flags = ['--discovery', etcd.url, '--event-plane', nats.url];
    const [w1, w2] = await Promise.all([startWorker(flags), startWorker(flags)]);
    const [a, b] = await Promise.all([startFrontend(flags), startFrontend(flags)]);
    const both = [w1.url, w2.url].sort();
    for (const f of [a, b]) await waitFor(async () => JSON.stringify(await names(f.url)) === JSON.stringify(both), `${f.url} to see both workers`);

    // A's request warms one worker; both frontends learn it from the NATS subject.
    await chat(a.url);
    await waitFor(async () => (await cached(a.url)).length === 1 && (await same(a.url, b.url)), 'both frontends to index the same blocks');
    const [[hot]] = (await cached(b.url)) as [[string, number]];
    const second = await chat(b.url);
    expect(second.usage!.prompt_tokens_details?.cached_tokens).toBeGreaterThanOrEqual(64);
    expect((await metricByWorker(b.url, 'kvgate_router_decisions_total')).get(hot)).toBe(1);

    expect((await health(a.url)).eventPlane).toMatchObject({ backend: 'nats', connected: true });

    // Router replica sync: a long request routed by A counts as load on its worker in B
    // too, until it finishes (B's own count of what it routed is zero).
    const active = async (url: string) => [...(await metricByWorker(url, 'kvgate_router_worker_active_requests')).entries()].filter(([, n]) => n > 0);
    const long = fetch(`${a.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt: 'Count slowly. '.repeat(40), max_tokens: 3000, ignore_eos: true }),
    }).then((r) => r.json() as Promise<{ usage: { completion_tokens: number } }>);
    await waitFor(async () => (await active(a.url)).length === 1, 'A to route the long request');
    const [[busy]] = (await active(a.url)) as [[string, number]];
    await waitFor(async () => JSON.stringify(await active(b.url)) === JSON.stringify([[busy, 1]]), "B to count A's request");
    expect((await metricByWorker(b.url, 'kvgate_router_decisions_total')).get(busy) ?? 0).toBeLessThanOrEqual(1);
    expect((await long).usage.completion_tokens).toBe(3000);
    for (const f of [a, b]) await waitFor(async () => (await active(f.url)).length === 0, `${f.url} to release the long request`);

    // NATS away: requests are still served, /health and /metrics show the outage, and both
    // frontends route the workers approximately: the exact blocks go (the caches move on
    // unseen), and each predicts from its own decisions, so a prompt repeated on A follows
    // its first copy to the worker that holds it.
    await nats.stop();
    for (const f of [a, b]) await waitFor(async () => (await health(f.url)).eventPlane?.connected === false, `${f.url} to notice NATS is gone`);
    for (const f of [a, b]) {
      const h = await health(f.url);
      expect(h.status).toBe('degraded');
      expect(h.discovery.connected).toBe(true);
      expect(h.eventPlane).toMatchObject({ connected: false, routing: 'approximate' });
      expect(h.workers.map((w) => w.routing)).toEqual(['approximate', 'approximate']);
      expect(await metric(f.url, 'kvgate_event_plane_connected')).toBe(0);
      expect(await metric(f.url, 'kvgate_event_plane_outages_total')).toBe(1);
      await waitFor(() => f.stderr().includes('event plane down: routing 2 worker(s) approximately'), `${f.url} to log the approximate routing`);
    }
    expect(await cached(b.url)).toEqual([]);
    const decided = async () => metricByWorker(a.url, 'kvgate_router_decisions_total');
    const before = await decided();
    const other = 'A different prompt about something else entirely, so new blocks are stored. ';
    const third = await chat(a.url, other, 12);
    expect(third.usage!.completion_tokens).toBeGreaterThan(0);
    const [[predicted]] = (await cached(a.url)) as [[string, number]];
    const repeat = await chat(a.url, other, 12);
    expect(repeat.usage!.prompt_tokens_details?.cached_tokens).toBeGreaterThanOrEqual(64);
    const after = await decided();
    expect((after.get(predicted) ?? 0) - (before.get(predicted) ?? 0)).toBe(2);
    // What A predicts now: the second prompt only (the first one's blocks went with the events).
    const blocks = total(await cached(a.url));

    // NATS back: both frontends route on events again and ask every worker for a rebuild, so
    // both end up with every block of both prompts (more than A predicted), and the same view.
    await nats.start();
    for (const f of [a, b]) await waitFor(async () => (await health(f.url)).eventPlane?.routing === 'exact', `${f.url} to route exactly again`, 30_000);
    // One probe stores new blocks while events flow; then the views settle (sampled until equal).
    await chat(b.url, 'A probe after the restart that stores blocks and so sends events. ', 8);
    await waitFor(async () => total(await cached(a.url)) > blocks && (await same(a.url, b.url)), 'both frontends to catch up after the NATS restart', 60_000);
    for (const f of [a, b]) {
      const h = await health(f.url);
      expect(h.status).toBe('healthy');
      expect(h.eventPlane).toMatchObject({ connected: true, routing: 'exact' });
      expect(await metric(f.url, 'kvgate_event_plane_connected')).toBe(1);
      expect(f.stderr()).toContain('event plane back: routing 2 worker(s) on their KV events again');
    }
    const fourth = await chat(b.url, 'A different prompt about something else entirely, so new blocks are stored. ', 12);
    expect(fourth.usage!.prompt_tokens_details?.cached_tokens).toBeGreaterThanOrEqual(64);
    for (const p of [w1, w2, a, b]) expect(p.proc.exitCode).toBeNull();
  });
});
