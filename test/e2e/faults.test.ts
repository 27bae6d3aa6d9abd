// Faults end to end, with real worker processes: a worker that dies under a steady stream of
// requests leaves the index and loses no request (the ones it held move to the others before
// their first token), and an engine's cache flush empties that worker in the index.

import { afterEach, describe, expect, it } from 'vitest';
import { sharedPrefixWorkload } from '../../bench/http/shared_prefix.js';
import { alive, metricByWorker, MODEL, serve, startCluster, waitFor, type Cluster, type Serving } from './stack.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function system(workers: number): Promise<{ cluster: Cluster; stack: Serving }> {
  const cluster = await startCluster(workers, ['--speedup-ratio', '20']);
  cleanups.push(() => cluster.stop());
  const stack = await serve(cluster.workers.map((w) => w.url));
  cleanups.push(() => stack.close());
  return { cluster, stack };
}

const cachedByWorker = (stack: Serving) => {
  const out = new Map<string, number>();
  for (const u of stack.set.unitRows()) out.set(u.worker, (out.get(u.worker) ?? 0) + u.cachedBlocks);
  return out;
};

const signalGroup = (pid: number, sig: NodeJS.Signals) => {
  try {
    process.kill(-pid, sig);
  } catch {
    /* gone */
  }
};

const requests = sharedPrefixWorkload({ groups: 6, perGroup: 40, systemWords: 300, seed: 7 });

describe('faults', () => {
  it('a worker killed under load leaves the index; its requests move to the others and none is lost', { timeout: 90_000 }, async () => {
    const { cluster, stack } = await system(3);
    // Warm up: every group's prefix lands on some worker.
    for (const r of requests.slice(0, 24)) await stack.client.chat.completions.create({ model: MODEL, messages: r.messages, max_tokens: 2 });
    await waitFor(() => [...cachedByWorker(stack).values()].filter((n) => n > 0).length === 3, 'every worker holds blocks');
    const before = cachedByWorker(stack);
    const victim = cluster.workers.reduce((a, b) => ((before.get(a.url) ?? 0) >= (before.get(b.url) ?? 0) ? a : b));
    // /metrics shows the index; the warm-up's last KV events may still be arriving, so
    // compare the two once a read of each agrees (or fail on the last disagreement).
    let shown: [number | undefined, number | undefined] = [undefined, undefined];
    const agree = async () => {
      shown = [(await metricByWorker(stack.url, 'kvgate_router_worker_cached_blocks')).get(victim.url), cachedByWorker(stack).get(victim.url)];
      return shown[0] === shown[1];
    };
    await waitFor(agree, 'the metric to show the index', 5_000).catch(() => undefined);
    expect(shown[0]).toBe(shown[1]);

    // Freeze the victim's engine, so that what is routed to it is stuck before its first
    // token when the worker dies (a request already streaming would need migration).
    signalGroup(victim.enginePid, 'SIGSTOP');
    let running = true;
    const ok: number[] = [];
    const failures: string[] = [];
    let next = 24;
    const loop = async (n: number) => {
      while (running) {
        const r = requests[next++ % requests.length]!;
        try {
          if (n % 2 === 0) {
            const res = await stack.client.chat.completions.create({ model: MODEL, messages: r.messages, max_tokens: 8 });
            if (res.choices[0]!.message.content === null) throw new Error('no content');
          } else {
            const s = await stack.client.chat.completions.create({ model: MODEL, messages: r.messages, max_tokens: 8, stream: true });
            let finish = null;
            for await (const c of s) finish = c.choices[0]?.finish_reason ?? finish;
            if (!finish) throw new Error('stream ended without a finish reason');
          }
          ok.push(Date.now());
        } catch (err) {
          failures.push(String((err as Error).message));
        }
      }
    };
    const loops = [0, 1, 2, 3].map(loop);
    try {
      await waitFor(() => (stack.set.unitRows().find((u) => u.worker === victim.url)?.activeRequests ?? 0) >= 2, 'requests stuck on the frozen worker');
      // The worker dies: its agent, and its engine with it.
      process.kill(victim.pid, 'SIGKILL');
      signalGroup(victim.enginePid, 'SIGKILL');
      const killedAt = Date.now();
      await waitFor(() => !stack.set.unitRows().some((u) => u.worker === victim.url), 'the victim out of the index');
      const decisions = async () => (await metricByWorker(stack.url, 'kvgate_router_decisions_total')).get(victim.url) ?? 0;
      const routedToVictim = await decisions();
      await waitFor(() => ok.filter((t) => t > killedAt).length >= 30, 'requests served after the kill', 60_000);
      expect(await decisions()).toBe(routedToVictim);
    } finally {
      running = false;
      await Promise.all(loops);
    }
    expect(failures).toEqual([]);
    expect(ok.length).toBeGreaterThan(30);
    // Its blocks left the index (the others hold the moved groups' prefixes by now).
    expect(stack.set.routerStats(MODEL)).toMatchObject({ candidates: 2, units: 2 });
    expect((await metricByWorker(stack.url, 'kvgate_router_worker_cached_blocks')).has(victim.url)).toBe(false);
    const retries = /^kvgate_router_retries_total\{[^}]*\} (\d+)$/m.exec(await (await fetch(`${stack.url}/metrics`)).text());
    expect(Number(retries?.[1])).toBeGreaterThanOrEqual(2);
    const health = (await (await fetch(`${stack.url}/health`)).json()) as { models: Record<string, number>; workers: { name: string; healthy: boolean }[] };
    expect(health.models[MODEL]).toBe(2);
    expect(health.workers.find((w) => w.name === victim.url)!.healthy).toBe(false);
    expect(alive(victim.pid) || alive(victim.enginePid)).toBe(false);
  });

  it('an engine cache flush clears that worker in the index', { timeout: 60_000 }, async () => {
    const { cluster, stack } = await system(2);
    for (const r of requests.slice(0, 16)) await stack.client.chat.completions.create({ model: MODEL, messages: r.messages, max_tokens: 2 });
    await waitFor(() => [...cachedByWorker(stack).values()].every((n) => n > 0) && cachedByWorker(stack).size === 2, 'both workers hold blocks');
    // The last requests' events (their output blocks) may still be on their way.
    let before = cachedByWorker(stack);
    for (;;) {
      await new Promise((r) => setTimeout(r, 300));
      const now = cachedByWorker(stack);
      if ([...now].every(([w, n]) => before.get(w) === n)) break;
      before = now;
    }
    const [flushed, kept] = cluster.workers;
    const res = await fetch(`${cluster.engineUrl(flushed!.index)}/flush_cache`, { method: 'POST' });
    expect(res.status).toBe(200);
    await waitFor(() => cachedByWorker(stack).get(flushed!.url) === 0, 'the flushed worker empty in the index');
    expect(cachedByWorker(stack).get(kept!.url)).toBe(before.get(kept!.url));
    const gauge = await metricByWorker(stack.url, 'kvgate_router_worker_cached_blocks');
    expect([gauge.get(flushed!.url), gauge.get(kept!.url)]).toEqual([0, before.get(kept!.url)]);
    // Still a candidate: the next prompt it is given is cached again.
    expect(stack.set.readyCount(MODEL)).toBe(2);
  });
});
