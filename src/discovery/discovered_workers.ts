// The frontend's worker set fed by a remote discovery backend (etcd): each discovered
// record's request-plane URL joins the router (addAgent), and leaves it (removeAgent: out of
// routing and the KV index, no more reconnects) when its record goes, e.g. when the
// worker's lease lapsed. /health and /metrics show the backend's state: while it is away
// the frontend serves the last known set and reads degraded.

import type { Registry } from 'prom-client';
import type { KvWorkerSet } from '../router/kv_worker_set.js';
import type { DiscoveryHealth, WorkerSet } from '../router/worker_set.js';
import type { Discovery } from './discovery.js';

export interface RemoteDiscovery extends Discovery {
  health(): DiscoveryHealth;
  registerMetrics(registry: Registry): void;
}

export function discoveredWorkerSet(workers: KvWorkerSet, discovery: RemoteDiscovery): WorkerSet {
  // Two records can name one URL (a worker restarted on a fixed --port): it stays while one does.
  const stillNamed = (url: string) => discovery.list().some((r) => r.url === url);
  const unwatch = discovery.watch((ev) => {
    if (ev.type === 'added') workers.addAgent(ev.worker.url);
    else if (!stillNamed(ev.worker.url)) void workers.removeAgent(ev.worker.url);
  });
  return {
    readyCount: (model) => workers.readyCount(model),
    workers: () => workers.workers(),
    dispatch: (req) => workers.dispatch(req),
    discovery: () => discovery.health(),
    registerMetrics: (registry) => {
      workers.registerMetrics(registry);
      discovery.registerMetrics(registry);
    },
    close: async () => {
      unwatch();
      await discovery.close();
      await workers.close();
    },
  };
}
