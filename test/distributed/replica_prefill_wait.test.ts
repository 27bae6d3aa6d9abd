// The wait for a shared prefill across frontend replicas: two frontends (etcd discovery, NATS
// event plane and replica sync) in front of one slowed-down mocker worker. Frontend A sends a
// long request (the worker is busy) and then the first prompt of a group, which the engine
// queues; frontend B learns both from A's routing events, so the rest of the group, sent to B,
// waits until the worker's KV events store A's prefix and finds it cached, instead of being
// prefilled in the same batch as A's (each computing the prefix).

import { afterAll, describe, expect, it } from 'vitest';
import { chat, groups, metric, metricsText } from '../e2e/prefill_wait_fixtures.js';
import { waitFor } from '../e2e/stack.js';
import { EtcdServer } from './etcd_server.js';
import { NatsServer } from './nats_server.js';
import { killAll, names, startFrontend, startWorker } from './processes.js';

let etcd: EtcdServer | null = null;
let nats: NatsServer | null = null;
afterAll(async () => {
  await killAll();
  await nats?.stop();
  await etcd?.destroy();
});

const sum = async (url: string, name: string) => metric(await metricsText(url), name);

const GAUGES = ['kvgate_router_worker_active_requests', 'kvgate_router_kv_prefilling_requests', 'kvgate_router_kv_prefill_waiting_requests', 'kvgate_frontend_inflight_requests'];

describe('two frontends, one worker: the wait for a shared prefill sees the other frontend\'s prompts', () => {
  it('holds the prompts sent to B until the prefix A queued is stored: they find it cached', { timeout: 120_000 }, async () => {
    etcd = await EtcdServer.start();
    nats = await NatsServer.start();
    const flags = ['--discovery', etcd.url, '--event-plane', nats.url];
    const w = await startWorker(flags, undefined, 0.25);
    const [a, b] = await Promise.all([startFrontend(flags), startFrontend(flags)]);
    for (const f of [a, b]) await waitFor(async () => JSON.stringify(await names(f.url)) === JSON.stringify([w.url]), `${f.url} to see the worker`);

    const [group, other] = groups(41, 2, 6, 1500);
    // A long answer keeps the worker busy; B counts it too (replica sync).
    const running = chat(a.url, other![0]!.messages, 200);
    await waitFor(async () => (await sum(b.url, 'kvgate_router_worker_active_requests')) >= 1, 'B to see A\'s busy request');
    // A's first prompt of the group is queued behind it.
    const first = chat(a.url, group![0]!.messages, 2);
    await waitFor(async () => (await sum(b.url, 'kvgate_router_worker_active_requests')) >= 2, 'B to see A\'s queued prompt');
    const rest = await Promise.all(group!.slice(1).map((r) => chat(b.url, r.messages, 2)));
    expect((await first).status).toBe(200);
    expect((await running).status).toBe(200);
    expect(rest.every((r) => r.status === 200)).toBe(true);
    // A computed the system prompt; B's five waited and found it stored (without the wait the
    // engine prefills all six in one batch: nothing cached).
    expect((await first).cached).toBe(0);
    expect(rest.map((r) => r.cached).every((c) => c > 300)).toBe(true);
    expect(await sum(b.url, 'kvgate_router_kv_prefill_waits_total')).toBe(5);
    for (const f of [a, b]) await waitFor(async () => (await Promise.all(GAUGES.map((g) => sum(f.url, g)))).every((v) => v === 0), `${f.url}'s gauges to return to 0`);
  });
});
