// A sequence gap in a worker's KV-event batches on NATS, with real processes: a real
// nats-server, one mocker worker and one frontend (--event-plane). The test publishes a batch
// far ahead of the worker's sequence on the worker's subject: the frontend asks the worker for
// a resync and routes it approximately until the resync's reset comes (/health shows it). The
// worker is held with SIGSTOP meanwhile, so the approximate window stays open for the checks;
// once it runs again it rebuilds the rank and the frontend routes it on its events again.

import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { EVENTS_SUBJECT_PREFIX } from '../../src/transport/nats_event_plane.js';
import { encodeFrame } from '../../src/transport/frames.js';
import { metricByWorker, waitFor } from '../e2e/stack.js';
import { NatsServer } from './nats_server.js';
import { chat, health, killAll, startFrontend, startWorker, type Proc } from './processes.js';

let nats: NatsServer | null = null;
let stopped: Proc | null = null;
afterAll(async () => {
  stopped?.proc.kill('SIGCONT');
  await killAll();
  await nats?.stop();
});

const cached = async (f: string, w: string) => (await metricByWorker(f, 'kvgate_router_worker_cached_blocks')).get(w) ?? 0;
const routing = async (f: string, w: string) => (await health(f)).workers.find((x) => x.name === w)?.routing;

describe('event plane: a sequence gap', () => {
  it('routes the worker approximately until its resync rebuilds the rank, then exactly again', { timeout: 120_000 }, async () => {
    nats = await NatsServer.start();
    const w = await startWorker(['--event-plane', nats.url]);
    const f = await startFrontend(['--worker-urls', w.url, '--event-plane', nats.url]);
    await waitFor(async () => (await health(f.url)).status === 'healthy', 'the frontend to route on the worker');
    await chat(f.url, 'Warm the cache with a prompt about sequence gaps. ', 8);
    await waitFor(async () => (await cached(f.url, w.url)) > 0, 'the worker to hold blocks in the index');
    expect(await routing(f.url, w.url)).toBeUndefined();

    // The worker's subject, from its own frames (load reports come every 0.2 s).
    const nc = await connect({ servers: nats.url.slice('nats://'.length) });
    const subject = await new Promise<string>((resolve) => {
      const sub = nc.subscribe(`${EVENTS_SUBJECT_PREFIX}*`, { callback: (_e, msg) => (sub.unsubscribe(), resolve(msg.subject)) });
    });
    const instanceId = BigInt(`0x${subject.slice(EVENTS_SUBJECT_PREFIX.length)}`);

    // (A frontend that joins after the worker's first batches sees a gap too, at its start.)
    const gapsBefore = (await metricByWorker(f.url, 'kvgate_router_kv_gaps_total')).get(w.url) ?? 0;
    // Held, the worker cannot answer the resync: the frontend stays approximate for it.
    w.proc.kill('SIGSTOP');
    stopped = w;
    nc.publish(subject, encodeFrame({ type: 'kv_batch', instanceId, dpRank: 0, seq: 1_000_000n, engineSeq: 1_000_000n, snapshot: false, payload: new Uint8Array(0) }));
    await nc.flush();
    await waitFor(async () => (await routing(f.url, w.url)) === 'approximate', 'the frontend to route the worker approximately after the gap', 10_000);
    expect(f.stderr()).toContain(`worker ${w.url} rank 0: KV-event gap; routing it approximately until its resync rebuilds the rank`);
    expect((await metricByWorker(f.url, 'kvgate_router_kv_gaps_total')).get(w.url)).toBe(gapsBefore + 1);
    expect(await cached(f.url, w.url)).toBe(0); // its exact blocks are gone; predicted ones are not counted
    expect((await health(f.url)).status).toBe('degraded');
    await new Promise((r) => setTimeout(r, 1500));
    expect(await routing(f.url, w.url)).toBe('approximate');

    // Running again: the resync's reset and rebuild arrive, and it is routed exactly.
    w.proc.kill('SIGCONT');
    stopped = null;
    await waitFor(() => f.stderr().includes(`worker ${w.url} rank 0: resync after the KV-event gap arrived; routing it on its events again`), 'the resync to arrive', 20_000);
    await waitFor(async () => (await routing(f.url, w.url)) === undefined && (await cached(f.url, w.url)) > 0, 'the worker to be routed on its rebuilt blocks', 20_000);
    expect((await health(f.url)).status).toBe('healthy');
    expect((await chat(f.url, 'Served after the gap. ', 8)).usage!.completion_tokens).toBeGreaterThan(0);
    await nc.close();
    for (const p of [w, f]) expect(p.proc.exitCode).toBeNull();
  });
});
