// The event plane: an SGLang-like publisher on real ZMQ sockets -> the worker's relay ->
// the request-plane WebSocket -> frontends, which must always end with the engine's state.
import { afterEach, describe, expect, it } from 'vitest';
import { decode } from '@msgpack/msgpack';
import { FrontendView } from './frontend_view.js';
import { PROTOCOL_VERSION, type Frame } from '../../src/transport/frames.js';
import { KvRelay } from '../../src/transport/kv_relay.js';
import { RequestPlaneClient } from '../../src/transport/request_plane_client.js';
import { RequestPlaneServer, type RequestPlaneServerOptions } from '../../src/transport/request_plane_server.js';
import { freePort } from '../../src/worker/ports.js';
import { TestKvPublisher, workload } from './sglang_publisher.js';
import { card } from './card.js';

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

async function startWorker(pubs: TestKvPublisher[], extra: Partial<RequestPlaneServerOptions> = {}) {
  const relay = new KvRelay({ instanceId: 7n, replayTimeoutMs: 2000, tailCheckMs: 200 });
  const server = new RequestPlaneServer({
    host: '127.0.0.1',
    port: 0,
    hello: () => ({ type: 'hello', protocolVersion: PROTOCOL_VERSION, instanceId: 7n, card: { ...card, dpSize: pubs.length } }),
    onConnect: (p) => relay.addPeer(p),
    onDisconnect: (p) => relay.removePeer(p),
    onResync: (p, r) => relay.resync(p, r),
    onDrain: (p) => relay.drained(p),
    ...extra,
  });
  await server.listen();
  await relay.attach(pubs.map((p, dpRank) => ({ dpRank, endpoint: p.endpoint, replayEndpoint: p.replayEndpoint, topic: 'kv' })));
  cleanups.push(async () => {
    relay.close();
    await server.close();
  });
  return { server, relay };
}

// Publishes empty batches until the worker receives one live, so that the SUB is past
// ZMQ's slow-joiner window (earlier batches are recovered by replay, which some tests
// want to tell apart). Returns the number of batches published.
async function untilLive(pub: TestKvPublisher, relay: KvRelay, dpRank = 0): Promise<number> {
  const end = Date.now() + 10_000;
  let n = 0;
  while ((relay.stats().get(dpRank)?.live ?? 0) === 0) {
    if (Date.now() > end) throw new Error('the worker never received a live batch');
    await pub.publish([]);
    n++;
    await new Promise((r) => setTimeout(r, 20));
  }
  return n;
}

async function startPublisher(opts: ConstructorParameters<typeof TestKvPublisher>[0] = {}) {
  const pub = await new TestKvPublisher(opts).start();
  cleanups.push(() => pub.close());
  return pub;
}

async function frontend(url: string, ranks = 1) {
  const client = new RequestPlaneClient({ url });
  const views = Array.from({ length: ranks }, () => new FrontendView());
  client.onKvEvent((ev) => views[ev.dpRank]!.apply(ev));
  cleanups.push(() => client.close());
  await client.connect();
  return { client, views };
}

describe('KV event relay', () => {
  it('relays batches byte for byte, in order, to a frontend connected from the start', async () => {
    const pub = await startPublisher();
    const { server } = await startWorker([pub]);
    const { views } = await frontend(server.url);
    const [view] = views;
    const gen = workload(1);
    for (let i = 0; i < 200; i++) await pub.publish(gen.next().value as never);
    await waitFor(() => view!.batches.length === 200, '200 batches');
    expect(view!.resets).toEqual(['join']);
    view!.batches.forEach((b, i) => {
      expect(b.seq).toBe(BigInt(i));
      expect(b.engineSeq).toBe(BigInt(i));
      expect(b.snapshot).toBe(false);
      expect(Buffer.from(b.payload).equals(pub.payloadOf(BigInt(i))!)).toBe(true);
    });
    expect(view!.equals(pub.truth)).toBe(true);
  });

  it('recovers batches the subscriber never received through the replay socket', async () => {
    const pub = await startPublisher();
    const { server, relay } = await startWorker([pub]);
    const { views } = await frontend(server.url);
    const warm = await untilLive(pub, relay);
    const gen = workload(2);
    for (let i = 0; i < 300; i++) await pub.publish(gen.next().value as never, { drop: i % 7 === 3 || (i > 100 && i < 120) });
    const total = warm + 300;
    await waitFor(() => views[0]!.batches.length === total, 'all batches');
    views[0]!.batches.forEach((b, i) => {
      expect(b.engineSeq).toBe(BigInt(i));
      expect(Buffer.from(b.payload).equals(pub.payloadOf(BigInt(i))!)).toBe(true);
    });
    expect(views[0]!.resets).toEqual(['join']);
    expect(views[0]!.equals(pub.truth)).toBe(true);
    const stats = relay.stats().get(0)!;
    expect(stats.gaps).toBeGreaterThan(0);
    expect(stats.replayed).toBeGreaterThanOrEqual(43 + 19 - 1);
    expect(stats.lost).toBe(0);
  });

  it('a reply missing inside a replay is asked for again, not taken for lost history', async () => {
    const pub = await startPublisher();
    const { server, relay } = await startWorker([pub]);
    const { views } = await frontend(server.url);
    const warm = await untilLive(pub, relay);
    const gen = workload(10);
    const first = BigInt(warm);
    for (const seq of [first + 12n, first + 15n]) pub.dropInReplay.add(seq);
    for (let i = 0; i < 40; i++) await pub.publish(gen.next().value as never, { drop: i >= 10 && i < 20 });
    const total = warm + 40;
    await waitFor(() => views[0]!.batches.length === total, 'all batches');
    expect(views[0]!.batches.every((b, i) => b.engineSeq === BigInt(i))).toBe(true);
    expect(views[0]!.resets).toEqual(['join']);
    expect(relay.stats().get(0)!.lost).toBe(0);
    expect(pub.dropInReplay.size).toBe(0);
    expect(views[0]!.equals(pub.truth)).toBe(true);
  });

  it('a dropped last batch arrives without waiting for the next one', async () => {
    const pub = await startPublisher();
    const { server } = await startWorker([pub]);
    const { views } = await frontend(server.url);
    const gen = workload(3);
    for (let i = 0; i < 10; i++) await pub.publish(gen.next().value as never, { drop: i === 9 });
    await waitFor(() => views[0]!.batches.length === 10, 'the dropped last batch');
    expect(views[0]!.equals(pub.truth)).toBe(true);
  });

  it('a late frontend gets the engine batches from seq 0 while the replay buffer covers them', async () => {
    const pub = await startPublisher({ bufferSteps: 1000 });
    const { server } = await startWorker([pub]);
    const gen = workload(4);
    for (let i = 0; i < 150; i++) await pub.publish(gen.next().value as never);
    await new Promise((r) => setTimeout(r, 300));
    const { views } = await frontend(server.url);
    for (let i = 0; i < 50; i++) await pub.publish(gen.next().value as never);
    await waitFor(() => views[0]!.batches.length === 200, '200 batches');
    expect(views[0]!.resets).toEqual(['join']);
    expect(views[0]!.batches.every((b, i) => !b.snapshot && b.seq === BigInt(i) && b.engineSeq === BigInt(i))).toBe(true);
    expect(views[0]!.equals(pub.truth)).toBe(true);
  });

  it('a late frontend gets a snapshot when the replay buffer no longer reaches seq 0, then live batches', async () => {
    const pub = await startPublisher({ bufferSteps: 20 });
    const { server, relay } = await startWorker([pub]);
    const gen = workload(5);
    for (let i = 0; i < 400; i++) await pub.publish(gen.next().value as never);
    await waitFor(() => relay.tableSizes().get(0) === pub.truth.size, 'worker table caught up');
    const { views } = await frontend(server.url);
    await waitFor(() => views[0]!.equals(pub.truth), 'snapshot state');
    expect(views[0]!.resets).toEqual(['join']);
    expect(views[0]!.batches.length).toBeGreaterThan(0);
    expect(views[0]!.batches.every((b) => b.snapshot)).toBe(true);
    for (let i = 0; i < 100; i++) await pub.publish(gen.next().value as never);
    await waitFor(() => views[0]!.batches.some((b) => !b.snapshot && b.engineSeq === 499n), 'live batches after the snapshot');
    expect(views[0]!.equals(pub.truth)).toBe(true);
    // Frame numbering is continuous across snapshot and live batches.
    expect(views[0]!.batches.every((b, i) => b.seq === BigInt(i))).toBe(true);
  });

  it('a gap the replay buffer cannot fill resets frontends instead of leaving them stale', async () => {
    const pub = await startPublisher({ bufferSteps: 5 });
    const { server, relay } = await startWorker([pub]);
    const { views } = await frontend(server.url);
    await untilLive(pub, relay);
    const view = views[0]!;
    await pub.publish([{ type: 'stored', hash: 1n, parent: null, tokens: [1, 2, 3, 4] }]);
    await pub.publish([{ type: 'stored', hash: 2n, parent: 1n, tokens: [5, 6, 7, 8] }]);
    await waitFor(() => view.blocks.size === 2, 'first blocks');
    // 30 batches the subscriber never sees, more than the engine keeps: block 1 is evicted in there.
    await pub.publish([{ type: 'removed', hashes: [2n, 1n] }], { drop: true });
    for (let i = 0; i < 29; i++) await pub.publish([{ type: 'stored', hash: 100n + BigInt(i), parent: null, tokens: [i, i, i, i] }], { drop: true });
    await pub.publish([{ type: 'stored', hash: 999n, parent: null, tokens: [9, 9, 9, 9] }]);
    await waitFor(() => view.blocks.has(999n), 'live batch after the loss');
    expect(view.resets).toEqual(['join', 'history_lost']);
    expect(relay.stats().get(0)!.lost).toBe(1);
    // Nothing stale: blocks 1 and 2 are gone; what it still holds the engine holds too.
    expect(view.blocks.has(1n) || view.blocks.has(2n)).toBe(false);
    for (const h of view.blocks) expect(pub.truth.has(h)).toBe(true);
  });

  it('binds the SUB for engines that connect, and reads tagged-map events and topic-framed replays', async () => {
    // The worker binds a free port; the engine's PUB connects to it.
    const endpoint = `tcp://127.0.0.1:${await freePort()}`;
    const pub = await startPublisher({ connectTo: endpoint, wire: 'map', bufferSteps: 120 });
    const relay = new KvRelay({ instanceId: 9n, replayTimeoutMs: 2000, tailCheckMs: 200 });
    cleanups.push(() => relay.close());
    await relay.attach([{ dpRank: 0, endpoint, bind: true, replayEndpoint: pub.replayEndpoint, topic: 'kv' }]);
    await untilLive(pub, relay);
    const gen = workload(9);
    for (let i = 0; i < 200; i++) {
      await pub.publish(gen.next().value as never, { drop: i % 5 === 0 });
      // Paced, so that replays keep up with the small buffer.
      if (i % 10 === 9) await new Promise((r) => setTimeout(r, 5));
    }
    await waitFor(() => relay.tableSizes().get(0) === pub.truth.size && relay.stats().get(0)!.replayed > 0, 'table caught up');
    expect(relay.stats().get(0)!.lost).toBe(0);
    // A frontend joining now gets a snapshot (the buffer no longer reaches seq 0) in the positional form.
    const server = new RequestPlaneServer({
      host: '127.0.0.1',
      port: 0,
      hello: () => ({ type: 'hello', protocolVersion: PROTOCOL_VERSION, instanceId: 9n, card }),
      onConnect: (p) => relay.addPeer(p),
      onDisconnect: (p) => relay.removePeer(p),
    });
    await server.listen();
    cleanups.push(() => server.close());
    const { views } = await frontend(server.url);
    await waitFor(() => views[0]!.equals(pub.truth), 'snapshot state');
    const first = decode(views[0]!.batches[0]!.payload, { useBigInt64: true }) as [number, unknown[][]];
    expect(first[1][0]![0]).toBe('BlockStored');
  });

  it('rebuilds a rank when the frontend asks (resync)', async () => {
    const pub = await startPublisher({ bufferSteps: 1000 });
    const { server } = await startWorker([pub]);
    const { client, views } = await frontend(server.url);
    const gen = workload(6);
    for (let i = 0; i < 100; i++) await pub.publish(gen.next().value as never);
    await waitFor(() => views[0]!.equals(pub.truth) && views[0]!.batches.length === 100, 'live state');
    client.requestResync(0);
    await waitFor(() => views[0]!.resets.length === 2, 'the resync reset');
    expect(views[0]!.resets[1]).toBe('resync');
    await waitFor(() => views[0]!.equals(pub.truth), 'rebuilt state');
  });

  it('keeps dp ranks apart: one publisher per rank, one sequence per rank', async () => {
    const pubs = [await startPublisher({ dpRank: 0 }), await startPublisher({ dpRank: 1 })];
    const { server } = await startWorker(pubs);
    const { views } = await frontend(server.url, 2);
    const g0 = workload(7);
    const g1 = workload(8);
    for (let i = 0; i < 60; i++) {
      await pubs[0]!.publish(g0.next().value as never);
      if (i % 2) await pubs[1]!.publish(g1.next().value as never);
    }
    await waitFor(() => views[0]!.batches.length === 60 && views[1]!.batches.length === 30, 'both ranks');
    expect(views[0]!.equals(pubs[0]!.truth) && views[1]!.equals(pubs[1]!.truth)).toBe(true);
    expect(views[1]!.batches.map((b) => b.seq)).toEqual(Array.from({ length: 30 }, (_, i) => BigInt(i)));
  });

  it('a replaced engine resets every frontend (its cache is empty) and relays the new one', async () => {
    const pub = await startPublisher();
    const { server, relay } = await startWorker([pub]);
    const { views } = await frontend(server.url);
    await pub.publish([{ type: 'stored', hash: 5n, parent: null, tokens: [1, 2, 3, 4] }]);
    await waitFor(() => views[0]!.blocks.has(5n), 'first engine block');
    const next = await startPublisher();
    await relay.attach([{ dpRank: 0, endpoint: next.endpoint, replayEndpoint: next.replayEndpoint, topic: 'kv' }]);
    await waitFor(() => views[0]!.resets.length >= 2, 'restart reset');
    expect(views[0]!.resets.slice(1).every((r) => r === 'engine_restart')).toBe(true);
    expect(views[0]!.blocks.size).toBe(0);
    await next.publish([{ type: 'stored', hash: 6n, parent: null, tokens: [1, 2, 3, 4] }]);
    await waitFor(() => views[0]!.blocks.has(6n), 'the new engine block');
    expect(views[0]!.batches[0]!.seq).toBe(0n);
  });

  // The relay's side of a frontend that stops reading: a peer whose socket is congested is
  // sent nothing live (the request plane's high-water mark, tested with real sockets in
  // request_plane.test.ts), and once it drains it gets the rank rebuilt. The peer is scripted
  // so that congestion starts and ends exactly when the test says, however loaded the machine.
  it('a frontend that stops reading loses no state: dropped batches are rebuilt once it drains', async () => {
    const pub = await startPublisher({ bufferSteps: 8 });
    const relay = new KvRelay({ instanceId: 7n, replayTimeoutMs: 2000, tailCheckMs: 200 });
    await relay.attach([{ dpRank: 0, endpoint: pub.endpoint, replayEndpoint: pub.replayEndpoint, topic: 'kv' }]);
    cleanups.push(() => relay.close());
    const view = new FrontendView();
    let expectSeq = 0n;
    let seqErrors = 0;
    const receive = (f: Frame) => {
      if (f.type === 'kv_reset') {
        expectSeq = 0n;
        view.apply({ kind: 'reset', instanceId: f.instanceId, dpRank: f.dpRank, reason: f.reason });
      } else if (f.type === 'kv_batch') {
        if (f.seq !== expectSeq++) seqErrors++;
        view.apply({ kind: 'batch', ...f });
      }
    };
    const peer = {
      id: 1,
      closed: false,
      congested: false,
      refused: 0,
      send: (f: Frame) => receive(f),
      trySend(f: Frame): boolean {
        if (this.congested) {
          this.refused++;
          return false;
        }
        receive(f);
        return true;
      },
    };
    relay.addPeer(peer);
    await untilLive(pub, relay);
    const store = (i: number) => pub.publish([{ type: 'stored', hash: BigInt(i), parent: null, tokens: Array.from({ length: 16 }, (_, t) => i * 16 + t) }]);
    for (let i = 1; i <= 20; i++) await store(i);
    await waitFor(() => view.blocks.size === 20 && view.equals(pub.truth), 'live batches');

    // It stops reading: everything published now is dropped for it, more than the
    // engine's replay buffer holds (so the rebuild is a snapshot of the agent's table).
    peer.congested = true;
    const delivered = () => relay.stats().get(0)!.live + relay.stats().get(0)!.replayed;
    const before = delivered();
    for (let i = 21; i <= 60; i++) {
      await store(i);
      if (i % 3 === 0) await pub.publish([{ type: 'removed', hashes: [BigInt(i - 20)] }]);
    }
    await waitFor(() => delivered() >= before + 53, 'the relay got every batch');
    expect(peer.refused).toBeGreaterThan(0);
    expect(view.equals(pub.truth)).toBe(false);
    expect(view.resets).toEqual(['join']);

    // It drains: the rank is rebuilt, and live batches follow in sequence.
    peer.congested = false;
    relay.drained(peer);
    await waitFor(() => view.resets.includes('resync') && view.equals(pub.truth), 'rebuilt after draining');
    for (let i = 61; i <= 65; i++) await store(i);
    await waitFor(() => view.equals(pub.truth) && view.blocks.has(65n), 'live again');
    expect(seqErrors).toBe(0);
  });
});
