// Engine control routes on the frontend, fanned out to every worker's engine: SGLang's
// expert-distribution recording (/start_expert_distribution_record,
// /stop_expert_distribution_record, /dump_expert_distribution_record; GET or POST, no body;
// each engine answers 200 with a line of text, and a dump is written by the engine, on its
// machine: reference/sglang.md §1.7).
//
// Every engine is called at once; the answer lists each worker's outcome:
//   200 {"success":true,"message":<the engines' text>,"workers":[{worker,engine,status,message}]}
// and when any engine failed or could not be reached, 502 with the error JSON (code
// engine_error, naming the failed workers) and the same "workers" list. No workers: 503.

import { KvgateError } from '../errors.js';
import { errorJson } from '../http/errors.js';
import type { Exchange } from '../http/exchange.js';
import type { HttpServer } from '../http/server.js';
import type { WorkerEngine, WorkerSet } from '../router/worker_set.js';

export const EXPERT_DISTRIBUTION_PATHS = ['/start_expert_distribution_record', '/stop_expert_distribution_record', '/dump_expert_distribution_record'] as const;

// SGLang's dump runs in the scheduler between batches; allow it a while.
const ENGINE_CALL_TIMEOUT_MS = 60_000;

export interface EngineOutcome {
  worker: string;
  engine: string | null;
  // The engine's HTTP status; null when it was not reached.
  status: number | null;
  message: string;
}

// An engine's answer as one line: its text, or the message of its JSON error.
function messageOf(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: { message?: unknown }; message?: unknown; detail?: unknown };
    const m = j.error?.message ?? j.message ?? j.detail;
    if (typeof m === 'string') return m;
  } catch {
    // plain text
  }
  return text.trim();
}

async function call(target: WorkerEngine, path: string, timeoutMs: number): Promise<EngineOutcome> {
  const base = { worker: target.worker, engine: target.url };
  if (target.url === null) return { ...base, status: null, message: 'its engine is not known yet (the worker has not registered)' };
  if (!/^https?:\/\//.test(target.url)) return { ...base, status: null, message: `${path} is an HTTP route of SGLang; this engine speaks gRPC (${target.url})` };
  try {
    const res = await fetch(target.url + path, { method: 'POST', headers: target.headers, signal: AbortSignal.timeout(timeoutMs) });
    return { ...base, status: res.status, message: messageOf(await res.text()) };
  } catch (err) {
    const e = err as Error & { cause?: Error };
    const why = e.name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : (e.cause?.message ?? e.message);
    return { ...base, status: null, message: `unreachable: ${why}` };
  }
}

export async function fanOut(workers: WorkerSet, path: string, timeoutMs = ENGINE_CALL_TIMEOUT_MS): Promise<{ status: number; body: unknown }> {
  const targets = workers.engines?.() ?? [];
  if (targets.length === 0) {
    const err = new KvgateError('no_workers', `no worker to send ${path} to`);
    return { status: err.status, body: errorJson(err) };
  }
  const outcomes = await Promise.all(targets.map((t) => call(t, path, timeoutMs)));
  const failed = outcomes.filter((o) => o.status === null || o.status < 200 || o.status >= 300);
  if (failed.length === 0) {
    const messages = [...new Set(outcomes.map((o) => o.message))];
    return { status: 200, body: { success: true, message: messages.join('; '), workers: outcomes } };
  }
  const detail = failed.map((o) => `${o.worker}: ${o.status === null ? '' : `${o.status} `}${o.message}`).join('; ');
  const err = new KvgateError('engine_error', `${path} failed on ${failed.length} of ${outcomes.length} worker(s): ${detail}`);
  return { status: err.status, body: { ...errorJson(err), workers: outcomes } };
}

export function registerEngineAdminRoutes(server: HttpServer, workers: WorkerSet): void {
  for (const path of EXPERT_DISTRIBUTION_PATHS) {
    const handler = async (ex: Exchange) => {
      const { status, body } = await fanOut(workers, path);
      ex.json(status, body);
    };
    server.route('get', path, handler, { auth: true }).route('post', path, handler, { auth: true });
  }
}
