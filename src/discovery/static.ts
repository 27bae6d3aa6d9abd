// Discovery from a fixed list of worker URLs (`--worker-urls ws://...`): one request-plane
// connection per URL, kept open and reconnected with backoff. A worker is `added` when its
// Hello arrives (the card comes from the worker itself) and `removed` when the connection
// drops; a reconnect to a restarted agent (new instance id) removes the old one first.
// The connections are the frontend's request-plane clients too: `client(instanceId)`.

import { RequestPlaneClient, type RequestPlaneClientOptions } from '../transport/request_plane_client.js';
import { instanceIdHex, RecordSet, type Discovery, type DiscoveryEvent, type WorkerRecord } from './discovery.js';

export class StaticDiscovery implements Discovery {
  private readonly set = new RecordSet();
  private readonly clients: RequestPlaneClient[];
  private readonly byInstance = new Map<string, RequestPlaneClient>();

  constructor(urls: readonly string[], options: Omit<RequestPlaneClientOptions, 'url' | 'reconnect'> = {}) {
    this.clients = urls.map((url) => {
      const client = new RequestPlaneClient({ ...options, url, reconnect: true });
      let current: string | null = null;
      client.onHello((h) => {
        if (current) this.drop(current);
        current = instanceIdHex(h.instanceId);
        this.byInstance.set(current, client);
        this.set.put({ instanceId: current, url, card: h.card });
      });
      client.onDisconnect(() => {
        if (current) this.drop(current);
        current = null;
      });
      // A worker that is not up yet is retried by the client's reconnect loop.
      client.connect().catch(() => undefined);
      return client;
    });
  }

  // The open connection to a discovered worker.
  client(instanceId: string): RequestPlaneClient | undefined {
    return this.byInstance.get(instanceId);
  }

  watch(listener: (event: DiscoveryEvent) => void): () => void {
    return this.set.watch(listener);
  }

  list(): WorkerRecord[] {
    return this.set.list();
  }

  async close(): Promise<void> {
    await Promise.all(this.clients.map((c) => c.close()));
    this.set.clear();
    this.byInstance.clear();
  }

  private drop(instanceId: string): void {
    this.byInstance.delete(instanceId);
    this.set.delete(instanceId);
  }
}
