// The frontend's worker set fed by a remote discovery backend (etcd): each discovered
// record's request-plane URL joins the router (addAgent), and leaves it (removeAgent: out of
// routing and the KV index, no more reconnects) when its record goes, e.g. when the
// worker's lease lapsed. /health and /metrics show the backend's state: while it is away
// the frontend serves the last known set and reads degraded.

import type { KvWorkerSet } from '../router/kv_worker_set.js';
import { withRemote, type Remote, type WorkerSet } from '../router/worker_set.js';
import type { Discovery } from './discovery.js';

export function discoveredWorkerSet(workers: KvWorkerSet, discovery: Discovery & Remote): WorkerSet {
  // Two records can name one URL (a worker restarted on a fixed --port): it stays while one does.
  const stillNamed = (url: string) => discovery.list().some((r) => r.url === url);
  const unwatch = discovery.watch((ev) => {
    if (ev.type === 'added') workers.addAgent(ev.worker.url);
    else if (!stillNamed(ev.worker.url)) void workers.removeAgent(ev.worker.url);
  });
  return withRemote(workers, 'discovery', {
    health: () => discovery.health(),
    registerMetrics: (registry) => discovery.registerMetrics(registry),
    close: async () => {
      unwatch();
      await discovery.close();
    },
  });
}
