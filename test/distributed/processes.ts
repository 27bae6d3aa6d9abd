// kvgate processes for the distributed tests: `kvgate worker --engine mocker` and
// `kvgate serve` with the flags a test gives (--discovery, --event-plane, ...), run from the
// TypeScript sources, and what a client reads from a frontend.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';
import { KVGATE, MODEL, waitFor } from '../e2e/stack.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const started: ChildProcess[] = [];

export interface Proc {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  // The request-plane URL (worker) or HTTP URL (frontend) from its ready line.
  url: string;
}

// SIGKILLs every process started here that still runs (afterAll).
export async function killAll(): Promise<void> {
  for (const p of started.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await exited;
    }
  }
}

async function kvgate(args: string[], ready: RegExp, what: string, env: NodeJS.ProcessEnv = {}): Promise<Proc> {
  const proc = spawn(KVGATE[0]!, [...KVGATE.slice(1), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  started.push(proc);
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err = (err + d).slice(-50_000)));
  await waitFor(() => ready.test(out) || proc.exitCode !== null, what, 60_000);
  await new Promise((r) => setTimeout(r, proc.exitCode !== null ? 100 : 0)); // the last stderr of an exited process
  const m = ready.exec(out);
  if (!m) throw new Error(`${what} did not start:\n${err.slice(-3000)}`);
  return { proc, stdout: () => out, stderr: () => err, url: m[1]! };
}

// `env`: added to this process's environment (secrets: KVGATE_CLUSTER_TOKEN, ...). `speedup`:
// the mocker's (model time over real time).
export const startWorker = (flags: string[], env?: NodeJS.ProcessEnv, speedup = 10) =>
  kvgate(['worker', '--engine', 'mocker', ...flags, '--load-interval', '0.2', '--', '--model-path', MODEL, '--page-size', '16', '--speedup-ratio', String(speedup)], /kvgate worker ready: (wss?:\/\/\S+)/, 'a worker', env);

export const startFrontend = (flags: string[], env?: NodeJS.ProcessEnv) => kvgate(['serve', ...flags, '--port', '0'], /listening on (http:\/\/\S+)/, 'a frontend', env);

export interface Health {
  status: string;
  workers: { name: string; model: string; role?: string; healthy: boolean; reason?: string; routing?: 'approximate' }[];
  discovery: { backend: string; connected: boolean; workers: number; error?: string };
  eventPlane?: { backend: string; connected: boolean; routing: 'exact' | 'approximate'; error?: string };
}

export const health = async (url: string) => (await (await fetch(`${url}/health`)).json()) as Health;
export const names = async (url: string) => (await health(url)).workers.map((w) => w.name).sort();
// An unlabelled metric's value from /metrics.
export const metric = async (url: string, name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await (await fetch(`${url}/metrics`)).text())?.[1]);

// A chat request whose prompt (a system prompt repeated `size` times) fills several 16-token blocks.
export const chat = (url: string, system = 'You answer in one short sentence about distributed caches. ', size = 12) =>
  new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 30_000 }).chat.completions.create({
    model: MODEL,
    messages: [
      { role: 'system', content: system.repeat(size) },
      { role: 'user', content: 'Which worker holds my prefix?' },
    ],
    max_tokens: 8,
  });
