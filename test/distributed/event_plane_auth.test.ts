// The cluster token on the event plane, with real processes: a real nats-server, one mocker
// worker and one frontend, both with KVGATE_CLUSTER_TOKEN and --event-plane. The worker's
// tagged frames are applied (its blocks reach the index); frames a stray publisher puts on the
// worker's subject or the routing subject without the token's key are dropped and counted
// (kvgate_event_plane_frames_rejected_total); the same frame tagged with the right key is
// applied (an out-of-sequence batch: the frontend counts a gap and resyncs the worker).

import { connect } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { EventAuth } from '../../src/security/event_auth.js';
import { encodeFrame } from '../../src/transport/frames.js';
import { EVENTS_SUBJECT_PREFIX } from '../../src/transport/nats_event_plane.js';
import { ROUTING_SUBJECT } from '../../src/transport/router_sync.js';
import { metricByWorker, waitFor } from '../e2e/stack.js';
import { NatsServer } from './nats_server.js';
import { chat, health, killAll, startFrontend, startWorker } from './processes.js';

const TOKEN = 'event-plane-test-token';
let nats: NatsServer | null = null;
afterAll(async () => {
  await killAll();
  await nats?.stop();
});

const rejected = async (url: string, kind: string) =>
  Number(new RegExp(`^kvgate_event_plane_frames_rejected_total\\{kind="${kind}"\\} (\\S+)$`, 'm').exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? 0);

describe('event plane: frames carry the cluster token', () => {
  it('drops and counts frames tagged with the wrong key, applies the right ones', { timeout: 120_000 }, async () => {
    nats = await NatsServer.start();
    const env = { KVGATE_CLUSTER_TOKEN: TOKEN };
    const w = await startWorker(['--event-plane', nats.url], env);
    const f = await startFrontend(['--worker-urls', w.url, '--event-plane', nats.url], env);
    await waitFor(async () => (await health(f.url)).status === 'healthy', 'the frontend to route on the worker');
    // The worker's own (tagged) frames are applied: its blocks reach the index over NATS.
    await chat(f.url, 'Warm the cache with a prompt about tagged frames. ', 8);
    await waitFor(async () => ((await metricByWorker(f.url, 'kvgate_router_worker_cached_blocks')).get(w.url) ?? 0) > 0, 'the worker to hold blocks in the index');
    expect(await rejected(f.url, 'events')).toBe(0);

    const nc = await connect({ servers: nats.url.slice('nats://'.length) });
    const subject = await new Promise<string>((resolve) => {
      const sub = nc.subscribe(`${EVENTS_SUBJECT_PREFIX}*`, { callback: (_e, msg) => (sub.unsubscribe(), resolve(msg.subject)) });
    });
    const instanceId = BigInt(`0x${subject.slice(EVENTS_SUBJECT_PREFIX.length)}`);
    // A batch far ahead of the worker's sequence: applied, it is a gap (counted, then a resync).
    const forged = encodeFrame({ type: 'kv_batch', instanceId, dpRank: 0, seq: 1_000_000n, engineSeq: 1_000_000n, snapshot: false, payload: new Uint8Array(0) });
    const gaps = async () => (await metricByWorker(f.url, 'kvgate_router_kv_gaps_total')).get(w.url) ?? 0;
    const gapsBefore = await gaps();

    nc.publish(subject, new EventAuth('not-the-token').seal(subject, forged));
    nc.publish(subject, forged); // untagged
    nc.publish(ROUTING_SUBJECT, new EventAuth('not-the-token').seal(ROUTING_SUBJECT, new Uint8Array(64)));
    await nc.flush();
    await waitFor(async () => (await rejected(f.url, 'events')) === 2 && (await rejected(f.url, 'routing')) === 1, 'the forged frames to be counted');
    expect(await gaps()).toBe(gapsBefore);
    expect(f.stderr()).toContain(`nats: a frame on ${subject} failed the cluster-token check and was dropped`);
    expect((await health(f.url)).workers[0]!.routing).toBeUndefined();

    // The same frame with the right key is applied.
    nc.publish(subject, new EventAuth(TOKEN).seal(subject, forged));
    await nc.flush();
    await waitFor(async () => (await gaps()) === gapsBefore + 1, 'the tagged frame to be applied (a gap)');
    expect(await rejected(f.url, 'events')).toBe(2);
    await waitFor(async () => (await health(f.url)).status === 'healthy', 'the worker to be resynced');
    await nc.close();
    for (const p of [w, f]) expect(p.proc.exitCode).toBeNull();
  });
});
