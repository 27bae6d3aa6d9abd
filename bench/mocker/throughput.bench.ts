// Throughput of one `kvgate mocker` process: N concurrent clients stream a fixed number of
// /generate requests (SSE, cumulative chunks, one per token) with the speedup high enough that the
// timing model is not the limit, so the number is what the process itself can serve.
//
//   npm run bench:mocker                         # defaults below
//   REQUESTS=20000 CONCURRENCY=256 ISL=128 OSL=16 SPEEDUP=1000 npm run bench:mocker

import { spawn } from 'node:child_process';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';

const env = (k: string, d: number) => Number(process.env[k] ?? d);
const REQUESTS = env('REQUESTS', 20_000);
const CONCURRENCY = env('CONCURRENCY', 256);
const ISL = env('ISL', 128);
const OSL = env('OSL', 16);
const SPEEDUP = env('SPEEDUP', 1000);
const PAGE_SIZE = env('PAGE_SIZE', 16);
const WARMUP = env('WARMUP', 1000);

const root = fileURLToPath(new URL('../..', import.meta.url));

async function startMockerProcess(): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '-e', "import('./src/cli/main.ts').then((m) => m.main(process.argv.slice(1)))", '--',
      'mocker', '--port', '0', '--page-size', String(PAGE_SIZE), '--speedup-ratio', String(SPEEDUP),
      '--max-running-requests', String(Math.max(CONCURRENCY, 1024)), '--log-level', 'warning',
      '--kv-events-config', '{"publisher":"zmq","endpoint":"tcp://127.0.0.1:0","bind":true,"topic":"kv"}'],
    { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`mocker exited with ${code}`)));
  });
  return {
    url,
    stop: () =>
      new Promise((resolve) => {
        child.on('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });

// One streamed request; resolves with [latency ms, chunks, finish type] once [DONE] arrives.
function streamOne(url: URL, body: string): Promise<[number, number, string]> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      { host: url.hostname, port: url.port, path: '/generate', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        let tail = '';
        let chunks = 0;
        let finish = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          tail += d;
          let i: number;
          while ((i = tail.indexOf('\n\n')) >= 0) {
            const event = tail.slice(0, i);
            tail = tail.slice(i + 2);
            if (event === 'data: [DONE]') continue;
            chunks++;
            const m = /"finish_reason":\{"type":"(\w+)"/.exec(event);
            if (m) finish = m[1]!;
          }
        });
        res.on('end', () => resolve([performance.now() - t0, chunks, finish]));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function run(url: URL, count: number, offset: number): Promise<{ seconds: number; latencies: number[]; chunks: number; bad: number }> {
  const latencies: number[] = [];
  let next = 0;
  let chunks = 0;
  let bad = 0;
  const t0 = performance.now();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= count) return;
      // A shared 64-token system prefix plus a unique tail, like chat traffic.
      const ids = Array.from({ length: ISL }, (_, k) => (k < 64 ? 1000 + k : 5000 + ((offset + i) * 7 + k) % 100_000));
      const body = JSON.stringify({ input_ids: ids, sampling_params: { max_new_tokens: OSL, ignore_eos: true }, stream: true });
      const [ms, n, finish] = await streamOne(url, body);
      latencies.push(ms);
      chunks += n;
      if (finish !== 'length' || n !== OSL) bad++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { seconds: (performance.now() - t0) / 1000, latencies, chunks, bad };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

const mocker = await startMockerProcess();
try {
  const url = new URL(mocker.url);
  await run(url, WARMUP, 10_000_000);
  const r = await run(url, REQUESTS, 0);
  if (r.bad > 0) throw new Error(`${r.bad} requests did not stream ${OSL} tokens and finish with length`);
  const rps = REQUESTS / r.seconds;
  console.log(`mocker throughput: ${REQUESTS} streamed requests, concurrency ${CONCURRENCY}, ISL ${ISL}, OSL ${OSL}, speedup ${SPEEDUP}, page size ${PAGE_SIZE}`);
  console.log(`  ${rps.toFixed(0)} requests/s, ${(r.chunks / r.seconds).toFixed(0)} SSE chunks/s, ${r.seconds.toFixed(2)} s`);
  console.log(`  latency ms: p50 ${pct(r.latencies, 50).toFixed(1)}, p90 ${pct(r.latencies, 90).toFixed(1)}, p99 ${pct(r.latencies, 99).toFixed(1)}`);
  console.log(JSON.stringify({ bench: 'mocker_throughput', requests: REQUESTS, concurrency: CONCURRENCY, isl: ISL, osl: OSL, speedup: SPEEDUP, rps: Math.round(rps), p50_ms: pct(r.latencies, 50), p99_ms: pct(r.latencies, 99) }));
} finally {
  agent.destroy();
  await mocker.stop();
}
