// The chaos runner (`npm run chaos`): streaming requests while engines fail, then a summary
// table. Every request must end within its deadline: complete and well formed with exactly
// max_tokens tokens, or (when it cannot be saved) a clean OpenAI error. After the load, every
// active gauge on /metrics must be back to zero, and (started deployments) the frontend's
// resident memory back within --rss-growth MiB of where it was after a warm-up.
//
//   npm run chaos                         starts `kvgate serve --workers 4 --migration-limit 3`
//                                         and SIGKILLs a random worker's engine every 3 s
//   npm run chaos -- --fault stall        instead SIGSTOPs one for --stall seconds (it accepts
//                                         connections and reads nothing), then SIGCONTs it
//   npm run chaos -- --fault slow         instead slows one for --stall seconds: stopped 2.5 s,
//                                         running 0.2 s, in turn (a slow first token, slow tokens)
//   npm run chaos -- --url http://h:8000  your deployment; faults are yours to inject, or
//                                         --kill-command 'cmd' runs every --kill-every seconds
// Options: --requests 1000 --concurrency 32 --max-tokens 64 --kill-every 3 --workers 4
//          --migration-limit 3 --deadline 60 (seconds per request) --model M --speedup-ratio 2
//          --stall 4 --timeout 1.5 (the started frontend's --first-token-timeout and
//          --stream-idle-timeout under stall and slow) --rss-growth 128

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseLogRecord } from '../../src/observability/log.js';
import { ACTIVE_GAUGES, metricSums, migrationsByCause, mockerTokens, streamOnce, type StreamResult } from './load.js';

export interface ChaosOptions {
  url?: string; // an existing deployment; unset: start one
  model?: string;
  requests: number;
  concurrency: number;
  maxTokens: number;
  killEveryMs: number; // 0: no faults
  killCommand?: string;
  // What happens to a started deployment's engine every killEveryMs (default kill).
  fault?: Fault;
  stallMs?: number; // stall and slow: how long (default 4 s)
  timeoutMs?: number; // stall and slow: the frontend's first-token and stream-idle timeouts (default 1.5 s)
  workers: number;
  migrationLimit: number;
  speedupRatio: number;
  deadlineMs: number;
  log?: (line: string) => void;
}

export const FAULTS = ['kill', 'stall', 'slow'] as const;
export type Fault = (typeof FAULTS)[number];

export interface ChaosSummary {
  requests: number;
  ok: number;
  failed: number;
  cleanErrors: number;
  failures: string[]; // distinct messages, at most 10
  fault: Fault;
  kills: number;
  migrations: Record<string, number>;
  retries: number;
  ttftP50: number;
  ttftP99: number;
  e2eP50: number;
  e2eP99: number;
  // Started deployments only (their request log says which requests migrated): p99 of the
  // requests that migrated at least once against those that did not.
  split: { migrated: Latency; unmigrated: Latency } | null;
  // Mean tokens a migration made the new worker prefill beyond its cached prefix.
  recomputedPerMigration: number;
  gaugesAfter: Record<string, number>;
  // Started deployments: the frontend process's resident memory after a warm-up (before the
  // faults) and after the load, in MiB.
  rssMiB: { before: number; after: number } | null;
  seconds: number;
}

export interface Latency {
  n: number;
  ttftP99: number;
  e2eP99: number;
}

const KVGATE_SRC = fileURLToPath(new URL('../../test/e2e/kvgate_cli.ts', import.meta.url));

// `kvgate serve` with spawned mocker workers, from the sources; its workers' engine pids
// are read from its log (the agents log each engine they start or restart).
class Deployment {
  url = '';
  model = '';
  private readonly enginePids = new Map<number, number>();
  // Request id -> migrations, from the frontend's request log lines.
  readonly migrationsById = new Map<string, number>();
  private proc!: ChildProcess;

  async start(o: ChaosOptions): Promise<void> {
    const timeouts = (o.fault ?? 'kill') === 'kill' ? [] : ['--first-token-timeout', String((o.timeoutMs ?? 1500) / 1000), '--stream-idle-timeout', String((o.timeoutMs ?? 1500) / 1000)];
    const args = ['--import', 'tsx', KVGATE_SRC, 'serve', '--port', '0', '--workers', String(o.workers), '--migration-limit', String(o.migrationLimit), ...timeouts, '--log-format', 'json', '--', '--speedup-ratio', String(o.speedupRatio)];
    this.proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let err = '';
    let partial = '';
    this.proc.stderr!.setEncoding('utf8').on('data', (s: string) => {
      err = (err + s).slice(-4000);
      const lines = (partial + s).split('\n');
      partial = lines.pop()!;
      for (const line of lines) this.onLog(line);
    });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      this.proc.stdout!.setEncoding('utf8').on('data', (s: string) => {
        out += s;
        const m = /listening on (http:\/\/\S+)\n\s+model:\s+(\S+)/.exec(out);
        if (m) {
          [this.url, this.model] = [m[1]!, m[2]!];
          resolve();
        }
      });
      this.proc.once('exit', (code) => reject(new Error(`kvgate serve exited (${code}): ${err}`)));
    });
  }

  private onLog(line: string): void {
    const r = parseLogRecord(line);
    if (r?.['msg'] === 'request' && typeof r['id'] === 'string') this.migrationsById.set(r['id'], Number(r['migrations'] ?? 0));
    if (!r || typeof r['worker'] !== 'number') return;
    const m = /engine_pid=(\d+)/.exec(String(r['msg'])) ?? /^engine ready \(pid (\d+),/.exec(String(r['msg']));
    if (m) this.enginePids.set(r['worker'], Number(m[1]));
  }

  // The frontend process's resident set, in MiB.
  rssMiB(): number {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${this.proc.pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  }

  // Engines stopped or slowed now (a second fault picks another).
  private readonly impaired = new Set<number>();
  private readonly timers = new Set<NodeJS.Timeout>();

  // One fault on a random worker's engine (its process group). kill: SIGKILL, its agent
  // starts a new one. stall: SIGSTOP for stallMs, then SIGCONT. slow: stopped 2.5 s and
  // running 0.2 s in turn for stallMs.
  fault(kind: Fault, stallMs: number): boolean {
    const pids = [...this.enginePids.values()].filter((p) => !this.impaired.has(p));
    if (pids.length === 0) return false;
    const pid = pids[Math.floor(Math.random() * pids.length)]!;
    const signal = (sig: NodeJS.Signals) => {
      try {
        process.kill(-pid, sig);
        return true;
      } catch {
        return false;
      }
    };
    if (kind === 'kill') return signal('SIGKILL');
    if (!signal('SIGSTOP')) return false;
    this.impaired.add(pid);
    const end = Date.now() + stallMs;
    const resume = () => {
      signal('SIGCONT');
      if (kind === 'slow' && Date.now() < end) return this.later(() => (signal('SIGSTOP'), this.later(resume, 2500)), 200);
      this.impaired.delete(pid);
    };
    this.later(resume, kind === 'slow' ? 2500 : stallMs);
    return true;
  }

  private later(fn: () => void, ms: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  // Every stopped engine runs again.
  resumeAll(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    for (const pid of this.impaired) {
      try {
        process.kill(-pid, 'SIGCONT');
      } catch {
        /* gone */
      }
    }
    this.impaired.clear();
  }

  async stop(): Promise<void> {
    const exited = new Promise((r) => this.proc.once('exit', r));
    if (this.proc.exitCode === null) this.proc.kill('SIGTERM');
    const t = setTimeout(() => {
      try {
        process.kill(-this.proc.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, 15_000);
    await exited;
    clearTimeout(t);
  }
}

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
};

async function retriesTotal(url: string): Promise<number> {
  return (await metricSums(url, ['kvgate_router_retries_total'])).kvgate_router_retries_total!;
}

async function recomputed(url: string): Promise<{ sum: number; count: number }> {
  const m = await metricSums(url, ['kvgate_router_migration_recomputed_tokens_sum', 'kvgate_router_migration_recomputed_tokens_count']);
  return { sum: m.kvgate_router_migration_recomputed_tokens_sum!, count: m.kvgate_router_migration_recomputed_tokens_count! };
}

const latency = (rs: StreamResult[]): Latency => ({ n: rs.length, ttftP99: pct(rs.map((r) => r.ttftMs!), 99), e2eP99: pct(rs.map((r) => r.e2eMs), 99) });

export async function runChaos(o: ChaosOptions): Promise<ChaosSummary> {
  const log = o.log ?? (() => undefined);
  const dep = o.url ? null : new Deployment();
  // Interrupted: no engine is left stopped, and the deployment goes with the runner.
  const interrupted = () => {
    dep?.resumeAll();
    void dep?.stop().finally(() => process.exit(130));
  };
  if (dep) for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, interrupted);
  try {
    if (dep) {
      await dep.start(o);
      log(`started kvgate serve at ${dep.url}: ${o.workers} mocker workers, --migration-limit ${o.migrationLimit}`);
    }
    const url = o.url ?? dep!.url;
    const model = o.model ?? dep?.model ?? ((await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] }).data[0]!.id;
    const prompts = Array.from({ length: 16 }, (_, i) => `Chaos prompt ${i}: ${'about caches, routers and engines. '.repeat(8 + i)}`);
    // A warm-up (not counted) before the memory baseline: first-use allocations are not growth.
    if (dep) await Promise.all(prompts.map((prompt) => streamOnce({ url, model, prompt, maxTokens: o.maxTokens, deadlineMs: o.deadlineMs })));
    const migrationsBefore = await migrationsByCause(url);
    const retriesBefore = await retriesTotal(url);
    const recomputedBefore = await recomputed(url);
    const rssBefore = dep?.rssMiB() ?? NaN;
    const t0 = performance.now();
    let kills = 0;
    const killer = o.killEveryMs > 0 && (dep || o.killCommand)
      ? setInterval(() => {
          if (dep ? dep.fault(o.fault ?? 'kill', o.stallMs ?? 4000) : spawnSync('sh', ['-c', o.killCommand!], { stdio: 'inherit' }).status === 0) kills++;
        }, o.killEveryMs)
      : null;
    const results: StreamResult[] = [];
    let next = 0;
    const worker = async () => {
      while (next < o.requests) {
        const i = next++;
        results.push(await streamOnce({ url, model, prompt: prompts[i % prompts.length]!, maxTokens: o.maxTokens, deadlineMs: o.deadlineMs, countTokens: dep ? mockerTokens : undefined }));
        if (results.length % 100 === 0) log(`${results.length}/${o.requests} done, ${kills} kills`);
      }
    };
    try {
      await Promise.all(Array.from({ length: o.concurrency }, worker));
    } finally {
      if (killer) clearInterval(killer);
      dep?.resumeAll();
    }
    const seconds = (performance.now() - t0) / 1000;
    // The gauges settle once the last streams' ends are processed.
    let gaugesAfter = await metricSums(url, ACTIVE_GAUGES);
    for (let i = 0; i < 100 && Object.values(gaugesAfter).some((v) => v !== 0); i++) {
      await new Promise((r) => setTimeout(r, 100));
      gaugesAfter = await metricSums(url, ACTIVE_GAUGES);
    }
    const migrationsAfter = await migrationsByCause(url);
    const migrations: Record<string, number> = {};
    for (const [k, v] of Object.entries(migrationsAfter)) if (v - (migrationsBefore[k] ?? 0) > 0) migrations[k] = v - (migrationsBefore[k] ?? 0);
    const ok = results.filter((r) => r.ok);
    const recomputedAfter = await recomputed(url);
    let split: ChaosSummary['split'] = null;
    if (dep) {
      // The last request log lines may still be on their way.
      await new Promise((r) => setTimeout(r, 500));
      const migrated = (r: StreamResult) => (dep.migrationsById.get(r.id!.replace(/^(chat)?cmpl-/, '')) ?? 0) > 0;
      split = { migrated: latency(ok.filter(migrated)), unmigrated: latency(ok.filter((r) => !migrated(r))) };
    }
    const failed = results.filter((r) => !r.ok);
    return {
      requests: results.length,
      ok: ok.length,
      failed: failed.length,
      cleanErrors: failed.filter((r) => r.cleanError).length,
      failures: [...new Set(failed.map((r) => r.error!))].slice(0, 10),
      fault: o.fault ?? 'kill',
      kills,
      migrations,
      retries: (await retriesTotal(url)) - retriesBefore,
      ttftP50: pct(ok.map((r) => r.ttftMs!), 50),
      ttftP99: pct(ok.map((r) => r.ttftMs!), 99),
      e2eP50: pct(ok.map((r) => r.e2eMs), 50),
      e2eP99: pct(ok.map((r) => r.e2eMs), 99),
      split,
      recomputedPerMigration: (recomputedAfter.sum - recomputedBefore.sum) / Math.max(1, recomputedAfter.count - recomputedBefore.count),
      gaugesAfter,
      rssMiB: dep ? { before: rssBefore, after: dep.rssMiB() } : null,
      seconds,
    };
  } finally {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.off(sig, interrupted);
    dep?.resumeAll();
    await dep?.stop();
  }
}

export function summaryTable(s: ChaosSummary): string {
  const rows: [string, string][] = [
    ['requests', String(s.requests)],
    ['ok', String(s.ok)],
    ['failed', `${s.failed} (${s.cleanErrors} clean OpenAI errors)`],
    [`engines ${s.fault === 'kill' ? 'killed' : s.fault === 'stall' ? 'stalled' : 'slowed'}`, String(s.kills)],
    ['migrations', Object.keys(s.migrations).length ? Object.entries(s.migrations).map(([k, v]) => `${k} ${v}`).join(', ') : '0'],
    ['retries before first token', String(s.retries)],
    ['TTFT p50 / p99 (ms)', `${s.ttftP50.toFixed(0)} / ${s.ttftP99.toFixed(0)}`],
    ['E2E p50 / p99 (ms)', `${s.e2eP50.toFixed(0)} / ${s.e2eP99.toFixed(0)}`],
    ...(s.split
      ? (['migrated', 'unmigrated'] as const).map((k): [string, string] => [`${k}: n, TTFT p99 / E2E p99 (ms)`, `${s.split![k].n}, ${s.split![k].ttftP99.toFixed(0)} / ${s.split![k].e2eP99.toFixed(0)}`])
      : []),
    ['tokens recomputed per migration', s.recomputedPerMigration.toFixed(1)],
    ...Object.entries(s.gaugesAfter).map(([k, v]): [string, string] => [`after: ${k}`, String(v)]),
    ...(s.rssMiB ? [['frontend RSS before / after (MiB)', `${s.rssMiB.before.toFixed(0)} / ${s.rssMiB.after.toFixed(0)}`] as [string, string]] : []),
    ['seconds', s.seconds.toFixed(1)],
  ];
  const w = Math.max(...rows.map((r) => r[0].length));
  return [...rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`), ...s.failures.map((f) => `failure: ${f}`)].join('\n');
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: {
      url: { type: 'string' },
      model: { type: 'string' },
      requests: { type: 'string', default: '1000' },
      concurrency: { type: 'string', default: '32' },
      'max-tokens': { type: 'string', default: '64' },
      'kill-every': { type: 'string', default: '3' },
      'kill-command': { type: 'string' },
      workers: { type: 'string', default: '4' },
      'migration-limit': { type: 'string', default: '3' },
      'speedup-ratio': { type: 'string', default: '2' },
      deadline: { type: 'string', default: '60' },
      fault: { type: 'string', default: 'kill' },
      stall: { type: 'string', default: '4' },
      timeout: { type: 'string', default: '1.5' },
      'rss-growth': { type: 'string', default: '128' },
    },
  });
  if (!FAULTS.includes(v.fault as Fault)) throw new Error(`--fault ${v.fault}: one of ${FAULTS.join(', ')}`);
  const s = await runChaos({
    url: v.url,
    model: v.model,
    requests: Number(v.requests),
    concurrency: Number(v.concurrency),
    maxTokens: Number(v['max-tokens']),
    killEveryMs: Number(v['kill-every']) * 1000,
    killCommand: v['kill-command'],
    workers: Number(v.workers),
    migrationLimit: Number(v['migration-limit']),
    speedupRatio: Number(v['speedup-ratio']),
    deadlineMs: Number(v.deadline) * 1000,
    fault: v.fault as Fault,
    stallMs: Number(v.stall) * 1000,
    timeoutMs: Number(v.timeout) * 1000,
    log: (l) => console.error(l),
  });
  console.log(summaryTable(s));
  const idle = Object.values(s.gaugesAfter).every((x) => x === 0);
  const grew = s.rssMiB !== null && s.rssMiB.after - s.rssMiB.before > Number(v['rss-growth']);
  if (grew) console.error(`chaos: the frontend's memory grew by more than ${v['rss-growth']} MiB`);
  process.exitCode = s.failed - s.cleanErrors > 0 || !idle || grew ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: Error) => {
    console.error(`chaos: ${err.message}`);
    process.exit(1);
  });
}
