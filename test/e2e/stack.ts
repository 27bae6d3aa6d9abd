// The whole system for end-to-end tests (and bench:routing): N real `kvgate worker --engine
// mocker` processes (each an agent process plus a mocker process) started by the embedded
// cluster, the KV router over their request planes, and the OpenAI frontend in this process
// with an `openai` client pointed at it. The frontend runs in-process so tests can read the
// router's own state next to what clients see.

import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { defaultMaxBodyBytes } from '../../src/config.js';
import { clusterEngineArgs, LocalCluster, type SpawnedWorker } from '../../src/cluster/local_cluster.js';
import { loadServedModel, startFrontend, type FrontendHandle } from '../../src/frontend/frontend.js';
import type { ServedModel } from '../../src/frontend/serving.js';
import { createLogger, parseLogRecord } from '../../src/observability/log.js';
import { KvWorkerSet, type KvWorkerSetOptions } from '../../src/router/kv_worker_set.js';
import { KVGATE } from '../fixtures/processes.js';

export { KVGATE };

export const MODEL = 'Qwen/Qwen3-0.6B';

let qwen3: ServedModel | null = null;
function servedModel(): ServedModel {
  qwen3 ??= loadServedModel({ name: MODEL }, 40960);
  return qwen3;
}

// The engine PIDs in the ready lines of `kvgate serve`'s workers, from its stderr (JSON records).
export function workerEnginePids(stderr: string): number[] {
  return stderr
    .split('\n')
    .flatMap((l) => {
      const r = parseLogRecord(l);
      const m = r && r['worker'] !== undefined ? /^kvgate worker ready: ws:\/\/\S+ .*engine_pid=(\d+)/.exec(String(r['msg'])) : null;
      return m ? [Number(m[1])] : [];
    });
}

export interface Cluster {
  cluster: LocalCluster;
  workers: SpawnedWorker[];
  // Every log line of the cluster and its workers (JSON records; the workers' tagged `worker: i`).
  lines: string[];
  // The HTTP URL of worker i's engine (from the agent's log).
  engineUrl(i: number): string;
  stop(): Promise<void>;
}

// `engineArgs` go after the mocker demo defaults (page size 16, Qwen3, speedup 10).
export async function startCluster(n: number, engineArgs: string[] = []): Promise<Cluster> {
  const lines: string[] = [];
  const cluster = new LocalCluster({
    workers: n,
    engine: 'mocker',
    engineArgs: clusterEngineArgs('mocker', engineArgs),
    workerArgs: ['--log-level', 'info', '--load-interval', '0.2'],
    kvgate: KVGATE,
    startupTimeoutMs: 60_000,
    log: createLogger({ level: 'debug', write: (line) => lines.push(line) }),
  });
  let workers: SpawnedWorker[];
  try {
    workers = await cluster.ready();
  } catch (err) {
    await cluster.stop(5000);
    throw new Error(`${(err as Error).message}\n${lines.slice(-20).join('\n')}`, { cause: err });
  }
  return {
    cluster,
    workers,
    lines,
    engineUrl: (i) => {
      for (const l of lines) {
        const r = JSON.parse(l) as { worker?: number; msg: string };
        const m = r.worker === i ? /^engine ready \(pid \d+, (http:\/\/[\d.:]+)\)/.exec(r.msg) : null;
        if (m) return m[1]!;
      }
      throw new Error(`no engine URL in worker ${i}'s log`);
    },
    stop: () => cluster.stop(15_000),
  };
}

export interface Serving {
  set: KvWorkerSet;
  frontend: FrontendHandle;
  client: OpenAI;
  url: string;
  close(): Promise<void>;
}

export async function serve(workerUrls: readonly string[], options: KvWorkerSetOptions = {}): Promise<Serving> {
  const set = new KvWorkerSet({ healthIntervalMs: 0, ...options });
  for (const u of workerUrls) set.addAgent(u);
  try {
    await set.waitForWorkers(workerUrls.length, 20_000);
  } catch (err) {
    await set.close();
    throw err;
  }
  const model = servedModel();
  const maxBodyBytes = defaultMaxBodyBytes(model.contextLength, model.preprocessor.tokenizer.maxBytesPerToken);
  const frontend = await startFrontend({ port: 0, models: [model], maxBodyBytes }, set);
  const client = new OpenAI({ baseURL: `${frontend.url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 30_000 });
  return {
    set,
    frontend,
    client,
    url: frontend.url,
    close: async () => {
      await frontend.close(2000);
      await set.close();
    },
  };
}

// A killed process whose parent is gone stays a zombie until reaped: that counts as dead.
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]![0] !== 'Z';
  } catch {
    return false;
  }
}

export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

// Per-worker values of one router gauge, read from /metrics as a client would.
export async function metricByWorker(url: string, name: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out = new Map<string, number>();
  const re = new RegExp(`^${name}\\{[^}]*worker="([^"]+)"[^}]*\\} (\\S+)$`, 'gm');
  for (const m of text.matchAll(re)) out.set(m[1]!, (out.get(m[1]!) ?? 0) + Number(m[2]));
  return out;
}
