// bench:front-door: what a JavaScript relay in front of uWS would cost, the only way (with
// the uWS v20.30 binary) to see a connection's bytes before uWS parses them, which HTTP/1.0,
// pipelining behind a POST and the HTTP/2-preface close would need. Measures the server
// process's CPU per request, side by side in one run:
//   direct: clients talk to kvgate's HttpServer (uWS) on 127.0.0.1;
//   relay:  clients talk to a node:net server that pipes each connection to that HttpServer;
//   node:http: the same two routes on Node's own HTTP server (which handles those cases),
//           for scale.
// Also the per-request cost of what this branch added to every POST (a Content-Length count
// over the headers; a body deadline in the server's map, against a timer per request),
// timed inside a uWS handler.
//
// Requests: a unary POST answered with 200 bytes of JSON, and a POST answered with a stream of
// EVENTS server-sent events written one per tick (as tokens come from an engine).
// Env: REQUESTS (2000 per case), CONCURRENCY (16), EVENTS (64), ROUNDS (2).

import { fork } from 'node:child_process';
import { createServer } from 'node:http';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { HttpServer } from '../../src/http/server.js';
import { silentLogger } from '../../src/observability/log.js';

const env = (k: string, d: number) => Number(process.env[k] ?? d);
const REQUESTS = env('REQUESTS', 2000);
const CONCURRENCY = env('CONCURRENCY', 16);
const EVENTS = env('EVENTS', 64);
const ROUNDS = env('ROUNDS', 2);

if (process.argv[2] === 'client') {
  // The load generator, in its own process: keep-alive connections, CONCURRENCY at once.
  const [url, path, n] = [process.argv[3]!, process.argv[4]!, Number(process.argv[5])];
  const body = JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] });
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      const r = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      await r.text();
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  process.exit(0);
}

const tick = () => new Promise<void>((r) => setImmediate(r));
const server = new HttpServer({
  maxBodyBytes: 1 << 20,
  bodyTimeoutMs: 5000,
  apiKeys: [],
  logger: silentLogger,
  slowClients: { stallTimeoutMs: 30_000, maxBufferedBytes: 1 << 20, buffered() {}, waiting() {} },
});
const reply = { id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: 'Hello world, '.repeat(8) } }] };
server.route('post', '/unary', (ex) => ex.json(200, reply));
server.route('post', '/stream', async (ex) => {
  const ev = `data: ${JSON.stringify({ choices: [{ delta: { content: ' the' } }] })}\n\n`;
  ex.startStream(ev);
  for (let i = 1; i < EVENTS; i++) {
    await tick();
    if (!ex.write(ev) && !(await ex.writable())) return;
  }
  ex.endStream('data: [DONE]\n\n');
});
const port = await server.listen('127.0.0.1', 0);

// The relay: node:net in front, one upstream connection per client connection.
const relay = net.createServer((client) => {
  const up = net.connect(port, '127.0.0.1');
  client.pipe(up).pipe(client);
  const done = () => (client.destroy(), up.destroy());
  client.on('error', done).on('close', done);
  up.on('error', done).on('close', done);
});
await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
const relayPort = (relay.address() as net.AddressInfo).port;

// The same routes on node:http: the body read whole, JSON or SSE written the same way.
const nodeHttp = createServer((req, res) => {
  const parts: Buffer[] = [];
  req.on('data', (c: Buffer) => parts.push(c));
  req.on('end', () => {
    JSON.parse(Buffer.concat(parts).toString('utf8'));
    if (req.url === '/unary') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(reply));
      return;
    }
    const ev = `data: ${JSON.stringify({ choices: [{ delta: { content: ' the' } }] })}\n\n`;
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write(ev);
    let i = 1;
    const step = (): void => {
      if (i++ >= EVENTS) return void res.end('data: [DONE]\n\n');
      res.write(ev);
      setImmediate(step);
    };
    setImmediate(step);
  });
});
await new Promise<void>((r) => nodeHttp.listen(0, '127.0.0.1', r));
const nodePort = (nodeHttp.address() as net.AddressInfo).port;

async function run(targetPort: number, path: string): Promise<{ cpuUs: number; wallS: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const child = fork(fileURLToPath(import.meta.url), ['client', `http://127.0.0.1:${targetPort}`, path, String(REQUESTS)], { execArgv: ['--import', 'tsx'] });
  await new Promise((r) => child.on('exit', r));
  const c = process.cpuUsage(c0);
  return { cpuUs: (c.user + c.system) / REQUESTS, wallS: (performance.now() - t0) / 1000 };
}

console.log(`${REQUESTS} requests per case, ${CONCURRENCY} keep-alive connections, streams of ${EVENTS} events; server CPU per request (user+system)\n`);
console.log('| request | round | direct (uWS) | relay (node:net -> uWS) | relay / direct | node:http | node:http / direct |');
console.log('|---|---|---|---|---|---|---|');
for (const path of ['/unary', '/stream']) {
  for (let round = 1; round <= ROUNDS; round++) {
    const d = await run(port, path);
    const r = await run(relayPort, path);
    const n = await run(nodePort, path);
    console.log(`| ${path.slice(1)} | ${round} | ${d.cpuUs.toFixed(0)} µs | ${r.cpuUs.toFixed(0)} µs | ${(r.cpuUs / d.cpuUs).toFixed(2)}x | ${n.cpuUs.toFixed(0)} µs | ${(n.cpuUs / d.cpuUs).toFixed(2)}x |`);
  }
}

// What every POST now pays: count Content-Length headers (req.forEach) and arm and clear
// the body timer. Timed on a real request object, inside the handler where it is valid.
const { uws } = await import('../../src/http/uws.js');
const app = uws.App();
const N = 100_000;
const costs = await new Promise<{ forEachNs: number; timerNs: number; mapNs: number }>((resolve) => {
  app.post('/*', (res, req) => {
    res.onAborted(() => undefined);
    let t = process.hrtime.bigint();
    for (let i = 0; i < N; i++) {
      let n = 0;
      req.forEach((k) => {
        if (k === 'content-length') n++;
      });
      if (n > 1) throw new Error('unexpected');
    }
    const forEachNs = Number(process.hrtime.bigint() - t) / N;
    t = process.hrtime.bigint();
    for (let i = 0; i < N; i++) clearTimeout(setTimeout(() => undefined, 5000));
    const timerNs = Number(process.hrtime.bigint() - t) / N;
    const deadlines = new Map<object, number>();
    t = process.hrtime.bigint();
    for (let i = 0; i < N; i++) {
      const key = {};
      deadlines.set(key, performance.now() + 5000);
      deadlines.delete(key);
    }
    const mapNs = Number(process.hrtime.bigint() - t) / N;
    res.end('ok');
    resolve({ forEachNs, timerNs, mapNs });
  });
  app.listen('127.0.0.1', 0, (s) => {
    const p = uws.us_socket_local_port(s as never);
    void fetch(`http://127.0.0.1:${p}/x`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer k', 'user-agent': 'bench' }, body: '{}' });
  });
});
console.log(`\nper POST: Content-Length count over the headers ${costs.forEachNs.toFixed(0)} ns; body deadline in a map (set + delete) ${costs.mapNs.toFixed(0)} ns, against a timer per request (set + clear) ${costs.timerNs.toFixed(0)} ns`);
await server.close(0);
relay.close();
nodeHttp.close();
process.exit(0);
