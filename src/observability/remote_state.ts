// The connection state of a backend beyond the workers (etcd for discovery, NATS for the
// event plane), as /health and /metrics show it: connected or not, since when and why, and
// how many outages. The client code calls up() and down(err) as its connection comes and goes.

import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from './log.js';

export interface RemoteHealth {
  backend: string;
  endpoints: string;
  connected: boolean;
  // While disconnected: for how long, and why.
  downSeconds?: number;
  error?: string;
}

export class RemoteState {
  private connected = false;
  private since = Date.now();
  private error: string | null = null;
  private readonly gConnected: Gauge;
  private readonly cOutages: Counter;

  // `metric`: the metrics' prefix (kvgate_discovery -> kvgate_discovery_connected, _outages_total).
  constructor(
    private readonly backend: string,
    private readonly endpoints: string,
    metric: string,
    what: string,
    private readonly log: Logger,
  ) {
    this.gConnected = new Gauge({ name: `${metric}_connected`, help: `Whether the frontend is connected to ${what}: 1 yes, 0 no`, registers: [] });
    this.cOutages = new Counter({ name: `${metric}_outages_total`, help: `Times the connection to ${what} was lost`, registers: [] });
    this.gConnected.set(0);
  }

  get isConnected(): boolean {
    return this.connected;
  }

  up(): void {
    if (this.connected) return;
    if (this.error !== null) this.log.info(`${this.backend}: connected again after ${((Date.now() - this.since) / 1000).toFixed(1)} s`);
    this.connected = true;
    this.error = null;
    this.gConnected.set(1);
  }

  // `note` goes into the warning (what the frontend does meanwhile).
  down(err: unknown, note = ''): void {
    this.error = err instanceof Error ? err.message : String(err);
    if (!this.connected) return;
    this.connected = false;
    this.since = Date.now();
    this.gConnected.set(0);
    this.cOutages.inc();
    this.log.warn(`${this.backend}: connection lost (${this.error})${note ? `; ${note}` : ''}`);
  }

  health(): RemoteHealth {
    const h: RemoteHealth = { backend: this.backend, endpoints: this.endpoints, connected: this.connected };
    if (!this.connected) {
      h.downSeconds = Math.round((Date.now() - this.since) / 100) / 10;
      h.error = this.error ?? 'connecting';
    }
    return h;
  }

  registerMetrics(registry: Registry): void {
    registry.registerMetric(this.gConnected);
    registry.registerMetric(this.cOutages);
  }
}
