// The three systems bench:gateway drives, each started fresh on free 127.0.0.1 ports with the
// same simulated engine settings: kvgate (`serve --workers N --engine mocker`), NVIDIA Dynamo
// (its frontend with KV routing + N of its mockers, no etcd/NATS), and one kvgate mocker alone.

import { mkdirSync, mkdtempSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, isShuttingDown, start, stop, waitReady, type Classify, type Started } from './procs.js';
import { MODEL_NAME, type Peers } from './peers.js';

export type SystemName = 'kvgate' | 'dynamo' | 'engine';
export const SYSTEMS: SystemName[] = ['kvgate', 'dynamo', 'engine'];

export interface EngineSettings {
  workers: number;
  pageSize: number;
  kvTokens: number; // KV cache capacity per engine, in tokens
  maxRunning: number;
  speedup: number;
  contextLength?: number; // the mocker's --context-length (its default, 40,960, when absent; kvgate mockers only)
}

export interface RunningSystem {
  name: SystemName;
  url: string;
  procs: Started[];
  classify: Classify;
  // The engine alone is driven through SGLang's /generate; the others through OpenAI chat.
  generate: boolean;
  // Output tokens the engines have generated so far (the engine alone; null elsewhere).
  generatedTokens(): Promise<number | null>;
  stop(): Promise<void>;
}

const KVGATE_BIN = resolve(fileURLToPath(new URL('../../bin/kvgate.js', import.meta.url)));
const STARTUP_MS = 180_000;

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
  const text = await res.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: res.status, body };
}

export function mockerArgs(e: EngineSettings): string[] {
  return ['--page-size', String(e.pageSize), '--max-total-tokens', String(e.kvTokens), '--max-running-requests', String(e.maxRunning), '--speedup-ratio', String(e.speedup), ...(e.contextLength ? ['--context-length', String(e.contextLength)] : [])];
}

async function startKvgate(peers: Peers, e: EngineSettings, runDir: string): Promise<RunningSystem> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = [
    KVGATE_BIN, 'serve',
    '--workers', String(e.workers), '--engine', 'mocker',
    '--host', '127.0.0.1', '--port', String(port), '--log-level', 'warn',
    '--model-path', peers.modelDir, '--served-model-name', MODEL_NAME,
    '--', ...mockerArgs(e),
  ];
  const proc = start('kvgate serve', process.execPath, args, { logPath: join(runDir, 'kvgate.log') });
  const sys: RunningSystem = {
    name: 'kvgate',
    url,
    procs: [proc],
    // serve is the frontend; it spawns `kvgate worker` agents, each spawning a `kvgate mocker`.
    classify: (cmd) => (/\bkvgate\.js mocker\b/.test(cmd) ? 'engines' : /\bkvgate\.js worker\b/.test(cmd) ? 'agents' : /\bkvgate\.js serve\b/.test(cmd) ? 'frontend' : null),
    generate: false,
    generatedTokens: async () => null,
    stop: () => stop(proc),
  };
  try {
    await waitReady('kvgate', [proc], async () => {
      const { status, body } = await getJson(`${url}/health`);
      const ready = (body as { models?: Record<string, number> } | null)?.models?.[MODEL_NAME];
      return status === 200 && ready === e.workers;
    }, STARTUP_MS);
  } catch (err) {
    await sys.stop();
    throw err;
  }
  return sys;
}

// Dynamo without etcd or NATS: file discovery, the TCP request plane, the ZMQ event plane, and
// every advertised address on loopback.
function dynamoEnv(kvDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DYN_FILE_KV: kvDir, DYN_LOG: process.env['DYN_LOG'] ?? 'warn' };
  for (const k of ['DYN_TCP_RPC_HOST', 'DYN_EVENT_PLANE_HOST', 'DYN_TCP_RESPONSE_STREAM_HOST', 'DYN_SYSTEM_HOST', 'DYN_HTTP_RPC_HOST']) env[k] = '127.0.0.1';
  return env;
}

const DYNAMO_PLANES = ['--discovery-backend', 'file', '--request-plane', 'tcp', '--event-plane', 'zmq'];

async function startDynamo(peers: Peers, e: EngineSettings, runDir: string): Promise<RunningSystem> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = dynamoEnv(mkdtempSync(join(runDir, 'dynamo-kv-')));
  const model = ['--model-path', peers.modelDir, '--model-name', MODEL_NAME];
  const procs: Started[] = [];
  const sys: RunningSystem = {
    name: 'dynamo',
    url,
    procs,
    // Dynamo's worker role (registration, KV-event relay, request plane) runs inside each mocker.
    classify: (cmd) => (/-m dynamo\.mocker\b/.test(cmd) ? 'engines' : /-m dynamo\.frontend\b/.test(cmd) ? 'frontend' : null),
    generate: false,
    generatedTokens: async () => null,
    stop: async () => {
      await Promise.all(procs.map((p) => stop(p)));
    },
  };
  try {
    procs.push(
      start('dynamo frontend', peers.dynamoPython, ['-m', 'dynamo.frontend', ...DYNAMO_PLANES, '--http-host', '127.0.0.1', '--http-port', String(port), '--router-mode', 'kv', ...model], {
        env,
        logPath: join(runDir, 'dynamo-frontend.log'),
      }),
    );
    // The same simulated engine as kvgate's mocker: SGLang scheduling, page 16, 16,384 blocks of
    // 16 = 262,144 tokens, 256 running requests, the same speedup (both use Dynamo's polynomial
    // timing model).
    const blocks = Math.floor(e.kvTokens / e.pageSize);
    for (let i = 0; i < e.workers; i++) {
      procs.push(
        start(`dynamo mocker ${i}`, peers.dynamoPython, [
          '-m', 'dynamo.mocker', ...DYNAMO_PLANES, ...model,
          '--engine-type', 'sglang', '--block-size', String(e.pageSize), '--num-gpu-blocks-override', String(blocks),
          '--max-num-seqs', String(e.maxRunning), '--speedup-ratio', String(e.speedup),
        ], { env, logPath: join(runDir, `dynamo-mocker-${i}.log`) }),
      );
    }
    await waitReady('Dynamo', procs, async () => {
      const { status, body } = await getJson(`${url}/health`);
      const instances = (body as { instances?: { endpoint?: string }[] } | null)?.instances ?? [];
      if (status !== 200 || instances.filter((x) => x.endpoint === 'generate').length !== e.workers) return false;
      const models = await getJson(`${url}/v1/models`);
      return ((models.body as { data?: { id: string }[] } | null)?.data ?? []).some((m) => m.id === MODEL_NAME);
    }, STARTUP_MS);
  } catch (err) {
    await sys.stop();
    throw err;
  }
  return sys;
}

// The floor: one kvgate mocker with the same settings, hit directly on SGLang's /generate.
// Incremental streaming, so each chunk carries only its new text (aiperf concatenates chunks).
async function startEngine(_peers: Peers, e: EngineSettings, runDir: string): Promise<RunningSystem> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const args = [KVGATE_BIN, 'mocker', '--host', '127.0.0.1', '--port', String(port), '--log-level', 'warning', ...mockerArgs(e), '--incremental-streaming-output', '--enable-metrics'];
  const proc = start('kvgate mocker', process.execPath, args, { logPath: join(runDir, 'engine.log') });
  const sys: RunningSystem = {
    name: 'engine',
    url,
    procs: [proc],
    classify: () => 'engines',
    generate: true,
    generatedTokens: async () => {
      const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
      const m = /^sglang:generation_tokens_total\{[^}]*\} (\S+)$/m.exec(text);
      if (!m) throw new Error('engine: no sglang:generation_tokens_total in /metrics');
      return Number(m[1]);
    },
    stop: () => stop(proc),
  };
  try {
    await waitReady('engine', [proc], async () => (await getJson(`${url}/health`)).status === 200, STARTUP_MS);
  } catch (err) {
    await sys.stop();
    throw err;
  }
  return sys;
}

// A second attempt on fresh ports covers a picked port taken by someone else meanwhile.
export async function startSystem(name: SystemName, peers: Peers, e: EngineSettings, runDir: string, say: (s: string) => void): Promise<RunningSystem> {
  const starter = { kvgate: startKvgate, dynamo: startDynamo, engine: startEngine }[name];
  for (let attempt = 1; ; attempt++) {
    const dir = join(runDir, attempt === 1 ? name : `${name}-${attempt}`);
    mkdirSync(dir, { recursive: true });
    try {
      return await starter(peers, e, dir);
    } catch (err) {
      if (attempt >= 2 || isShuttingDown()) throw err;
      say(`${name} did not start (${(err as Error).message.split('\n')[0]}); trying again on fresh ports`);
    }
  }
}
