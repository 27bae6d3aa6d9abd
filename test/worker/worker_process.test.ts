// `kvgate worker` as a process, up to the engine's process boundary: `--engine sglang` runs
// a fake `python3` (test/fixtures/fake-python) that records its argv, environment and PID
// and then becomes the real kvgate mocker; `--engine mocker` runs the mocker directly.
// Checked: the engine command line and environment, conflicts refused, the health wait and
// its deadline, registration (model card over the request plane, naming the engine URL that
// requests stream from, as a frontend does), KV events and load, restart after the engine is
// killed (on a new URL), and SIGTERM draining an in-flight stream.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, existsSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { GenerateChunk, GenerateRequest } from '../../src/engine/client.js';
import { directEngine } from '../../src/engine/direct_engine.js';
import type { LoadReport } from '../../src/transport/frames.js';
import { RequestPlaneClient, type KvRelayEvent } from '../../src/transport/request_plane_client.js';
import { FrontendView } from '../transport/frontend_view.js';

const cli = fileURLToPath(new URL('../e2e/kvgate_cli.ts', import.meta.url));
const fakePythonDir = fileURLToPath(new URL('../fixtures/fake-python', import.meta.url));
const kvgateCli = `${process.execPath} --import tsx ${cli}`;

interface Worker {
  proc: ChildProcess;
  record: string;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  // Resolves with the ready line's fields, or rejects when the worker exits first.
  ready: Promise<{ url: string; enginePid: number }>;
}

interface Record {
  pid: number;
  straggler: number | null;
  argv: string[];
  env: NodeJS.ProcessEnv;
}

const started: ChildProcess[] = [];
const dirs: string[] = [];
const clients: RequestPlaneClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  for (const p of started.splice(0)) {
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGTERM');
      await new Promise((r) => p.once('exit', r));
    }
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function startWorker(workerArgs: string[], engineArgs: string[], env: NodeJS.ProcessEnv = {}): Worker {
  const dir = mkdtempSync(join(tmpdir(), 'kvgate-worker-'));
  dirs.push(dir);
  const record = join(dir, 'python-record.jsonl');
  const proc = spawn(process.execPath, ['--import', 'tsx', cli, 'worker', ...workerArgs, '--', ...engineArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      PATH: `${fakePythonDir}:${process.env.PATH}`,
      FAKE_PYTHON_RECORD: record,
      KVGATE_CLI: kvgateCli,
      ...env,
    },
  });
  started.push(proc);
  let out = '';
  let err = '';
  proc.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const ready = new Promise<{ url: string; enginePid: number }>((resolve, reject) => {
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = /kvgate worker ready: (ws:\/\/\S+) .* engine_pid=(\d+)/.exec(out);
      if (m) resolve({ url: m[1]!, enginePid: Number(m[2]) });
    });
    void exited.then((code) => reject(new Error(`worker exited with ${code} before ready:\n${err.slice(-3000)}`)));
  });
  ready.catch(() => undefined);
  return { proc, record, stdout: () => out, stderr: () => err, exited, ready };
}

const records = (w: Worker): Record[] =>
  existsSync(w.record) ? readFileSync(w.record, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record) : [];

// A killed process whose parent is gone stays a zombie until init reaps it: that is dead.
const alive = (pid: number) => {
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
};

const waitFor = async (cond: () => boolean, what: string, ms = 30_000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
};

async function connect(url: string) {
  const client = new RequestPlaneClient({ url });
  clients.push(client);
  const kv: KvRelayEvent[] = [];
  const loads: LoadReport[] = [];
  client.onKvEvent((e) => kv.push(e));
  client.onLoad((l) => loads.push(l));
  const hello = await client.connect();
  return { client, hello, kv, loads };
}

const prompt = (seed: number, n = 64) => Array.from({ length: n }, (_, i) => 1000 + seed * 100 + i);
const request = (id: string, tokens: number[], maxNewTokens: number): GenerateRequest => ({
  requestId: id,
  tokenIds: tokens,
  sampling: { maxNewTokens, temperature: 0, ignoreEos: true },
});

// A request as a frontend sends it: to the engine the worker's current card names.
async function* generate(client: RequestPlaneClient, req: GenerateRequest): AsyncGenerator<GenerateChunk> {
  const engine = directEngine(client.hello!.card.engineUrl);
  try {
    yield* engine.generate(req);
  } finally {
    await engine.close();
  }
}

async function collect(it: AsyncIterable<GenerateChunk>) {
  const tokens: number[] = [];
  let last: GenerateChunk | undefined;
  for await (const c of it) {
    tokens.push(...c.tokenIds);
    last = c;
  }
  return { tokens, last: last! };
}

const userArgs = ['--model-path', 'Qwen/Qwen3-0.6B', '--served-model-name', 'qwen-test', '--page-size', '16', '--trust-remote-code', '--speedup-ratio', '20'];

describe('kvgate worker --engine sglang (fake python3 -> mocker)', () => {
  it('starts the engine with the user args untouched plus its own, registers, serves, relays KV events and load', async () => {
    const w = startWorker(['--engine', 'sglang', '--port', '0', '--migration-limit', '3'], userArgs, { CUDA_VISIBLE_DEVICES: '3' });
    const { url, enginePid } = await w.ready;
    const [rec] = records(w);
    expect(rec!.pid).toBe(enginePid);
    // Command line: -m sglang.launch_server, the user's arguments first and untouched, then kvgate's.
    expect(rec!.argv.slice(0, 2)).toEqual(['-m', 'sglang.launch_server']);
    expect(rec!.argv.slice(2, 2 + userArgs.length)).toEqual(userArgs);
    const added = rec!.argv.slice(2 + userArgs.length);
    const flag = (name: string) => added[added.indexOf(name) + 1];
    expect(flag('--host')).toBe('127.0.0.1');
    expect(Number(flag('--port'))).toBeGreaterThan(0);
    const kv = JSON.parse(flag('--kv-events-config')!);
    expect(kv).toMatchObject({ publisher: 'zmq', topic: 'kv' });
    expect(kv.endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    expect(kv.replay_endpoint).toMatch(/^tcp:\/\/127\.0\.0\.1:\d+$/);
    expect(added).toContain('--enable-metrics');
    expect(added).toContain('--skip-tokenizer-init');
    expect(added).not.toContain('--disaggregation-mode');
    // Environment: the worker's own passes through, Python output unbuffered.
    expect(rec!.env.CUDA_VISIBLE_DEVICES).toBe('3');
    expect(rec!.env.PYTHONUNBUFFERED).toBe('1');
    // The engine's output is in the worker's log: its text lines as records tagged source engine.
    const logged = w.stderr().trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(logged.some((r) => r['source'] === 'engine' && r['role'] === 'worker')).toBe(true);

    const { client, hello, kv: events, loads } = await connect(url);
    expect(hello.card).toMatchObject({
      servedModelName: 'qwen-test',
      modelPath: 'Qwen/Qwen3-0.6B',
      pageSize: 16,
      role: 'agg',
      dpSize: 1,
      migrationLimit: 3,
      kvEvents: true,
      engine: 'sglang',
    });
    expect(hello.card.totalKvBlocks).toBe(Math.ceil(hello.card.maxTotalNumTokens / 16));
    // Requests stream from the engine itself, at the address the worker listens on.
    expect(hello.card.engineUrl).toBe(`http://127.0.0.1:${flag('--port')}`);
    const p = prompt(1, 80);
    const first = await collect(generate(client, request('a', p, 12)));
    expect(first.tokens).toHaveLength(12);
    expect(first.last.finishReason).toEqual({ type: 'length', length: 12 });
    const again = await collect(generate(client, request('b', p, 12)));
    expect(again.tokens).toEqual(first.tokens);
    expect(again.last.usage!.cachedTokens).toBeGreaterThanOrEqual(64);
    // KV events of the first request's prompt blocks reached the frontend.
    await waitFor(() => events.some((e) => e.kind === 'batch'), 'a KV-event batch');
    expect(events[0]).toMatchObject({ kind: 'reset', reason: 'join', dpRank: 0 });
    // Load reports come from the engine's own numbers.
    await waitFor(() => loads.length > 0, 'a load report');
    expect(loads.at(-1)!.ranks[0]).toMatchObject({ dpRank: 0, kvTotalBlocks: hello.card.totalKvBlocks });
  });

  it('refuses engine arguments kvgate owns, before starting anything', async () => {
    for (const [workerArgs, engineArgs, message] of [
      [['--engine', 'sglang'], [...userArgs, '--port', '30000'], 'do not pass --port'],
      [['--engine', 'sglang'], [...userArgs, '--kv-events-config', '{"publisher":"zmq"}'], 'do not pass --kv-events-config'],
      [['--engine', 'sglang', '--role', 'prefill'], [...userArgs, '--disaggregation-mode', 'decode'], 'contradicts --role prefill'],
    ] as const) {
      const w = startWorker([...workerArgs], [...engineArgs]);
      expect(await w.exited).toBe(1);
      expect(w.stderr()).toContain(message);
      expect(records(w)).toHaveLength(0);
    }
  });

  it('stops the engine it started when the request-plane port is taken', async () => {
    const first = startWorker(['--engine', 'sglang'], userArgs);
    const { url } = await first.ready;
    const port = new URL(url).port;
    const second = startWorker(['--engine', 'sglang', '--port', port], userArgs);
    expect(await second.exited).toBe(1);
    expect(second.stderr()).toContain(`request plane cannot listen on 127.0.0.1:${port}`);
    const [rec] = records(second);
    expect(alive(rec!.pid)).toBe(false);
  });

  it('gives up when the engine is not healthy by the deadline, and stops it', async () => {
    // The mocker answers /health with 503 during its start-up delay.
    const w = startWorker(['--engine', 'sglang', '--startup-timeout', '2'], [...userArgs, '--startup-delay', '600']);
    expect(await w.exited).toBe(1);
    expect(w.stderr()).toMatch(/did not become healthy \(GET \/health\) within 2 s/);
    const [rec] = records(w);
    expect(rec).toBeDefined();
    expect(alive(rec!.pid)).toBe(false);
  });

  it('waits through a slow start-up', async () => {
    const w = startWorker(['--engine', 'sglang', '--startup-timeout', '60'], [...userArgs, '--startup-delay', '1.5']);
    await w.ready;
    // Slowness is not a failure: the engine was not restarted. (A launch lost to a port
    // taken by another process is retried on fresh ports; that is not a restart.)
    expect(w.stderr()).not.toMatch(/restarting the engine|did not become healthy/);
  });

  it('starts again on fresh ports when the engine exits before it is healthy', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kvgate-fail-once-'));
    dirs.push(dir);
    const w = startWorker(['--engine', 'sglang'], userArgs, { FAKE_PYTHON_FAIL_ONCE: join(dir, 'failed') });
    await w.ready;
    expect(w.stderr()).toMatch(/before it became healthy: starting again on fresh ports \(attempt 2 of 3\)/);
    const [first, second] = records(w);
    const port = (r: Record) => r.argv[r.argv.indexOf('--port') + 1];
    expect(second).toBeDefined();
    expect(port(second!)).not.toBe(port(first!));
    expect(alive(second!.pid)).toBe(true);
  });

  it('restarts a killed engine with backoff; frontends see the reset and the worker serves again', async () => {
    const w = startWorker(['--engine', 'sglang', '--restart-backoff', '0.2'], [...userArgs, '--speedup-ratio', '1']);
    const { url } = await w.ready;
    const { client, kv: events } = await connect(url);
    await collect(generate(client, request('warm', prompt(2), 2)));
    const inflight = collect(generate(client, request('doomed', prompt(3), 5000)));
    const [first] = records(w);
    await new Promise((r) => setTimeout(r, 300));
    process.kill(first!.pid, 'SIGKILL');
    // The request on the dead engine fails with a code that takes a worker out of routing.
    const failure = await inflight.then(() => null, (e: Error & { code?: string }) => e);
    expect(failure, `${failure?.message}\n${w.stderr().slice(-2000)}`).toMatchObject({ code: 'engine_unavailable' });
    await waitFor(() => records(w).length === 2, 'the engine restarted');
    const second = records(w)[1]!;
    expect(second.pid).not.toBe(first!.pid);
    expect(second.argv.slice(0, 2 + userArgs.length)).toEqual(first!.argv.slice(0, 2 + userArgs.length));
    expect(w.stderr()).toMatch(/killed by SIGKILL/);
    expect(w.stderr()).toMatch(/restarting the engine in 200 ms/);
    await waitFor(() => events.some((e) => e.kind === 'reset' && e.reason === 'engine_restart'), 'the restart reset');
    await waitFor(() => w.stderr().includes(`engine ready (pid ${second.pid}`), 'the new engine ready');
    // The new engine listens on fresh ports: the worker's new Hello names it.
    await waitFor(() => client.hello?.card.engineUrl === `http://127.0.0.1:${second.argv[second.argv.indexOf('--port') + 1]}`, 'the new engine URL');
    const after = await collect(generate(client, request('after', prompt(4), 4)));
    expect(after.tokens).toHaveLength(4);
  });

  it('on SIGTERM closes its connections, lets the engine finish an in-flight stream, then stops it', async () => {
    const w = startWorker(['--engine', 'sglang', '--drain-timeout', '60'], [...userArgs, '--speedup-ratio', '1']);
    const { url, enginePid } = await w.ready;
    const { client } = await connect(url);
    const chunks: number[] = [];
    let done: GenerateChunk | undefined;
    const stream = (async () => {
      for await (const c of generate(client, request('long', prompt(5), 150))) {
        chunks.push(...c.tokenIds);
        if (c.finishReason) done = c;
      }
    })();
    await waitFor(() => chunks.length >= 3, 'the stream started');
    w.proc.kill('SIGTERM');
    await waitFor(() => w.stderr().includes('draining'), 'drain started');
    // Frontends see the connection close, which takes the worker out of their routing.
    await waitFor(() => !client.connected, 'the connection closed');
    await stream;
    expect(chunks).toHaveLength(150);
    expect(done!.finishReason).toEqual({ type: 'length', length: 150 });
    expect(await w.exited).toBe(0);
    expect(alive(enginePid)).toBe(false);
  });

  it('a frontend connecting late gets the engine\'s KV state rebuilt, then follows it live', async () => {
    const w = startWorker(['--engine', 'sglang'], userArgs);
    const { url } = await w.ready;
    const a = await connect(url);
    const viewA = new FrontendView();
    a.kv.forEach((e) => viewA.apply(e));
    a.client.onKvEvent((e) => viewA.apply(e));
    for (let i = 0; i < 6; i++) await collect(generate(a.client, request(`early${i}`, prompt(10 + i, 96), 4)));
    await waitFor(() => viewA.blocks.size >= 6 * 6, 'the early requests\' blocks');
    await new Promise((r) => setTimeout(r, 300));
    const b = await connect(url);
    const viewB = new FrontendView();
    b.client.onKvEvent((e) => viewB.apply(e));
    b.kv.forEach((e) => viewB.apply(e));
    const same = () => viewB.equals(viewA.blocks);
    await waitFor(same, 'B rebuilt');
    expect(viewB.resets).toEqual(['join']);
    await collect(generate(b.client, request('late', prompt(20, 96), 4)));
    await waitFor(() => viewA.blocks.size >= 7 * 6 && same(), 'both following the new blocks');
  });

  it('stops the whole engine process group, SIGKILL for what ignores SIGTERM, on shutdown and after a crash', async () => {
    const w = startWorker(['--engine', 'sglang', '--stop-grace', '1', '--restart-backoff', '0.1'], userArgs, { FAKE_PYTHON_STRAGGLER: '1' });
    await w.ready;
    const [first] = records(w);
    expect(alive(first!.straggler!)).toBe(true);
    // Crash: the engine dies, its straggler is cleaned up before the restart.
    process.kill(first!.pid, 'SIGKILL');
    await waitFor(() => records(w).length === 2, 'the restart');
    expect(alive(first!.straggler!)).toBe(false);
    await waitFor(() => w.stderr().includes(`engine ready (pid ${records(w)[1]!.pid}`), 'the new engine ready');
    // Shutdown: SIGTERM, and SIGKILL after the grace period for the straggler.
    const second = records(w)[1]!;
    w.proc.kill('SIGTERM');
    expect(await w.exited).toBe(0);
    expect(alive(second.pid)).toBe(false);
    expect(alive(second.straggler!)).toBe(false);
  });

  it('prefill role: bootstrap port on the command line and in the card', async () => {
    const w = startWorker(['--engine', 'sglang', '--role', 'prefill', '--advertise-host', '127.0.0.1'], userArgs);
    const { url } = await w.ready;
    const [rec] = records(w);
    const i = rec!.argv.indexOf('--disaggregation-bootstrap-port');
    expect(rec!.argv[rec!.argv.indexOf('--disaggregation-mode') + 1]).toBe('prefill');
    const { hello } = await connect(url);
    expect(hello.card).toMatchObject({ role: 'prefill', bootstrapHost: '127.0.0.1', bootstrapPort: Number(rec!.argv[i + 1]) });
  });

  it('dp size 2: one KV-event port per rank, events of both ranks relayed', async () => {
    const w = startWorker(['--engine', 'sglang'], [...userArgs, '--dp-size', '2']);
    const { url } = await w.ready;
    const { client, hello, kv: events } = await connect(url);
    expect(hello.card.dpSize).toBe(2);
    await Promise.all([0, 1].map((dpRank) => collect(generate(client, { ...request(`r${dpRank}`, prompt(7 + dpRank), 2), dpRank }))));
    await waitFor(() => [0, 1].every((r) => events.some((e) => e.kind === 'batch' && e.dpRank === r)), 'batches from both ranks');
  });
});

describe('kvgate worker --engine-protocol grpc', () => {
  it('starts SGLang with --grpc-mode and serves it over the gRPC API: card, generation, cached tokens, KV events, load', async () => {
    const w = startWorker(['--engine', 'sglang', '--engine-protocol', 'grpc', '--load-interval', '0.05'], userArgs);
    const { url } = await w.ready;
    expect(w.stdout()).toContain('engine_protocol=grpc');
    const [rec] = records(w);
    const added = rec!.argv.slice(2 + userArgs.length);
    expect(added).toContain('--grpc-mode');
    expect(added).toContain('--skip-tokenizer-init');
    const { client, hello, kv: events, loads } = await connect(url);
    expect(hello.card).toMatchObject({ servedModelName: 'qwen-test', pageSize: 16, role: 'agg', dpSize: 1, engine: 'sglang', kvEvents: true });
    // Frontends stream from the engine's gRPC API: the card says so by its URL.
    expect(hello.card.engineUrl).toBe(`grpc://127.0.0.1:${added[added.indexOf('--port') + 1]}`);
    const p = prompt(11, 80);
    const first = await collect(generate(client, request('ga', p, 10)));
    expect(first.tokens).toHaveLength(10);
    expect(first.last.finishReason).toEqual({ type: 'length', length: 10 });
    const again = await collect(generate(client, request('gb', p, 10)));
    expect(again.tokens).toEqual(first.tokens);
    expect(again.last.usage!.cachedTokens).toBe(64);
    await waitFor(() => events.some((e) => e.kind === 'batch'), 'a KV-event batch');
    // Load comes from the GetLoads RPC.
    await waitFor(() => loads.length > 0, 'a load report');
    expect(loads.at(-1)!.ranks[0]).toMatchObject({ dpRank: 0, kvTotalBlocks: hello.card.totalKvBlocks });
  });

  it('--engine mocker --engine-protocol grpc runs the mocker\'s gRPC service', async () => {
    const w = startWorker(['--engine', 'mocker', '--engine-protocol', 'grpc'], userArgs);
    const { url } = await w.ready;
    expect(w.stderr()).toMatch(/ mocker --model-path .* --grpc-mode/);
    const { client, hello } = await connect(url);
    expect(hello.card).toMatchObject({ servedModelName: 'qwen-test', engine: 'mocker' });
    expect((await collect(generate(client, request('gm', prompt(12), 3)))).tokens).toHaveLength(3);
  });

  it('refuses --grpc-mode among the engine arguments, naming the worker flag', async () => {
    const w = startWorker(['--engine', 'sglang'], [...userArgs, '--grpc-mode']);
    expect(await w.exited).toBe(1);
    expect(w.stderr()).toContain('--engine-protocol grpc');
    expect(records(w)).toHaveLength(0);
  });
});

describe('kvgate worker --engine mocker', () => {
  it('runs this kvgate as the engine, with the same engine arguments', async () => {
    const w = startWorker(['--engine', 'mocker'], userArgs);
    const { url, enginePid } = await w.ready;
    expect(records(w)).toHaveLength(0); // no python involved
    expect(w.stderr()).toContain(`${cli} mocker --model-path Qwen/Qwen3-0.6B`);
    const { client, hello } = await connect(url);
    expect(hello.card).toMatchObject({ servedModelName: 'qwen-test', engine: 'mocker' });
    expect((await collect(generate(client, request('m', prompt(9), 3)))).tokens).toHaveLength(3);
    w.proc.kill('SIGTERM');
    expect(await w.exited).toBe(0);
    expect(alive(enginePid)).toBe(false);
  });
});
