// What an operator sees of a real `kvgate serve` (spawned mocker workers): a worker killed
// hard is started again on fresh ports while /health reads degraded, and the new worker
// serves; every log line of serve, its workers and their engines is one JSON object, with
// one request line per request; /metrics uses the standard process metric names and no
// gauge ends in `_total`. And a worker bound beyond loopback says loudly that anyone can use it.

import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { Processes } from '../fixtures/processes.js';
import { alive, MODEL, waitFor } from './stack.js';

const procs = new Processes();
afterEach(() => procs.reap());
const kvgate = (args: string[], env?: NodeJS.ProcessEnv) => procs.kvgate(args, env ? { env } : {});

type Rec = Record<string, unknown>;
const records = (text: string): Rec[] =>
  text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as Rec;
      } catch {
        throw new Error(`a log line is not JSON: ${l}`);
      }
    });

interface Health {
  status: string;
  models: Record<string, number>;
  workers: { name: string; healthy: boolean; reason?: string }[];
}
const health = async (url: string) => (await (await fetch(`${url}/health`)).json()) as Health;

describe('kvgate serve, operations', () => {
  it('respawns a SIGKILLed worker on fresh ports (degraded meanwhile); logs are JSON lines; metric names are standard', { timeout: 120_000 }, async () => {
    const serve = kvgate(['serve', '--port', '0', '--router-mode', 'round-robin']);
    await waitFor(() => /listening on http:\/\/\S+/.test(serve.stdout()) || serve.proc.exitCode !== null, 'the frontend', 60_000);
    const url = /listening on (http:\/\/\S+)/.exec(serve.stdout())?.[1];
    if (!url) throw new Error(`kvgate serve did not start:\n${serve.stderr().slice(-3000)}`);
    const agents = [.../pids (\d+), (\d+)\)/.exec(serve.stdout())!.slice(1)].map(Number);
    procs.stray(...agents);
    const before = await health(url);
    expect(before.status).toBe('healthy');
    const oldUrls = before.workers.map((w) => w.name);

    process.kill(agents[0]!, 'SIGKILL');
    await waitFor(async () => (await health(url)).status === 'degraded', '/health to read degraded', 20_000);
    const degraded = await health(url);
    expect(degraded.models[MODEL]).toBe(1);
    expect(degraded.workers.find((w) => !w.healthy)?.reason).toMatch(/worker 0 .*killed by SIGKILL|worker 0 starting again/);
    // The survivor serves meanwhile.
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 30_000 });
    const during = await client.completions.create({ model: MODEL, prompt: 'while one is down', max_tokens: 4 });
    expect(during.choices[0]!.text.length).toBeGreaterThan(0);

    await waitFor(async () => (await health(url)).status === 'healthy', 'the respawned worker', 60_000);
    const after = await health(url);
    expect(after.models[MODEL]).toBe(2);
    const fresh = after.workers.map((w) => w.name).filter((n) => !oldUrls.includes(n));
    expect(fresh).toHaveLength(1);
    // Round robin over both: the new worker takes requests.
    for (let i = 0; i < 4; i++) await client.completions.create({ model: MODEL, prompt: `request ${i}`, max_tokens: 4 });
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const served = new RegExp(`^kvgate_frontend_worker_requests_total\\{[^}]*worker="${fresh[0]}"[^}]*\\} (\\d+)`, 'm').exec(metrics);
    expect(Number(served?.[1])).toBeGreaterThanOrEqual(2);

    // Metric names: the standard process metrics, no gauge named like a counter, ratios say so.
    expect(metrics).toMatch(/^# TYPE process_cpu_seconds_total counter$/m);
    expect(metrics).toMatch(/^# TYPE process_resident_memory_bytes gauge$/m);
    expect(metrics).toMatch(/^# TYPE nodejs_heap_size_total_bytes gauge$/m);
    expect(metrics).not.toMatch(/kvgate_frontend_(process|nodejs)_/);
    expect([...metrics.matchAll(/^# TYPE (\S+_total) gauge$/gm)].map((m) => m[1])).toEqual([]);
    expect(metrics).toMatch(/^# TYPE kvgate_router_kv_hit_ratio histogram$/m);

    // A refused request gets its line too, with the error code.
    const refused = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'nope', prompt: 'x' }) });
    expect(refused.status).toBe(404);

    serve.proc.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
    // Logs: every stderr line of serve, its workers and their engines is one JSON object.
    const logged = records(serve.stderr());
    expect(logged.every((r) => typeof r['ts'] === 'string' && typeof r['level'] === 'string' && typeof r['msg'] === 'string')).toBe(true);
    expect(logged.some((r) => r['worker'] === 1 && r['role'] === 'worker')).toBe(true);
    expect(logged.some((r) => r['worker'] === 0 && r['source'] === 'engine' && r['role'] === 'mocker')).toBe(true);
    expect(logged.some((r) => typeof r['msg'] === 'string' && r['msg'].includes('{"ts"'))).toBe(false);
    const requests = logged.filter((r) => r['msg'] === 'request' && r['status'] === 'success');
    expect(requests).toHaveLength(5);
    expect(logged.filter((r) => r['msg'] === 'request' && r['status'] === 'error')).toMatchObject([
      { level: 'info', endpoint: 'completions', status: 'error', error: 'model_not_found', id: null, worker: null, ttftMs: null },
    ]);
    for (const r of requests) {
      expect(r).toMatchObject({ level: 'info', role: 'frontend', model: MODEL, status: 'success' });
      expect(r['completionTokens']).toBeGreaterThan(0);
      expect(r['completionTokens']).toBeLessThanOrEqual(4);
      expect(r['id']).toMatch(/^[0-9a-f]{32}$/);
      expect(r['worker']).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
      expect(r['promptTokens']).toBeGreaterThan(0);
      expect(r['ttftMs']).toBeGreaterThan(0);
      expect(r['durationMs']).toBeGreaterThanOrEqual(r['ttftMs'] as number);
    }
    expect(agents.filter(alive)).toEqual([]);
  });

  it('--log-format text writes readable lines, its workers\' included', { timeout: 60_000 }, async () => {
    const serve = kvgate(['serve', '--port', '0', '--workers', '1', '--log-format', 'text']);
    await waitFor(() => /listening on http:\/\/\S+/.test(serve.stdout()) || serve.proc.exitCode !== null, 'the frontend', 60_000);
    serve.proc.kill('SIGTERM');
    expect(await serve.exited).toBe(0);
    const lines = serve.stderr().trim().split('\n');
    expect(lines.some((l) => l.startsWith('{'))).toBe(false);
    expect(lines).toContainEqual(expect.stringMatching(/^\S+Z INFO {2}\[frontend\] starting 1 mocker worker\(s\)/));
    expect(lines).toContainEqual(expect.stringMatching(/^\S+Z INFO {2}\[mocker worker=0 source=engine\] serving url=http:\/\/127\.0\.0\.1:\d+/));
  });
});

describe('kvgate worker, request-plane address', () => {
  const ready = async (w: ReturnType<typeof kvgate>) => {
    await waitFor(() => /kvgate worker ready: ws:\/\/\S+/.test(w.stdout()) || w.proc.exitCode !== null, 'the worker', 60_000);
    return /kvgate worker ready: (ws:\/\/\S+)/.exec(w.stdout())![1]!;
  };
  const warnings = (w: ReturnType<typeof kvgate>) => records(w.stderr()).filter((r) => r['level'] === 'warn' && r['unauthenticated'] === true);

  it('binds 127.0.0.1 by default, quietly', { timeout: 60_000 }, async () => {
    const w = kvgate(['worker', '--engine', 'mocker', '--port', '0']);
    expect(await ready(w)).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    expect(warnings(w)).toEqual([]);
  });

  it('warns once, at warn level, when bound beyond loopback', { timeout: 60_000 }, async () => {
    const w = kvgate(['worker', '--engine', 'mocker', '--port', '0', '--host', '0.0.0.0']);
    await ready(w);
    const warned = warnings(w);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatchObject({ role: 'worker', host: '0.0.0.0' });
    expect(warned[0]!['msg']).toMatch(/WITHOUT AUTHENTICATION of the request plane \(no cluster token\) and the engine \(no engine API key\)/);
  });

  it('binds beyond loopback quietly when the cluster token and the engine API key protect both', { timeout: 60_000 }, async () => {
    const w = kvgate(['worker', '--engine', 'mocker', '--port', '0', '--host', '0.0.0.0'], { KVGATE_CLUSTER_TOKEN: 'op-token', KVGATE_ENGINE_API_KEY: 'op-key' });
    await ready(w);
    expect(warnings(w)).toEqual([]);
  });
});
