// `kvgate mocker` as a process: SGLang's launch_server flags, the ready line with the real port,
// and a clean exit on SIGTERM with a request in flight.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { get, inFlight, post, sseEvents, until } from './helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const children: ChildProcess[] = [];

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.pid) process.kill(c.pid, 'SIGKILL');
});

// Runs src/cli/main.ts (the code bin/kvgate.js runs once compiled) under tsx.
function kvgate(args: string[]): { child: ChildProcess; ready: Promise<string>; exited: Promise<number | null>; stderr: () => string } {
  const child = spawn(process.execPath, ['--import', 'tsx', '-e', "import('./src/cli/main.ts').then((m) => m.main(process.argv.slice(1))).catch((e) => { console.error(e.message); process.exit(1); })", '--', ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const ready = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.startsWith('kvgate mocker: listening on '));
      if (line) resolve(line);
    });
    child.on('exit', (code) => reject(new Error(`exited with ${code}: ${err}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, ready, exited, stderr: () => err };
}

describe('kvgate mocker (process)', () => {
  it('takes sglang.launch_server flags, prints its real port, and stops cleanly on SIGTERM', async () => {
    const p = kvgate([
      'mocker',
      '--model-path', 'Qwen/Qwen3-0.6B',
      '--served-model-name', 'qwen3',
      '--port', '0',
      '--tp-size', '1',
      '--trust-remote-code',
      '--mem-fraction-static', '0.8',
      '--log-level', 'warning',
      '--page-size', '16',
      '--speedup-ratio', '0.2',
      '--kv-events-config', '{"publisher":"zmq","endpoint":"tcp://127.0.0.1:0","bind":true,"replay_endpoint":"tcp://127.0.0.1:0","topic":"kv"}',
    ]);
    const line = await p.ready;
    const m = /^kvgate mocker: listening on (http:\/\/127\.0\.0\.1:(\d+)) kv-events=(\d+) kv-replay=(\d+)$/.exec(line);
    expect(m).not.toBeNull();
    const url = m![1]!;
    expect(Number(m![2])).toBeGreaterThan(0);
    const info = (await get(`${url}/server_info`)).json();
    expect(info).toMatchObject({ served_model_name: 'qwen3', page_size: 16, port: 0 });
    expect(info.kv_events).toMatchObject({ endpoint_port_base: Number(m![3]), replay_endpoint_port_base: Number(m![4]), block_size: 16 });
    // A long stream in flight when SIGTERM arrives ends with a finish reason and [DONE].
    const inflight = post(`${url}/generate`, { input_ids: [1, 2, 3], sampling_params: { max_new_tokens: 30000, ignore_eos: true }, stream: true });
    await until(async () => (await inFlight({ url })) === 1);
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    const events = sseEvents((await inflight).text) as any[];
    expect(events.at(-1)).toBe('[DONE]');
    expect(events.at(-2).meta_info.finish_reason).toMatchObject({ type: 'abort', message: 'The server is shutting down.', status_code: 503 });
    await expect(fetch(`${url}/health`)).rejects.toThrow();
  });

  it('refuses unknown flags and bad values with a clear message', async () => {
    const bad = kvgate(['mocker', '--port', '0', '--no-such-flag']);
    await expect(bad.ready).rejects.toThrow(/unknown option --no-such-flag for 'kvgate mocker'/);
    const json = kvgate(['mocker', '--port', '0', '--kv-events-config', '{"publisher":"zmq","endpoint":"tcp://*:0","nope":1}']);
    await expect(json.ready).rejects.toThrow(/--kv-events-config: unknown key 'nope'/);
  });
});
