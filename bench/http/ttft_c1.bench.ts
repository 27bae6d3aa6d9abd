// bench:ttft-c1: the TTFT kvgate adds over the engine alone at concurrency 1, beside its peers
// in the same run. One lone mocker is the engine alone; in front of that same mocker:
//   - two floors, a do-nothing Node reverse proxy (bench/http/floor_proxy.ts) on node:http and
//     on uWebSockets.js, both with kvgate's own upstream client: what any Node process in the
//     path costs on this machine;
//   - SGLang's Rust routers, sglang-router and smg (round_robin over that one worker), driven
//     with the same `/generate` + token ids body (pass-through) and, separately, with the chat
//     request, which they forward to the mocker's own /v1/chat/completions (the mocker renders
//     and tokenizes it). Each (router, path) is its own process, so its CPU is its path's. Their
//     chat rows are measured over the mocker on chat ("engine alone, chat"), since the chat
//     handling there is the engine's, not theirs.
// And `kvgate serve --workers 1 --engine mocker` with the same engine flags, for each build under
// test (KVGATES=a/bin/kvgate.js,b/bin/kvgate.js; default this one), on node:http (the default)
// and with `--http-server uws`, and `kvgate serve --engine-urls` the lone mocker; kvgate takes
// the chat, renders and tokenizes it itself and streams `/generate` from the engine.
// N sequential streaming requests of a fresh ~512-token prompt go to each system, rotating over
// them so load from other work falls on all alike. `/generate` systems get the same chat's token
// ids, tokenized before the clock starts. Every request carries a prompt no system saw before.
//
// Env: KVGATES, N (200), OSL (8), PROMPT_WORDS (496), SPEEDUP (10), PROFILE_DIR (the Node
// processes in the path run under --cpu-prof and write there), PEERS=0 (skip SGLang's routers),
// FLOORS=0 (skip the floor proxies). A system that fails to start, or fails any request, is a row
// saying so, without numbers.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Preprocessor } from '../../src/preprocess/preprocessor.js';
import { SGLANG_ROUTER_VERSION, SMG_VERSION } from '../../test/sgl_router/sglang_router_peer.js';
import { stopAll } from '../gateway/procs.js';
import { startRouter } from '../router/sgl_routers.js';

const env = (k: string, d: number) => Number(process.env[k] ?? d);
const builds = (process.env['KVGATES'] ?? 'bin/kvgate.js').split(',').map((p) => resolve(p));
const n = env('N', 200);
const osl = env('OSL', 8);
const promptWords = env('PROMPT_WORDS', 496);
const withPeers = process.env['PEERS'] !== '0';
const withFloors = process.env['FLOORS'] !== '0';
const nodeFlags = process.env['PROFILE_DIR'] ? ['--cpu-prof', '--cpu-prof-interval', '100', '--cpu-prof-dir', process.env['PROFILE_DIR']] : [];
const engineFlags = ['--page-size', '16', '--max-total-tokens', '262144', '--speedup-ratio', String(env('SPEEDUP', 10))];
const logDir = mkdtempSync(join(tmpdir(), 'kvgate-ttft-c1-'));

const WORDS = 'time person year way day thing man world life hand part child eye woman place work week case point government company number group problem fact'.split(' ');
function prompt(seq: number): string {
  const words: string[] = [`Request ${seq} at ${Date.now()}:`];
  let x = seq * 2654435761 + Date.now();
  for (let i = 0; i < promptWords; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    words.push(WORDS[x % WORDS.length]!);
  }
  return words.join(' ');
}

type Path = 'generate' | 'chat';
interface Sys {
  name: string;
  // What the system does between the client and the engine.
  does: string;
  path: Path;
  url: URL | null;
  // The process whose CPU is the system's own (null: the engine alone).
  pid: number | null;
  stop: () => Promise<void> | void;
  failed?: string;
  // What its added TTFT is measured over: the engine alone on `/generate`, or on chat for the
  // routers' chat pass-through (the mocker's own chat handling is not theirs).
  base?: Sys;
  ttft: number[];
  // Requests that failed (status, stream cut short, no output), and the first one's message.
  errors: number;
  firstError?: string;
  cpuTicks: number;
}

// A Node child that prints "listening on http://..." when ready.
async function startNode(name: string, args: string[]): Promise<{ url: URL; proc: ChildProcess }> {
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((ok, fail) => {
    proc.once('exit', (code) => fail(new Error(`${name} exited with ${code}`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const m = /listening on (http:\/\/\S+)/.exec(line);
      if (m) ok(m[1]!);
    });
  });
  return { url: new URL(url), proc };
}

const stopChild = (proc: ChildProcess) => () => void proc.kill('SIGTERM');

// NaN once the process is gone.
function cpuTicks(pid: number): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return NaN;
  }
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime, in 10 ms ticks
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

// Milliseconds from sending to the first chunk carrying output; rejects unless the whole
// stream arrived with status 200.
function send(url: URL, path: string, body: string, isFirst: (s: string) => boolean): Promise<number> {
  const t0 = performance.now();
  return new Promise((ok, fail) => {
    const req = http.request({ agent, host: url.hostname, port: url.port, path, method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
      let first = 0;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (s: string) => {
        if (first === 0 && isFirst(s)) first = performance.now();
        text += s;
      });
      res.on('end', () => (res.statusCode === 200 && first > 0 && text.includes('[DONE]') ? ok(first - t0) : fail(new Error(`${path}: ${res.statusCode} ${text.slice(0, 200)}`))));
    });
    req.on('error', fail);
    // A system that stops answering fails the request instead of stalling the bench.
    req.setTimeout(30_000, () => req.destroy(new Error(`${path}: no answer for 30 s`)));
    req.end(body);
  });
}

const pre = new Preprocessor();
const chatBody = (content: string) => JSON.stringify({ model: 'Qwen/Qwen3-0.6B', messages: [{ role: 'user', content }], max_tokens: osl, ignore_eos: true, stream: true });
async function generateBody(content: string): Promise<string> {
  const ids = await pre.encodeChat(pre.renderChat({ messages: [{ role: 'user', content }], addGenerationPrompt: true }));
  return JSON.stringify({ input_ids: ids, sampling_params: { max_new_tokens: osl, ignore_eos: true }, stream: true });
}
// The request is built (and tokenized) before the clock starts.
async function run(s: Sys, content: string): Promise<number> {
  if (s.path === 'chat') return send(s.url!, '/v1/chat/completions', chatBody(content), (t) => /"content":"[^"]/.test(t));
  const body = await generateBody(content);
  return send(s.url!, '/generate', body, (t) => /"output_ids":\[\d/.test(t));
}

const systems: Sys[] = [];
const sys = (name: string, does: string, path: Path): Sys => ({ name, does, path, url: null, pid: null, stop: () => undefined, ttft: [], errors: 0, cpuTicks: 0 });
async function add(s: Sys, starter: () => Promise<{ url: URL; pid: number; stop: () => Promise<void> | void }>): Promise<void> {
  systems.push(s);
  try {
    const r = await starter();
    Object.assign(s, r);
  } catch (err) {
    s.failed = (err as Error).message.split('\n')[0]!.slice(0, 200);
    console.error(`${s.name}: did not start: ${(err as Error).message}`);
  }
}

const e = await startNode('engine alone', [resolve('bin/kvgate.js'), 'mocker', '--port', '0', '--log-level', 'warn', ...engineFlags]);
const engine: Sys = { ...sys('engine alone', 'the mocker itself: `/generate` with token ids', 'generate'), url: e.url, stop: stopChild(e.proc) };
systems.push(engine);
const upstream = e.url.origin;
// The same mocker on chat: the base of the routers' chat pass-through.
const engineChat: Sys = { ...sys('engine alone, chat', 'the mocker itself on chat: renders, tokenizes, streams, detokenizes', 'chat'), url: e.url };
if (withPeers) systems.push(engineChat);
try {

  if (withFloors) {
    for (const server of ['node', 'uws'] as const) {
      const label = server === 'node' ? 'node:http' : 'uWebSockets.js';
      await add(sys(`floor: Node proxy (${label})`, `do-nothing ${label} proxy + kvgate's Http1Pool: forwards the \`/generate\` body, streams the bytes back`, 'generate'), async () => {
        const p = await startNode(`floor ${server}`, [...nodeFlags, '--import', 'tsx', resolve('bench/http/floor_proxy.ts'), '--server', server, '--upstream', upstream]);
        return { url: p.url, pid: p.proc.pid!, stop: stopChild(p.proc) };
      });
    }
  }

  for (const b of builds) {
    for (const server of ['node', 'uws'] as const) {
      const label = server === 'node' ? 'node:http' : 'uWebSockets.js';
      const name = `kvgate${builds.length > 1 ? ` ${b}` : ''} (${label})`;
      await add(sys(name, `chat: renders and tokenizes, routes, streams \`/generate\` from its own engine, detokenizes into chat chunks (${label})`, 'chat'), async () => {
        const args = [...nodeFlags, b, 'serve', '--port', '0', '--workers', '1', '--engine', 'mocker', '--log-level', 'warn', ...(server === 'uws' ? ['--http-server', 'uws'] : []), '--', ...engineFlags];
        const g = await startNode(name, args);
        return { url: g.url, pid: g.proc.pid!, stop: stopChild(g.proc) };
      });
    }
    // In front of the lone mocker the others share, as the routers are: rules out that kvgate's
    // number comes from its engine being another process.
    const name = `kvgate${builds.length > 1 ? ` ${b}` : ''} --engine-urls the lone mocker (node:http)`;
    await add(sys(name, 'the same, streaming `/generate` from the lone mocker (no worker agent)', 'chat'), async () => {
      const g = await startNode(name, [...nodeFlags, b, 'serve', '--port', '0', '--engine-urls', upstream, '--log-level', 'warn']);
      return { url: g.url, pid: g.proc.pid!, stop: stopChild(g.proc) };
    });
  }

  if (withPeers) {
    const peers = [
      ['sglang-router', `sglang-router ${SGLANG_ROUTER_VERSION}`],
      ['smg', `smg ${SMG_VERSION}`],
    ] as const;
    for (const [kind, label] of peers) {
      for (const path of ['generate', 'chat'] as const) {
        const does =
          path === 'generate'
            ? 'Rust router, round_robin over the one worker: passes the `/generate` body through'
            : 'Rust router, round_robin: forwards the chat request to the mocker, which renders, tokenizes and detokenizes itself';
        await add({ ...sys(`${label}, ${path === 'generate' ? '`/generate` ids' : 'chat'}`, does, path), base: path === 'chat' ? engineChat : engine }, async () => {
          const r = await startRouter(`${kind}:round_robin`, [upstream], { logDir });
          return { url: new URL(r.urls[0]!), pid: r.pid!, stop: r.stop };
        });
      }
    }
  }

  const live = systems.filter((s) => !s.failed);
  const warm = 20;
  let seq = 0;
  for (let i = 0; i < warm + n; i++) {
    const measure = i >= warm;
    if (i === warm) for (const s of live) if (s.pid !== null) s.cpuTicks = cpuTicks(s.pid);
    // Rotate who goes first, so no system always follows the same one.
    for (let k = 0; k < live.length; k++) {
      const s = live[(i + k) % live.length]!;
      try {
        const t = await run(s, prompt(seq++));
        if (measure) s.ttft.push(t);
      } catch (err) {
        s.errors++;
        s.firstError ??= (err as Error).message.slice(0, 200);
      }
    }
  }
  for (const s of live) if (s.pid !== null) s.cpuTicks = cpuTicks(s.pid) - s.cpuTicks;
} finally {
  agent.destroy();
  await Promise.all(systems.map((s) => s.stop()));
  await stopAll();
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!;
console.log(`${n} sequential streaming requests per system of ~${promptWords + 10} fresh prompt tokens, ${osl} output tokens, rotating over the systems; load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`);
console.log('| system | on the path | TTFT p50 ms | p90 ms | added over engine alone, p50 ms | its process CPU ms/request |');
console.log('|---|---|---|---|---|---|');
for (const s of systems) {
  if (s.failed) {
    console.log(`| ${s.name} | ${s.does} | did not start: ${s.failed.replaceAll('|', '\\|')} | | | |`);
    continue;
  }
  if (s.errors > 0) {
    console.log(`| ${s.name} | ${s.does} | ${s.errors} failed requests, not reported: ${s.firstError!.replaceAll('|', '\\|').replaceAll('\n', ' ')} | | | |`);
    continue;
  }
  const p50 = pct(s.ttft, 0.5);
  const base = s.base ?? engine;
  const baseOk = base.ttft.length > 0 && base.errors === 0;
  const added = s.pid === null ? '' : baseOk ? `${(p50 - pct(base.ttft, 0.5)).toFixed(2)}${base === engine ? '' : ' (over the engine on chat)'}` : `no base: ${base.name} failed`;
  const cpu = s.pid === null || Number.isNaN(s.cpuTicks) ? '' : ((s.cpuTicks * 10) / n).toFixed(2);
  console.log(`| ${s.name} | ${s.does} | ${p50.toFixed(2)} | ${pct(s.ttft, 0.9).toFixed(2)} | ${added} | ${cpu} |`);
}
