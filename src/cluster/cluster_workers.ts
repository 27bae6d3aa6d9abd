// The embedded cluster joined to the router: a worker that dies leaves the router (its URL
// is dead: the respawn listens on fresh ports), the respawned one joins it, and /health
// lists a worker being respawned as not healthy, with why, so the frontend reads degraded
// until it is back.

import type { WorkerInfo, WorkerSet } from '../router/worker_set.js';
import type { KvWorkerSet } from '../router/kv_worker_set.js';
import type { LocalCluster } from './local_cluster.js';

export function clusterWorkerSet(workers: KvWorkerSet, cluster: LocalCluster): WorkerSet {
  // The model each worker index served, for its /health entry while it is away.
  const models = new Map<number, string>();
  cluster.onWorkerDown((w) => {
    const info = workers.workers().find((i) => i.name === w.url);
    if (info) models.set(w.index, info.model);
    void workers.removeAgent(w.url);
  });
  cluster.onWorkerUp((w) => workers.addAgent(w.url));
  const away = (): WorkerInfo[] =>
    cluster.unavailable.map(({ index, reason }) => ({ name: `worker ${index}`, model: models.get(index) ?? '', healthy: false, reason }));
  return {
    readyCount: (model) => workers.readyCount(model),
    workers: () => [...workers.workers(), ...away()],
    engines: () => workers.engines(),
    dispatch: (req) => workers.dispatch(req),
    pools: () => workers.pools(),
    registerMetrics: (registry) => workers.registerMetrics(registry),
    close: () => workers.close(),
  };
}
