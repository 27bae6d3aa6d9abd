// Unhealthy-worker avoidance end to end, with real worker processes (agents and mocker
// engines) and the frontend over HTTP: a busy worker is passed over while another is free,
// an engine that stops reading its socket (SIGSTOP: the kernel still accepts, nothing is read
// or answered) and engines that answer slowly (a slow first token, slow tokens after it) lose
// their requests to the others through the first-token and stream-idle timeouts, are set
// aside and readmitted. After each run every active gauge is 0 and the frontend's heap is
// back near where it started.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterEach, describe, expect, it } from 'vitest';
import { ACTIVE_GAUGES, metricSums, mockerTokens, streamOnce, type StreamResult } from '../../bench/chaos/load.js';
import type { KvWorkerSetOptions } from '../../src/router/kv_worker_set.js';
import { metricByWorker, MODEL, serve, startCluster, waitFor, type Cluster, type Serving } from './stack.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function cluster(n: number, engineArgs: string[]): Promise<Cluster> {
  const c = await startCluster(n, engineArgs);
  cleanups.push(() => c.stop());
  return c;
}

async function frontend(urls: string[], options: KvWorkerSetOptions): Promise<Serving> {
  const s = await serve(urls, options);
  cleanups.push(() => s.close());
  return s;
}

const signalGroup = (pid: number, sig: NodeJS.Signals) => {
  try {
    process.kill(-pid, sig);
  } catch {
    /* gone */
  }
};

// The heap after a full collection, in MiB (this process is the frontend).
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
function heapMiB(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

async function gaugesSettle(url: string): Promise<Record<string, number>> {
  let g = await metricSums(url, ACTIVE_GAUGES);
  for (let i = 0; i < 100 && Object.values(g).some((v) => v !== 0); i++) {
    await new Promise((r) => setTimeout(r, 100));
    g = await metricSums(url, ACTIVE_GAUGES);
  }
  return g;
}
const idle = Object.fromEntries(ACTIVE_GAUGES.map((g) => [g, 0]));

// `n` streaming completions (more while `more()` says so), `concurrency` at a time, each
// checked (exactly maxTokens tokens, one finish, usage once) and bounded by its deadline.
async function load(url: string, n: number, concurrency: number, maxTokens: number, deadlineMs: number, more: () => boolean = () => false): Promise<StreamResult[]> {
  const results: StreamResult[] = [];
  let next = 0;
  const prompts = Array.from({ length: 8 }, (_, i) => `Avoidance prompt ${i}: ${'slow engines and stuck sockets. '.repeat(6 + i)}`);
  const loop = async () => {
    while (next < n || more()) {
      const i = next++;
      results.push(await streamOnce({ url, model: MODEL, prompt: prompts[i % prompts.length]!, maxTokens, deadlineMs, countTokens: mockerTokens }));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, loop));
  return results;
}

// Records each named worker's healthy/unhealthy changes as the frontend sees them.
function watchHealth(stack: Serving, names: string[]): { seen: Map<string, string[]>; stop: () => void } {
  const seen = new Map(names.map((n) => [n, [] as string[]]));
  const t = setInterval(() => {
    for (const w of stack.set.workers()) {
      const s = seen.get(w.name);
      const now = w.healthy ? 'up' : `down: ${w.reason}`;
      if (s && (s.length === 0 || (s.at(-1) === 'up') !== w.healthy)) s.push(now);
    }
  }, 20);
  return { seen, stop: () => clearInterval(t) };
}

const heapBound = 64; // MiB over the baseline: far above noise, far below a per-request leak

describe('unhealthy-worker avoidance', () => {
  it('passes a busy worker over while another is free, refuses with 503 when both are busy, and serves again once they are not', { timeout: 90_000 }, async () => {
    // 4,096 KV tokens per engine; decode slowed so a long request stays in the cache.
    const c = await cluster(2, ['--max-total-tokens', '4096', '--decode-speedup-ratio', '0.05']);
    const stack = await frontend(c.workers.map((w) => w.url), { busyThreshold: 0.3 });
    const busyOf = async () => metricByWorker(stack.url, 'kvgate_router_worker_busy');
    const decisions = async () => metricByWorker(stack.url, 'kvgate_router_decisions_total');
    const hogText = (tag: string) => `${tag} ${'hog of the cache '.repeat(400)}`; // about 1,600 tokens
    const hogs: AbortController[] = [];
    const hog = (tag: string) => {
      const ctl = new AbortController();
      hogs.push(ctl);
      const done = fetch(`${stack.url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, prompt: hogText(tag), max_tokens: 2000, ignore_eos: true, stream: true }),
        signal: ctl.signal,
      })
        .then(async (res) => {
          for await (const _ of res.body as unknown as AsyncIterable<Uint8Array>) if (ctl.signal.aborted) break;
        })
        .catch(() => undefined);
      return done;
    };
    const ask = (prompt: string) =>
      fetch(`${stack.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, prompt, max_tokens: 2 }) });

    const hogA = hog('first');
    await waitFor(async () => [...(await busyOf()).values()].includes(1), 'the first long request makes its worker busy', 30_000);
    const busy = [...(await busyOf())].find(([, v]) => v === 1)![0];
    const free = c.workers.map((w) => w.url).find((u) => u !== busy)!;
    // The long prompt's first 500 tokens or so (too few to make a worker busy): the busy
    // worker holds them in its cache, and still gets none of these.
    const before = await decisions();
    for (let i = 0; i < 6; i++) expect((await ask(hogText('first').slice(0, 2000))).status).toBe(200);
    const after = await decisions();
    expect(after.get(busy) ?? 0).toBe(before.get(busy) ?? 0);
    expect((after.get(free) ?? 0) - (before.get(free) ?? 0)).toBe(6);

    // A second long request goes to the free worker; with both busy, new requests are refused.
    const hogB = hog('second');
    await waitFor(async () => [...(await busyOf()).values()].every((v) => v === 1), 'both workers busy', 30_000);
    const refused = await ask('anything');
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('workers_busy');

    // The long requests leave (their clients go): both workers free again, and serve.
    for (const h of hogs) h.abort();
    await Promise.all([hogA, hogB]);
    await waitFor(async () => [...(await busyOf()).values()].every((v) => v === 0), 'both workers free again', 30_000);
    for (let i = 0; i < 4; i++) expect((await ask(`free again ${i}`)).status).toBe(200);
    expect(await gaugesSettle(stack.url)).toEqual(idle);
  });

  it('an engine that stops reading its socket loses its requests to the others, is set aside, and is readmitted once it reads again', { timeout: 120_000 }, async () => {
    const c = await cluster(3, ['--speedup-ratio', '20']);
    const stack = await frontend(c.workers.map((w) => w.url), { migrationLimit: 3, firstTokenTimeoutMs: 1000, streamIdleTimeoutMs: 1000, penaltyMs: 1000 });
    await load(stack.url, 24, 4, 16, 30_000); // warm-up
    const heapBefore = heapMiB();
    const victim = c.workers[0]!;
    const health = watchHealth(stack, [victim.url]);
    signalGroup(victim.enginePid, 'SIGSTOP');
    let results: StreamResult[];
    try {
      const running = load(stack.url, 120, 6, 24, 30_000);
      await waitFor(() => stack.set.workers().some((w) => w.name === victim.url && !w.healthy), 'the stopped engine set aside', 30_000);
      signalGroup(victim.enginePid, 'SIGCONT');
      results = await running;
      // Readmitted, as the watcher saw it last (on a loaded machine a 1 s first-token timeout may
      // set it aside once more on the way: it must come back up again).
      await waitFor(() => health.seen.get(victim.url)!.at(-1) === 'up', 'the engine readmitted', 30_000);
    } finally {
      signalGroup(victim.enginePid, 'SIGCONT');
      health.stop();
    }
    expect(results.filter((r) => !r.ok).map((r) => r.error)).toEqual([]);
    expect(results).toHaveLength(120);
    const seen = health.seen.get(victim.url)!;
    expect(seen[0]).toBe('up');
    expect(seen[1]).toMatch(/^down: worker \S+ sent (no first token within 1 s|nothing for 1 s mid-stream)/);
    expect(seen.at(-1)).toBe('up');
    // Requests moved on: retried before their first token, or migrated mid-stream.
    const moved = await metricSums(stack.url, ['kvgate_router_retries_total', 'kvgate_router_migrations_total']);
    expect(moved.kvgate_router_retries_total! + moved.kvgate_router_migrations_total!).toBeGreaterThan(0);
    // Readmitted: it takes requests again.
    const routed = async () => (await metricByWorker(stack.url, 'kvgate_router_decisions_total')).get(victim.url) ?? 0;
    const was = await routed();
    await load(stack.url, 12, 4, 8, 30_000);
    expect(await routed()).toBeGreaterThan(was);
    expect(await gaugesSettle(stack.url)).toEqual(idle);
    expect(heapMiB()).toBeLessThan(heapBefore + heapBound);
  });

  it('engines that answer slowly (first token, tokens after it) lose requests to timeouts; their breakers open and half-open; no request fails', { timeout: 150_000 }, async () => {
    const fast = await cluster(2, ['--speedup-ratio', '20']);
    // Prefill takes 1.7 s or more: past the 1 s first-token timeout (a one-token generation
    // check still passes within its 5 s).
    const slowFirst = await cluster(1, ['--speedup-ratio', '0.01']);
    // The first token comes at once, then about 1.4 s per token: past the 1 s idle timeout.
    const slowTokens = await cluster(1, ['--speedup-ratio', '20', '--decode-speedup-ratio', '0.0002']);
    const slow = [slowFirst.workers[0]!.url, slowTokens.workers[0]!.url];
    const stack = await frontend([...fast.workers.map((w) => w.url), ...slow], {
      migrationLimit: 3,
      firstTokenTimeoutMs: 1000,
      streamIdleTimeoutMs: 1000,
      penaltyMs: 500,
      breaker: { failureThreshold: 2, openMs: 1500 },
    });
    const heapBefore = heapMiB();
    const health = watchHealth(stack, slow);
    // Load until each slow worker was set aside for its timeout and came back (readmitted)
    // at least once, for at most 60 s.
    const cycled = (u: string, timeout: RegExp) => {
      const s = health.seen.get(u)!;
      return s.some((x) => timeout.test(x)) && s.filter((x) => x === 'up').length >= 2;
    };
    const done = () => cycled(slow[0]!, /sent no first token within 1 s/) && cycled(slow[1]!, /sent (no first token within|nothing for) 1 s/);
    const t0 = Date.now();
    let results: StreamResult[];
    try {
      results = await load(stack.url, 40, 6, 16, 45_000, () => !done() && Date.now() - t0 < 60_000);
    } finally {
      health.stop();
    }
    expect(results.filter((r) => !r.ok).map((r) => r.error)).toEqual([]);
    expect(results.length).toBeGreaterThanOrEqual(40);
    const [first, tokens] = slow.map((u) => health.seen.get(u)!);
    console.log(JSON.stringify([first, tokens], null, 1));
    expect(first!.some((s) => /sent no first token within 1 s/.test(s))).toBe(true);
    // Its first token can wait behind a slow decode step too; its timeouts mid-stream show as migrations.
    expect(tokens!.some((s) => /sent (no first token within|nothing for) 1 s/.test(s))).toBe(true);
    for (const s of [first!, tokens!]) expect(s.filter((x) => x === 'up').length, s.join('\n')).toBeGreaterThanOrEqual(2);
    const text = await (await fetch(`${stack.url}/metrics`)).text();
    const count = (re: RegExp) => [...text.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);
    expect(count(/^kvgate_router_retries_total\{[^}]*\} (\S+)$/gm)).toBeGreaterThan(0);
    expect(count(/^kvgate_router_migrations_total\{[^}]*cause="timeout"[^}]*\} (\S+)$/gm)).toBeGreaterThan(0);
    // The breakers acted on the repeated timeouts: opened, then let the workers back on probation.
    for (const u of slow) {
      const moves = (from: string, to: string) => count(new RegExp(`^kvgate_router_worker_circuit_transitions_total\\{[^}]*worker="${u}"[^}]*from_state="${from}",to_state="${to}"\\} (\\S+)$`, 'gm'));
      expect(moves('closed', 'open')).toBeGreaterThanOrEqual(1);
      expect(moves('open', 'half_open')).toBeGreaterThanOrEqual(1);
    }
    // The fast workers never failed.
    for (const w of fast.workers) expect(text).not.toMatch(new RegExp(`kvgate_router_worker_circuit_transitions_total\\{[^}]*worker="${w.url}"`));
    expect(await gaugesSettle(stack.url)).toEqual(idle);
    expect(heapMiB()).toBeLessThan(heapBefore + heapBound);
  });
});
