// bench:path: the request path's cost. Starts `kvgate serve --workers N --engine mocker` (any
// kvgate build: KVGATE=path/to/bin/kvgate.js, default this one), keeps CONCURRENCY streaming chat
// requests in flight (a fresh ~512-token prompt each, 64 output tokens with ignore_eos) for
// DURATION seconds after a warm-up, and reports requests/s, TTFT p50 and the CPU each process
// role spent per request (frontend = serve, agents = its children, engines = theirs), read
// from /proc/<pid>/stat. The load client runs in this process and is not counted.
//
// Env: KVGATE, CONCURRENCY (16,64), DURATION (20 s), WARMUP (3 s), WORKERS (4), SPEEDUP (10),
// ENGINE_PROTOCOL (serve --engine-protocol, unset: serve's default), HTTP_SERVERS (uws,node:
// each point once per serve --http-server, alternating; unset: serve's default), ROUNDS (1),
// OSL (64), PROMPT_WORDS (496, about 512 prompt tokens), PROFILE_DIR (runs every process
// under `node --cpu-prof` and writes the profiles there), ENGINE_ARGS (more engine arguments
// after serve's `--`; variants separated by '|' run in turn like HTTP_SERVERS, e.g.
// '|--incremental-streaming-output': without, then with).

import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';

const env = (k: string, d: number) => Number(process.env[k] ?? d);
const kvgate = resolve(process.env['KVGATE'] ?? 'bin/kvgate.js');
const concurrencies = (process.env['CONCURRENCY'] ?? '16,64').split(',').map(Number);
const duration = env('DURATION', 20);
const warmup = env('WARMUP', 3);
const workers = env('WORKERS', 4);
const osl = env('OSL', 64);
const promptWords = env('PROMPT_WORDS', 496);
const profileDir = process.env['PROFILE_DIR'];
const httpServers = process.env['HTTP_SERVERS']?.split(',') ?? [null];
const rounds = env('ROUNDS', 1);
const engineArgVariants = (process.env['ENGINE_ARGS'] ?? '').split('|').map((v) => v.split(' ').filter((a) => a !== ''));
const TICK_MS = 1000 / 100; // USER_HZ

const WORDS = 'time person year way day thing man world life hand part child eye woman place work week case point government company number group problem fact'.split(' ');
let promptSeq = 0;
function prompt(): string {
  const n = promptSeq++;
  const words: string[] = [`Request ${n}:`];
  let x = n * 2654435761;
  for (let i = 0; i < promptWords; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    words.push(WORDS[x % WORDS.length]!);
  }
  return words.join(' ');
}

function children(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((t) =>
      readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}

function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime
  } catch {
    return 0;
  }
}

interface Roles {
  frontend: number[];
  agents: number[];
  engines: number[];
}

function roles(servePid: number): Roles {
  const agents = children(servePid);
  return { frontend: [servePid], agents, engines: agents.flatMap(children) };
}

const sample = (r: Roles) => ({
  frontend: r.frontend.reduce((s, p) => s + cpuTicks(p), 0),
  agents: r.agents.reduce((s, p) => s + cpuTicks(p), 0),
  engines: r.engines.reduce((s, p) => s + cpuTicks(p), 0),
});

async function startServe(httpServer: string | null, engineArgs: string[]): Promise<{ url: string; pid: number; stop: () => Promise<void> }> {
  const nodeFlags = profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : [];
  const protocol = process.env['ENGINE_PROTOCOL'] ? ['--engine-protocol', process.env['ENGINE_PROTOCOL']] : [];
  const server = httpServer ? ['--http-server', httpServer] : [];
  const args = [...nodeFlags, kvgate, 'serve', '--port', '0', '--workers', String(workers), '--engine', 'mocker', ...protocol, ...server, '--log-level', 'warn'];
  const mockerArgs = ['--', '--page-size', '16', '--max-total-tokens', '262144', '--speedup-ratio', String(env('SPEEDUP', 10)), ...engineArgs];
  const proc = spawn(process.execPath, [...args, ...mockerArgs], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((ok, fail) => {
    proc.once('exit', (code) => fail(new Error(`serve exited with ${code}`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const m = /listening on (http:\/\/\S+)/.exec(line);
      if (m) ok(m[1]!);
    });
  });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  return {
    url,
    pid: proc.pid!,
    stop: async () => {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}

interface Result {
  ok: number;
  errors: number;
  wrongLength: number;
  ttft: number[];
  promptTokens: number;
}

function one(agent: http.Agent, url: URL, result: Result | null): Promise<void> {
  const body = JSON.stringify({
    model: 'Qwen/Qwen3-0.6B',
    messages: [{ role: 'user', content: prompt() }],
    max_tokens: osl,
    ignore_eos: true,
    stream: true,
    stream_options: { include_usage: true },
  });
  const t0 = performance.now();
  return new Promise((done) => {
    const req = http.request(
      { agent, host: url.hostname, port: url.port, path: '/v1/chat/completions', method: 'POST', headers: { 'content-type': 'application/json' } },
      (res) => {
        let first = 0;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (s: string) => {
          if (first === 0 && s.includes('"content":"') && !s.includes('"content":""')) first = performance.now();
          text += s;
        });
        res.on('end', () => {
          if (!result) return done();
          const usage = /"completion_tokens":(\d+)/.exec(text);
          const promptTokens = /"prompt_tokens":(\d+)/.exec(text);
          if (res.statusCode !== 200 || !text.endsWith('data: [DONE]\n\n')) result.errors++;
          else if (!usage || Number(usage[1]) !== osl) result.wrongLength++;
          else {
            result.ok++;
            result.ttft.push((first || performance.now()) - t0);
            result.promptTokens += Number(promptTokens?.[1] ?? 0);
          }
          done();
        });
        res.on('error', () => {
          if (result) result.errors++;
          done();
        });
      },
    );
    req.on('error', () => {
      if (result) result.errors++;
      done();
    });
    req.end(body);
  });
}

// Keeps `concurrency` requests in flight until `until`; counts those that end before it.
async function load(url: URL, concurrency: number, seconds: number, result: Result | null): Promise<void> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const until = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) await one(agent, url, result);
    }),
  );
  agent.destroy();
}

const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

console.log(`kvgate ${kvgate}: ${workers} mocker workers, ~512-token chat prompts, ${osl} output tokens, ${duration} s per point\n`);
console.log('| concurrency | http server | engine args | requests/s | TTFT p50 | CPU ms/request: frontend | agents | engines | whole stack | errors |');
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const c of concurrencies) for (let round = 0; round < rounds; round++) for (const httpServer of httpServers) for (const engineArgs of engineArgVariants) {
  const serve = await startServe(httpServer, engineArgs);
  try {
    const url = new URL(serve.url);
    await load(url, c, warmup, null);
    const r = roles(serve.pid);
    const before = sample(r);
    const result: Result = { ok: 0, errors: 0, wrongLength: 0, ttft: [], promptTokens: 0 };
    const t0 = performance.now();
    await load(url, c, duration, result);
    const wall = (performance.now() - t0) / 1000;
    const after = sample(r);
    const per = (k: keyof Roles) => ((after[k] - before[k]) * TICK_MS) / result.ok;
    const total = per('frontend') + per('agents') + per('engines');
    const bad = result.errors + result.wrongLength;
    console.log(
      `| ${c} | ${httpServer ?? 'default'} | ${engineArgs.join(' ') || '-'} | ${(result.ok / wall).toFixed(0)} | ${p50(result.ttft).toFixed(1)} ms | ${per('frontend').toFixed(2)} | ${per('agents').toFixed(2)} | ${per('engines').toFixed(2)} | ${total.toFixed(2)} | ${bad ? `${result.errors} errors, ${result.wrongLength} wrong length` : '0'} |`,
    );
    if (c === concurrencies[0]) console.error(`(mean prompt tokens ${(result.promptTokens / Math.max(1, result.ok)).toFixed(0)})`);
  } finally {
    await serve.stop();
  }
}
