// SGLang's HTTP API against its gRPC API, as kvgate's engine clients speak them: the same
// `kvgate mocker` engine started three ways (HTTP with SGLang's default cumulative SSE, HTTP
// with --incremental-streaming-output, and --grpc-mode), each driven in turn by the client a
// worker would use (SglangHttpEngine / SglangGrpcEngine) from this process, N streams in
// flight. Reported per protocol, side by side in one run: requests/s, client CPU ms per
// request (this process), engine CPU ms per request (the mocker's /proc/<pid>/stat).
//
//   npm run bench:engine
//   REQUESTS=4000 CONCURRENCY=64 ISL=512 OSL=64 ROUNDS=2 npm run bench:engine

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { EngineClient, GenerateRequest } from '../../src/engine/client.js';
import { SglangGrpcEngine } from '../../src/engine/sglang_grpc.js';
import { SglangHttpEngine } from '../../src/engine/sglang_http.js';

const env = (k: string, d: number) => Number(process.env[k] ?? d);
const REQUESTS = env('REQUESTS', 4000);
const CONCURRENCY = env('CONCURRENCY', 64);
const ISL = env('ISL', 512);
const OSL = env('OSL', 64);
const SPEEDUP = env('SPEEDUP', 1000);
const ROUNDS = env('ROUNDS', 2);
const WARMUP = env('WARMUP', 300);

const root = fileURLToPath(new URL('../..', import.meta.url));
const TICK_MS = 10; // USER_HZ = 100

interface Engine {
  name: string;
  proc: ChildProcess;
  client: EngineClient;
}

async function startEngine(name: string, flags: string[]): Promise<Engine> {
  const proc = spawn(
    process.execPath,
    ['--import', 'tsx', '-e', "import('./src/cli/main.ts').then((m) => m.main(process.argv.slice(1)))", '--',
      'mocker', '--port', '0', '--page-size', '16', '--speedup-ratio', String(SPEEDUP), '--skip-tokenizer-init',
      '--max-running-requests', String(Math.max(CONCURRENCY, 256)), '--log-level', 'warning', ...flags],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on ((?:http|grpc):\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    proc.on('exit', (code) => reject(new Error(`mocker exited with ${code}`)));
  });
  const client = url.startsWith('grpc:') ? new SglangGrpcEngine(url) : new SglangHttpEngine(url);
  return { name, proc, client };
}

const cpuTicks = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime (fields 14, 15)
};

// Prompts share a 256-token prefix; the rest is unique per request.
const prompt = (i: number) => Array.from({ length: ISL }, (_, j) => (j < 256 ? 1000 + j : 20000 + ((i * 7919 + j) % 100000)));

let rid = 0;
async function drive(e: Engine, count: number): Promise<{ seconds: number; clientMs: number; engineMs: number; tokens: number; errors: number }> {
  let next = 0;
  let tokens = 0;
  let errors = 0;
  const one = async () => {
    for (let i = next++; i < count; i = next++) {
      const req: GenerateRequest = { requestId: `b${rid++}`, tokenIds: prompt(i), sampling: { maxNewTokens: OSL, ignoreEos: true, temperature: 0 } };
      try {
        let n = 0;
        let done = false;
        for await (const c of e.client.generate(req)) {
          n += c.tokenIds.length;
          if (c.finishReason) done = c.finishReason.type === 'length';
        }
        if (n !== OSL || !done) errors++;
        tokens += n;
      } catch {
        errors++;
      }
    }
  };
  const engine0 = cpuTicks(e.proc.pid!);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, one));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return { seconds, clientMs: (cpu.user + cpu.system) / 1000, engineMs: (cpuTicks(e.proc.pid!) - engine0) * TICK_MS, tokens, errors };
}

async function main(): Promise<void> {
  const engines = [
    await startEngine('HTTP /generate (cumulative SSE, SGLang default)', []),
    await startEngine('HTTP /generate (--incremental-streaming-output)', ['--incremental-streaming-output']),
    await startEngine('gRPC Generate (--grpc-mode)', ['--grpc-mode']),
  ];
  console.log(`# ${REQUESTS} requests x ${ROUNDS} rounds per protocol, concurrency ${CONCURRENCY}, ISL ${ISL}, OSL ${OSL} (ignore_eos), speedup ${SPEEDUP}, page 16`);
  const totals = new Map<string, { n: number; seconds: number; clientMs: number; engineMs: number; errors: number }>();
  try {
    for (const e of engines) await drive(e, WARMUP);
    // Interleaved rounds, so machine noise falls on every protocol alike.
    for (let r = 0; r < ROUNDS; r++) {
      for (const e of engines) {
        const res = await drive(e, REQUESTS);
        const t = totals.get(e.name) ?? { n: 0, seconds: 0, clientMs: 0, engineMs: 0, errors: 0 };
        totals.set(e.name, { n: t.n + REQUESTS, seconds: t.seconds + res.seconds, clientMs: t.clientMs + res.clientMs, engineMs: t.engineMs + res.engineMs, errors: t.errors + res.errors });
        console.log(`  round ${r + 1} ${e.name}: ${(REQUESTS / res.seconds).toFixed(0)} req/s, client ${(res.clientMs / REQUESTS).toFixed(3)} ms/req, engine ${(res.engineMs / REQUESTS).toFixed(3)} ms/req${res.errors ? `, ${res.errors} ERRORS` : ''}`);
      }
    }
  } finally {
    for (const e of engines) {
      await e.client.close();
      e.proc.kill('SIGTERM');
    }
  }
  const base = totals.get(engines[0]!.name)!;
  console.log('\n| protocol | requests/s | client CPU ms / request | engine CPU ms / request | errors |');
  console.log('|---|---|---|---|---|');
  for (const [name, t] of totals) {
    const rps = t.n / t.seconds;
    const ratio = (x: number, b: number) => ` (${(x / b).toFixed(2)}x)`;
    console.log(
      `| ${name} | ${rps.toFixed(0)}${ratio(rps, base.n / base.seconds)} | ${(t.clientMs / t.n).toFixed(3)}${ratio(t.clientMs, base.clientMs)} | ${(t.engineMs / t.n).toFixed(3)}${ratio(t.engineMs, base.engineMs)} | ${t.errors} |`,
    );
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(err);
    process.exit(1);
  },
);
