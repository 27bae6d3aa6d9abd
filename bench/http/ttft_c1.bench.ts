// bench:ttft-c1: the TTFT kvgate adds over the engine alone at concurrency 1, and the frontend's
// CPU per request. Starts a lone mocker and `kvgate serve --workers 1 --engine mocker` for each
// build under test (KVGATES=a/bin/kvgate.js,b/bin/kvgate.js; default this one), all with the same
// engine flags, then sends N sequential streaming chats of a fresh ~512-token prompt, rotating
// over the systems so load from other work falls on all of them alike. The engine alone gets
// the same prompt's token ids on `/generate`. Each system is its own process, so a prompt is
// fresh to each one's prefix cache.
//
// Env: KVGATES, N (200), OSL (8), PROMPT_WORDS (496), SPEEDUP (10), PROFILE_DIR.

import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Preprocessor } from '../../src/preprocess/preprocessor.js';

const env = (k: string, d: number) => Number(process.env[k] ?? d);
const builds = (process.env['KVGATES'] ?? 'bin/kvgate.js').split(',').map((p) => resolve(p));
const n = env('N', 200);
const osl = env('OSL', 8);
const promptWords = env('PROMPT_WORDS', 496);
// PROFILE_DIR: the gateways' frontends run under `node --cpu-prof` and write their profiles there.
const nodeFlags = process.env['PROFILE_DIR'] ? ['--cpu-prof', '--cpu-prof-interval', '100', '--cpu-prof-dir', process.env['PROFILE_DIR']] : [];
const engineFlags = ['--page-size', '16', '--max-total-tokens', '262144', '--speedup-ratio', String(env('SPEEDUP', 10))];

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

interface Sys {
  name: string;
  url: URL;
  proc: ChildProcess;
  ttft: number[];
  cpuTicks: number;
}

async function start(name: string, args: string[]): Promise<Sys> {
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((ok, fail) => {
    proc.once('exit', (code) => fail(new Error(`${name} exited with ${code}`)));
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      const m = /listening on (http:\/\/\S+)/.exec(line);
      if (m) ok(m[1]!);
    });
  });
  return { name, url: new URL(url), proc, ttft: [], cpuTicks: 0 };
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
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
    req.end(body);
  });
}

const pre = new Preprocessor();
const engine = await start('engine alone', [resolve('bin/kvgate.js'), 'mocker', '--port', '0', '--log-level', 'warn', ...engineFlags]);
const gateways: Sys[] = [];
for (const b of builds) gateways.push(await start(b, [...nodeFlags, b, 'serve', '--port', '0', '--workers', '1', '--engine', 'mocker', '--log-level', 'warn', '--', ...engineFlags]));

const chatBody = (content: string) => JSON.stringify({ model: 'Qwen/Qwen3-0.6B', messages: [{ role: 'user', content }], max_tokens: osl, ignore_eos: true, stream: true });
const runChat = (g: Sys, content: string) => send(g.url, '/v1/chat/completions', chatBody(content), (s) => /"content":"[^"]/.test(s));
async function runEngine(content: string): Promise<number> {
  const ids = await pre.encodeChat(pre.renderChat({ messages: [{ role: 'user', content }], addGenerationPrompt: true }));
  const body = JSON.stringify({ input_ids: ids, sampling_params: { max_new_tokens: osl, ignore_eos: true }, stream: true });
  return send(engine.url, '/generate', body, (s) => /"output_ids":\[\d/.test(s));
}

const systems = [engine, ...gateways];
const warm = 20;
let seq = 0;
try {
for (let i = 0; i < warm + n; i++) {
  const measure = i >= warm;
  if (i === warm) for (const g of gateways) g.cpuTicks = cpuTicks(g.proc.pid!);
  // Rotate who goes first, so no system always follows the same one.
  for (let k = 0; k < systems.length; k++) {
    const s = systems[(i + k) % systems.length]!;
    const t = s === engine ? await runEngine(prompt(seq++)) : await runChat(s, prompt(seq++));
    if (measure) s.ttft.push(t);
  }
}
for (const g of gateways) g.cpuTicks = cpuTicks(g.proc.pid!) - g.cpuTicks;
} finally {
  agent.destroy();
  for (const s of systems) s.proc.kill('SIGTERM');
}

const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const base = p50(engine.ttft);
console.log(`${n} sequential streaming chats of ~${promptWords + 10} fresh prompt tokens, ${osl} output tokens; load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}\n`);
console.log('| system | TTFT p50 ms | added over engine alone | frontend CPU ms/request |');
console.log('|---|---|---|---|');
console.log(`| engine alone | ${base.toFixed(2)} | | |`);
for (const g of gateways) {
  const t = p50(g.ttft);
  console.log(`| ${g.name} | ${t.toFixed(2)} | ${(t - base).toFixed(2)} | ${((g.cpuTicks * 10) / n).toFixed(2)} |`);
}
