// The one log line per request (info): what an operator greps for when a user reports a slow
// or failed request. The serving core fills a RequestTrace as the request runs; the route
// writes the line when the request ends, whatever the way out.

import type { Logger } from './log.js';

export interface RequestTrace {
  worker: string | null;
  // performance.now() of the first generated token.
  firstTokenAt: number | null;
  completionTokens: number;
  // Times the request moved to another worker mid-stream.
  migrations: number;
}

export const newTrace = (): RequestTrace => ({ worker: null, firstTokenAt: null, completionTokens: 0, migrations: 0 });

export interface RequestLogFields {
  id: string | null;
  model: string;
  endpoint: string;
  stream: boolean;
  status: string;
  receivedAt: number;
  promptTokens: number | null;
  trace: RequestTrace | null;
  error?: unknown;
}

const ms = (x: number) => Math.round(x * 10) / 10;

export function logRequest(log: Logger, f: RequestLogFields): void {
  const t = f.trace;
  log.info('request', {
    id: f.id,
    model: f.model,
    endpoint: f.endpoint,
    stream: f.stream,
    status: f.status,
    worker: t?.worker ?? null,
    promptTokens: f.promptTokens,
    completionTokens: t?.completionTokens ?? 0,
    migrations: t?.migrations ?? 0,
    ttftMs: t?.firstTokenAt != null ? ms(t.firstTokenAt - f.receivedAt) : null,
    durationMs: ms(performance.now() - f.receivedAt),
    ...(f.error !== undefined ? { error: (f.error as { code?: string })?.code ?? (f.error as Error)?.message ?? String(f.error) } : {}),
  });
}
