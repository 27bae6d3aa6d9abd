// A worker whose own link to NATS goes down while the frontend's stays up: two clustered
// nats-servers (Debian nats-server, routes between them, no failover advertised to clients),
// worker 1 on server B, worker 2 and the frontend on server A. With B stopped, worker 1's frames
// stop reaching the frontend: after --event-plane-stale-after it routes worker 1 approximately
// (its exact blocks go) and worker 2 on its events as before; with B back, worker 1's frames
// flow again and it is routed on a rebuilt index.

import { afterAll, describe, expect, it } from 'vitest';

import { metricByWorker, waitFor } from '../e2e/stack.js';
import { EtcdServer } from './etcd_server.js';
import { NatsServer } from './nats_server.js';
import { restartablePort } from './server_process.js';
import { chat, health, killAll, names, startFrontend, startWorker } from './processes.js';

let etcd: EtcdServer | null = null;
const nats: NatsServer[] = [];
afterAll(async () => {
  await killAll();
  for (const n of nats) await n.stop();
  await etcd?.destroy();
});

const cached = async (url: string) => metricByWorker(url, 'kvgate_router_worker_cached_blocks');

describe('event plane: one worker loses its own NATS link', () => {
  it('is routed approximately while its frames are missing, exactly again when they return', { timeout: 180_000 }, async () => {
    etcd = await EtcdServer.start();
    const [ca, cb] = [await restartablePort(), await restartablePort()]; // B restarts on its route port too
    const cluster = (own: number, other: number) => ['--cluster', `nats://127.0.0.1:${own}`, '--cluster_name', 'kvgate', '--routes', `nats://127.0.0.1:${other}`, '--no_advertise'];
    const a = await NatsServer.start(cluster(ca, cb));
    const b = await NatsServer.start(cluster(cb, ca));
    nats.push(a, b);
    const w1 = await startWorker(['--discovery', etcd.url, '--event-plane', b.url]);
    const w2 = await startWorker(['--discovery', etcd.url, '--event-plane', a.url]);
    const f = await startFrontend(['--discovery', etcd.url, '--event-plane', a.url, '--event-plane-stale-after', '6']);
    await waitFor(async () => (await names(f.url)).length === 2 && (await health(f.url)).status === 'healthy', 'the frontend to see both workers');

    // Warm both workers (over the route between the servers for worker 1), until each holds blocks.
    for (let i = 0; !((await cached(f.url)).get(w1.url)! > 0 && (await cached(f.url)).get(w2.url)! > 0); i++) {
      if (i > 20) throw new Error(`both workers not warmed: ${JSON.stringify([...(await cached(f.url)).entries()])}`);
      await chat(f.url, `Prompt number ${i} about a distinct topic. `, 8);
      await new Promise((r) => setTimeout(r, 300));
    }

    // Server B goes: worker 1's frames stop, the frontend's own link (A) stays up.
    await b.stop();
    await waitFor(() => f.stderr().includes(`worker ${w1.url}: no events over the event plane for`), 'the frontend to route worker 1 approximately', 20_000);
    const log = () => f.stderr().split('\n').filter((l) => /event plane|no events|arrive again|nats/.test(l)).join('\n');
    expect(f.stderr(), log()).not.toContain(`worker ${w2.url}: no events`);
    const h = await health(f.url);
    expect(h.status).toBe('degraded');
    expect(h.eventPlane).toMatchObject({ connected: true, routing: 'exact' });
    expect(h.workers.find((w) => w.name === w1.url)).toMatchObject({ healthy: true, routing: 'approximate' });
    expect(h.workers.find((w) => w.name === w2.url)!.routing).toBeUndefined();
    const lines = f.stderr().split('\n').filter((l) => /event plane|no events|arrive again/.test(l)).join('\n');
    expect((await cached(f.url)).get(w1.url) ?? 0, lines).toBe(0);
    expect((await cached(f.url)).get(w2.url)).toBeGreaterThan(0);
    // Still served, on both workers.
    expect((await chat(f.url, 'Served while one link is down. ', 8)).usage!.completion_tokens).toBeGreaterThan(0);

    // B back: worker 1 reconnects, its frames come again, and it is rebuilt exactly.
    await b.start();
    await waitFor(() => f.stderr().includes(`worker ${w1.url}: its events arrive again over the event plane`), 'worker 1 to be routed on its events again', 30_000);
    await waitFor(async () => ((await cached(f.url)).get(w1.url) ?? 0) > 0, "worker 1's blocks to be rebuilt in the index", 30_000);
    await waitFor(async () => (await health(f.url)).status === 'healthy', 'the frontend to be healthy again');
    expect((await health(f.url)).workers.every((w) => w.routing === undefined)).toBe(true);
    for (const p of [w1, w2, f]) expect(p.proc.exitCode).toBeNull();
  });
});
