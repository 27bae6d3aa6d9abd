// The discovery seam: how a frontend learns that workers appear and disappear, each with
// its request-plane address and model card; and how a worker announces itself. The
// implementation is etcd (etcd.ts: workers register under a lease, frontends list then watch
// the prefix). Without --discovery, kvgate serve knows its workers without one: it spawned
// them (cluster/local_cluster.ts) or was given their URLs (--worker-urls).

import type { ModelCard } from '../engine/model_card.js';

export interface WorkerRecord {
  // The worker agent's instance id (u64, hex): unique per agent process.
  instanceId: string;
  // Request-plane address, ws://host:port.
  url: string;
  card: ModelCard;
}

export type DiscoveryEvent = { type: 'added'; worker: WorkerRecord } | { type: 'removed'; worker: WorkerRecord };

export interface Discovery {
  // Calls `listener` with an `added` event for every current worker, then with every
  // change, until the returned function is called.
  watch(listener: (event: DiscoveryEvent) => void): () => void;
  list(): WorkerRecord[];
  close(): Promise<void>;
}

// The worker side: announce, update (the engine restarted with a new card), withdraw
// (resolves once withdrawn, or once it is no use waiting longer).
export interface Registration {
  update(record: WorkerRecord): void;
  unregister(): void | Promise<void>;
}

export interface Registry {
  register(record: WorkerRecord): Registration;
}

export const instanceIdHex = (id: bigint) => id.toString(16).padStart(16, '0');

// Shared bookkeeping of the implementations: the current set and its listeners.
export class RecordSet {
  private readonly workers = new Map<string, WorkerRecord>();
  private readonly listeners = new Set<(event: DiscoveryEvent) => void>();

  watch(listener: (event: DiscoveryEvent) => void): () => void {
    this.listeners.add(listener);
    for (const w of this.workers.values()) listener({ type: 'added', worker: w });
    return () => this.listeners.delete(listener);
  }

  list(): WorkerRecord[] {
    return [...this.workers.values()];
  }

  // Adds or replaces (a replaced record is announced as removed, then added).
  put(record: WorkerRecord): void {
    const old = this.workers.get(record.instanceId);
    if (old) this.emit({ type: 'removed', worker: old });
    this.workers.set(record.instanceId, record);
    this.emit({ type: 'added', worker: record });
  }

  delete(instanceId: string): void {
    const old = this.workers.get(instanceId);
    if (!old) return;
    this.workers.delete(instanceId);
    this.emit({ type: 'removed', worker: old });
  }

  clear(): void {
    for (const id of [...this.workers.keys()]) this.delete(id);
  }

  private emit(event: DiscoveryEvent): void {
    for (const l of [...this.listeners]) l(event);
  }
}
