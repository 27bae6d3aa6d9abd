// The seam between the serving core and whatever knows the workers. The serving core asks
// a WorkerSet for an engine for each request (with the prompt's token ids, so a KV-aware
// router can score prefix overlap) and reports back the request's first token and its
// end, which is when the router moves the request from prefill to decode load and then
// forgets it. KvWorkerSet (kv_worker_set.ts) is the implementation.

import type { Registry } from 'prom-client';
import type { EngineClient } from '../engine/client.js';
import type { RemoteHealth } from '../observability/remote_state.js';

export interface RouteRequest {
  model: string;
  requestId: string;
  tokenIds: readonly number[];
}

export type DispatchOutcome = 'ok' | 'cancelled' | 'error';

// One routing decision. Call firstToken() once when the first token arrives and
// finish() exactly once when the request ends, whatever the outcome.
export interface Dispatch {
  readonly worker: string; // a stable label for metrics and logs
  readonly engine: EngineClient;
  // Times the request moved to another worker mid-stream so far.
  readonly migrations?: number;
  firstToken(): void;
  finish(outcome: DispatchOutcome, error?: unknown): void;
}

export interface WorkerInfo {
  name: string;
  model: string;
  role?: 'agg' | 'prefill' | 'decode';
  healthy: boolean;
  // Why it cannot take requests, when it cannot (e.g. disconnected, page size mismatch).
  reason?: string;
  // Set while a worker that is normally routed on its KV events is routed approximately
  // (its events cannot arrive: the event plane, or its own link to it, is down).
  routing?: 'approximate';
}

// Per model, the workers up in each pool and how requests are served now: disaggregated
// while a prefill and a decode worker are up, else by the aggregated workers.
export interface PoolInfo {
  mode: 'disaggregated' | 'aggregated' | 'none';
  agg: number;
  prefill: number;
  decode: number;
}

// A worker's engine, for control calls fanned out to every engine (engine_admin.ts).
export interface WorkerEngine {
  worker: string;
  // Its engine's base URL (http(s):// or grpc://); null while not known yet.
  url: string | null;
  // What every request to it carries (the engine API key as Authorization: Bearer).
  headers: Record<string, string>;
}

export interface WorkerSet {
  // Workers that can take requests for `model` now (for /health).
  readyCount(model: string): number;
  workers(): WorkerInfo[];
  // Every worker's engine (whatever its role or state).
  engines?(): WorkerEngine[];
  // Throws KvgateError('no_workers') when none can serve the model.
  dispatch(req: RouteRequest): Dispatch;
  // Per model, its pools (for /health and /v1/models).
  pools?(): Record<string, PoolInfo>;
  // Backends beyond the workers (discovery: etcd; eventPlane: NATS) by name, for /health.
  remotes?(): Record<string, RemoteHealth>;
  // Adds the set's own metrics (router state) to the frontend's /metrics registry.
  registerMetrics?(registry: Registry): void;
  close(): Promise<void>;
}

export interface Remote {
  health(): RemoteHealth;
  registerMetrics(registry: Registry): void;
  close(): Promise<void>;
}

// `set` with a backend beyond its workers: its state in remotes() (so in /health), its
// metrics, and closed before the set.
export function withRemote(set: WorkerSet, name: string, remote: Remote): WorkerSet {
  return {
    readyCount: (model) => set.readyCount(model),
    workers: () => set.workers(),
    engines: () => set.engines?.() ?? [],
    dispatch: (req) => set.dispatch(req),
    pools: () => set.pools?.() ?? {},
    remotes: () => ({ ...set.remotes?.(), [name]: remote.health() }),
    registerMetrics: (registry) => {
      set.registerMetrics?.(registry);
      remote.registerMetrics(registry);
    },
    close: async () => {
      await remote.close();
      await set.close();
    },
  };
}
