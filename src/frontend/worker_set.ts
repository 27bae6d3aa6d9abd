// The seam between the serving core and whatever knows the workers. The frontend asks a
// WorkerSet for an engine for each request (with the prompt's token ids, so a KV-aware
// router can score prefix overlap) and reports back the request's first token and its
// end, which is when a router moves the request from prefill to decode load and then
// forgets it. StaticWorkerSet is the simplest implementation: round robin over fixed
// engines, with health checks; the KV router and worker agents implement the same seam.

import type { Registry } from 'prom-client';
import { KvgateError } from '../errors.js';
import type { EngineClient } from '../engine/client.js';

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
  firstToken(): void;
  finish(outcome: DispatchOutcome, error?: unknown): void;
}

export interface WorkerInfo {
  name: string;
  model: string;
  healthy: boolean;
  // Why it cannot take requests, when it cannot (e.g. disconnected, page size mismatch).
  reason?: string;
}

export interface WorkerSet {
  // Workers that can take requests for `model` now (for /health).
  readyCount(model: string): number;
  workers(): WorkerInfo[];
  // Throws KvgateError('no_workers') when none can serve the model.
  dispatch(req: RouteRequest): Dispatch;
  // Adds the set's own metrics (router state) to the frontend's /metrics registry.
  registerMetrics?(registry: Registry): void;
  close(): Promise<void>;
}

// An engine whose health a StaticWorkerSet can check (SglangHttpEngine is one).
export interface CheckedEngine extends EngineClient {
  healthy(): Promise<boolean>;
}

export interface StaticWorker {
  name: string;
  model: string;
  engine: CheckedEngine;
}

export interface StaticWorkerSetOptions {
  // How often down workers (and up ones) are probed; 0 disables probing.
  healthIntervalMs?: number;
}

interface Slot extends StaticWorker {
  healthy: boolean;
}

export class StaticWorkerSet implements WorkerSet {
  private readonly slots: Slot[];
  private next = 0;
  private readonly timer: NodeJS.Timeout | null;
  private probing = false;

  constructor(workers: StaticWorker[], options: StaticWorkerSetOptions = {}) {
    this.slots = workers.map((w) => ({ ...w, healthy: true }));
    const every = options.healthIntervalMs ?? 5000;
    this.timer = every > 0 ? setInterval(() => void this.probe(), every) : null;
    this.timer?.unref();
  }

  readyCount(model: string): number {
    return this.slots.filter((s) => s.model === model && s.healthy).length;
  }

  workers(): WorkerInfo[] {
    return this.slots.map(({ name, model, healthy }) => ({ name, model, healthy }));
  }

  dispatch(req: RouteRequest): Dispatch {
    const n = this.slots.length;
    for (let i = 0; i < n; i++) {
      const slot = this.slots[(this.next + i) % n]!;
      if (slot.model !== req.model || !slot.healthy) continue;
      this.next = (this.next + i + 1) % n;
      return {
        worker: slot.name,
        engine: slot.engine,
        firstToken: () => undefined,
        // A worker that could not be reached is taken out until a probe finds it back.
        finish: (outcome, error) => {
          if (outcome === 'error' && error instanceof KvgateError && error.code === 'engine_error') slot.healthy = false;
        },
      };
    }
    throw new KvgateError('no_workers', `no healthy worker serves model '${req.model}'`);
  }

  // Probes every worker once; exposed so callers can refresh health on demand.
  async probe(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      await Promise.all(
        this.slots.map(async (s) => {
          s.healthy = await s.engine.healthy();
        }),
      );
    } finally {
      this.probing = false;
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await Promise.all(this.slots.map((s) => s.engine.close()));
  }
}
