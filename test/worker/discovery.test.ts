// The discovery seam: workers appear and disappear with their address and model card.
// Embedded: registered in-process. Static: learnt over each URL's request-plane connection.
import { afterEach, describe, expect, it } from 'vitest';
import { EmbeddedDiscovery } from '../../src/discovery/embedded.js';
import { StaticDiscovery } from '../../src/discovery/static.js';
import { instanceIdHex, type DiscoveryEvent, type WorkerRecord } from '../../src/discovery/discovery.js';
import { PROTOCOL_VERSION } from '../../src/transport/frames.js';
import { RequestPlaneServer } from '../../src/transport/request_plane_server.js';
import { freePort } from '../../src/worker/ports.js';
import { card } from '../transport/card.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const waitFor = async (cond: () => boolean, what: string, ms = 15_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

async function worker(port: number, instanceId: bigint, model = 'test-model') {
  const server = new RequestPlaneServer({
    host: '127.0.0.1',
    port,
    hello: () => ({ type: 'hello', protocolVersion: PROTOCOL_VERSION, instanceId, card: { ...card, servedModelName: model } }),
  });
  await server.listen();
  cleanups.push(() => server.close());
  return server;
}

const summary = (events: DiscoveryEvent[]) => events.map((e) => `${e.type} ${e.worker.instanceId} ${e.worker.card.servedModelName}`);

describe('embedded discovery', () => {
  it('announces registrations to current and later watchers, updates and withdrawals', () => {
    const d = new EmbeddedDiscovery();
    const rec = (id: string, model: string): WorkerRecord => ({ instanceId: id, url: `ws://127.0.0.1/${id}`, card: { ...card, servedModelName: model } });
    const early: DiscoveryEvent[] = [];
    d.watch((e) => early.push(e));
    const a = d.register(rec('a', 'm1'));
    d.register(rec('b', 'm1'));
    const late: DiscoveryEvent[] = [];
    const stop = d.watch((e) => late.push(e));
    a.update(rec('a', 'm2'));
    stop();
    a.unregister();
    expect(summary(early)).toEqual(['added a m1', 'added b m1', 'removed a m1', 'added a m2', 'removed a m2']);
    expect(summary(late)).toEqual(['added a m1', 'added b m1', 'removed a m1', 'added a m2']);
    expect(d.list().map((w) => w.instanceId)).toEqual(['b']);
  });
});

describe('static discovery', () => {
  it('adds workers when they answer, removes them when they go, and re-adds a restarted one', async () => {
    const portA = await freePort();
    const portB = await freePort();
    await worker(portA, 1n, 'model-a');
    const d = new StaticDiscovery([`ws://127.0.0.1:${portA}`, `ws://127.0.0.1:${portB}`]);
    cleanups.push(() => d.close());
    const events: DiscoveryEvent[] = [];
    d.watch((e) => events.push(e));
    await waitFor(() => events.length === 1, 'worker A');
    expect(events[0]).toMatchObject({ type: 'added', worker: { instanceId: instanceIdHex(1n), url: `ws://127.0.0.1:${portA}` } });
    expect(d.client(instanceIdHex(1n))?.connected).toBe(true);

    // B comes up later: the reconnect loop finds it.
    const b = await worker(portB, 2n, 'model-b');
    await waitFor(() => events.length === 2, 'worker B');
    expect(summary(events)[1]).toBe(`added ${instanceIdHex(2n)} model-b`);

    // B goes away, then a new agent (new instance id) takes its address.
    await b.close();
    await waitFor(() => events.length === 3, 'B removed');
    expect(summary(events)[2]).toBe(`removed ${instanceIdHex(2n)} model-b`);
    expect(d.client(instanceIdHex(2n))).toBeUndefined();
    await worker(portB, 3n, 'model-b');
    await waitFor(() => events.length === 4, 'B restarted');
    expect(summary(events)[3]).toBe(`added ${instanceIdHex(3n)} model-b`);
    expect(d.list().map((w) => w.instanceId).sort()).toEqual([instanceIdHex(1n), instanceIdHex(3n)]);
  });
});
