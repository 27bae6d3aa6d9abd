// The discovery seam on a real etcd (Debian etcd-server), in-process: a worker's
// registration (lease, update, revoke, re-registration after its lease is lost) and a
// frontend's view (list, then watch; foreign keys ignored).

import { Etcd3 } from 'etcd3';
import { afterEach, beforeAll, afterAll, describe, expect, it } from 'vitest';
import type { DiscoveryEvent, WorkerRecord } from '../../src/discovery/discovery.js';
import { ETCD_WORKERS_PREFIX, EtcdDiscovery, etcdEndpoints, EtcdRegistry } from '../../src/discovery/etcd.js';
import { waitFor } from '../e2e/stack.js';
import { card } from '../transport/card.js';
import { EtcdServer } from '../distributed/etcd_server.js';

let etcd: EtcdServer;
let raw: Etcd3;
const cleanups: (() => Promise<void> | void)[] = [];

beforeAll(async () => {
  etcd = await EtcdServer.start();
  raw = new Etcd3({ hosts: etcdEndpoints(etcd.url) });
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await raw.delete().prefix(ETCD_WORKERS_PREFIX);
});
afterAll(async () => {
  raw.close();
  await etcd.destroy();
});

const rec = (id: string, model = 'm1'): WorkerRecord => ({ instanceId: id, url: `ws://127.0.0.1:${1000 + id.length}`, card: { ...card, servedModelName: model } });
const summary = (events: DiscoveryEvent[]) => events.map((e) => `${e.type} ${e.worker.instanceId} ${e.worker.card.servedModelName}`);

function registry(): EtcdRegistry {
  const r = new EtcdRegistry({ url: etcd.url });
  cleanups.push(() => r.close());
  return r;
}
function discovery(): EtcdDiscovery {
  const d = new EtcdDiscovery({ url: etcd.url });
  cleanups.push(() => d.close());
  return d;
}

describe('etcd discovery', () => {
  it('lists what is registered, then follows registrations, updates and withdrawals', async () => {
    const reg = registry();
    const a = reg.register(rec('00000000000000aa'));
    await waitFor(() => reg.registered, 'the first registration');
    const d = discovery();
    await d.synced();
    const events: DiscoveryEvent[] = [];
    d.watch((e) => events.push(e));
    expect(summary(events)).toEqual(['added 00000000000000aa m1']);
    expect(d.health()).toMatchObject({ backend: 'etcd', connected: true, workers: 1 });

    const b = reg.register(rec('00000000000000bb'));
    await waitFor(() => events.length === 2, 'the second worker');
    a.update(rec('00000000000000aa', 'm2'));
    await waitFor(() => events.length === 4, 'the update');
    await b.unregister();
    await waitFor(() => events.length === 5, 'the withdrawal');
    expect(summary(events)).toEqual(['added 00000000000000aa m1', 'added 00000000000000bb m1', 'removed 00000000000000aa m1', 'added 00000000000000aa m2', 'removed 00000000000000bb m1']);
    // Each record lives under a lease of the worker's own: revoked above, kept alive here.
    const kv = await raw.get(`${ETCD_WORKERS_PREFIX}00000000000000aa`).exec();
    expect(Number(kv.kvs[0]!.lease)).toBeGreaterThan(0);
    expect(await raw.get(`${ETCD_WORKERS_PREFIX}00000000000000bb`).string()).toBeNull();
  });

  it('ignores keys under the prefix that are not worker records', async () => {
    await raw.put(`${ETCD_WORKERS_PREFIX}junk`).value('not json');
    await raw.put(`${ETCD_WORKERS_PREFIX}00000000000000cc`).value(JSON.stringify(rec('00000000000000dd')));
    await raw.put(`${ETCD_WORKERS_PREFIX}00000000000000ee`).value(JSON.stringify({ ...rec('00000000000000ee'), url: 'http://x' }));
    const d = discovery();
    await d.synced();
    const reg = registry();
    reg.register(rec('00000000000000ff'));
    await waitFor(() => d.list().length === 1, 'the real worker');
    await raw.put(`${ETCD_WORKERS_PREFIX}later`).value('{}');
    await raw.put(`${ETCD_WORKERS_PREFIX}00000000000000ab`).value(JSON.stringify(rec('00000000000000ab')));
    await waitFor(() => d.list().length === 2, 'the watched record');
    expect(d.list().map((w) => w.instanceId).sort()).toEqual(['00000000000000ab', '00000000000000ff']);
  });

  it('registers again under a new lease when its lease is lost', async () => {
    const reg = registry();
    reg.register(rec('0000000000000abc'));
    await waitFor(() => reg.registered, 'the registration');
    const key = `${ETCD_WORKERS_PREFIX}0000000000000abc`;
    const lease = (await raw.get(key).exec()).kvs[0]!.lease;
    await raw.leaseClient.leaseRevoke({ ID: lease });
    expect(await raw.get(key).string()).toBeNull();
    // The keep-alive (every TTL/3) learns the lease is gone; the record comes back under another.
    await waitFor(async () => (await raw.get(key).string()) !== null, 'the re-registration', 15_000);
    expect((await raw.get(key).exec()).kvs[0]!.lease).not.toBe(lease);
  });

  it('rejects a malformed --discovery URL', () => {
    for (const bad of ['http://127.0.0.1:2379', 'etcd://', 'etcd://host', 'etcd://a:1,', 'etcd://a:1/x']) {
      expect(() => etcdEndpoints(bad)).toThrow(/--discovery: .* is not etcd:\/\/host:port/);
    }
    expect(etcdEndpoints('etcd://10.0.0.1:2379,etcd-b:2379')).toEqual(['http://10.0.0.1:2379', 'http://etcd-b:2379']);
  });
});
