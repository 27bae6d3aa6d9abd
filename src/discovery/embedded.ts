// In-process discovery: workers started by (or inside) the frontend's process register
// here, and the frontend watches the same object.

import { RecordSet, type Discovery, type DiscoveryEvent, type Registration, type Registry, type WorkerRecord } from './discovery.js';

export class EmbeddedDiscovery implements Discovery, Registry {
  private readonly set = new RecordSet();

  register(record: WorkerRecord): Registration {
    let current = record;
    this.set.put(current);
    return {
      update: (next) => {
        if (next.instanceId !== current.instanceId) this.set.delete(current.instanceId);
        current = next;
        this.set.put(current);
      },
      unregister: () => this.set.delete(current.instanceId),
    };
  }

  watch(listener: (event: DiscoveryEvent) => void): () => void {
    return this.set.watch(listener);
  }

  list(): WorkerRecord[] {
    return this.set.list();
  }

  async close(): Promise<void> {
    this.set.clear();
  }
}
