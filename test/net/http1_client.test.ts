// The lean HTTP/1.1 client against real servers on 127.0.0.1: node:http where a well-behaved
// server is enough, raw net servers for the framings and failures node:http will not produce.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Http1Error, Http1Pool, type Http1Response } from '../../src/net/http1_client.js';
import { makeCerts } from '../distributed/test_certs.js';
import { waitFor } from '../frontend/fixtures/stack.js';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function listen(server: net.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

function pool(origin: string, options?: ConstructorParameters<typeof Http1Pool>[1]): Http1Pool {
  const p = new Http1Pool(origin, options);
  cleanups.push(() => p.close());
  return p;
}

// A raw server: `answer(socket, request, n)` is called once per complete request on a connection
// (n: its index on that connection). Counts connections and requests.
function rawServer(answer: (socket: net.Socket, request: string, n: number) => void) {
  const seen = { connections: 0, requests: 0, closed: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    seen.connections++;
    sockets.add(socket);
    let buf = '';
    let n = 0;
    socket.on('error', () => undefined);
    socket.on('close', () => {
      seen.closed++;
      sockets.delete(socket);
    });
    socket.on('data', (d) => {
      buf += d.toString('utf8');
      for (;;) {
        const head = buf.indexOf('\r\n\r\n');
        if (head < 0) return;
        const length = Number(/content-length: (\d+)/i.exec(buf.slice(0, head))?.[1] ?? 0);
        if (buf.length < head + 4 + length) return;
        const req = buf.slice(0, head + 4 + length);
        buf = buf.slice(req.length);
        seen.requests++;
        answer(socket, req, n++);
      }
    });
  });
  cleanups.push(() => sockets.forEach((s) => s.destroy()));
  return { server, seen };
}

const readAll = async (res: Http1Response): Promise<string[]> => {
  const parts: string[] = [];
  for (let b = await res.read(); b !== null; b = await res.read()) parts.push(b.toString('utf8'));
  return parts;
};

const failure = async (p: Promise<unknown>): Promise<Error> => {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a failure');
};

const idleAndZero = (p: Http1Pool) => expect(p.stats.waiting).toBe(0);

describe('Http1Pool', () => {
  it('sends headers and a body in one request, reads content-length answers, and reuses the connection', async () => {
    let connections = 0;
    const server = http.createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (s: string) => (body += s));
      req.on('end', () => res.end(JSON.stringify({ method: req.method, url: req.url, host: req.headers.host, x: req.headers['x-test'], body })));
    });
    server.on('connection', () => connections++);
    const origin = await listen(server);
    const p = pool(origin);
    for (const body of ['{"text":"héllo ✓"}', Buffer.from('bytes ✓')]) {
      const res = await p.request({ method: 'POST', path: '/generate?a=1', headers: { 'x-test': 'yes', 'content-type': 'application/json' }, body });
      expect(res.status).toBe(200);
      expect(JSON.parse(await res.text())).toEqual({ method: 'POST', url: '/generate?a=1', host: new URL(origin).host, x: 'yes', body: body.toString() });
      expect(res.complete).toBe(true);
    }
    const get = await p.request({ method: 'GET', path: '/' });
    expect(JSON.parse(await get.text()).body).toBe('');
    expect(connections).toBe(1);
    expect(p.stats).toEqual({ sockets: 1, idle: 1, waiting: 0 });
    await p.close();
    expect(p.stats.sockets).toBe(0);
  });

  it('streams a chunked body as it arrives', async () => {
    let release: () => void = () => undefined;
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
      release = () => res.end('data: 2\n\n');
    });
    const p = pool(await listen(server));
    const res = await p.request({ method: 'POST', path: '/', body: '{}' });
    expect(res.headers['transfer-encoding']).toBe('chunked');
    expect((await res.read())!.toString()).toBe('data: 1\n\n'); // before the server finished
    release();
    expect(await readAll(res)).toEqual(['data: 2\n\n']);
    await waitFor(() => p.stats.idle === 1);
    idleAndZero(p);
  });

  it('parses chunk extensions, trailers, split reads and an interim 100 answer', async () => {
    const { server } = rawServer((s) => {
      const wire = 'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nX-A: 2\r\n\r\n5;ext=1\r\nhello\r\n0\r\nx-trailer: t\r\n\r\n';
      // One byte per write: every state of the parser sees a boundary.
      let i = 0;
      const next = () => (i < wire.length ? s.write(wire[i++]!, () => setImmediate(next)) : undefined);
      next();
    });
    const p = pool(await listen(server));
    const res = await p.request({ method: 'GET', path: '/' });
    expect(res.status).toBe(200);
    expect(res.headers['x-a']).toBe('1, 2');
    expect((await readAll(res)).join('')).toBe('hello');
    await waitFor(() => p.stats.idle === 1);
  });

  it('reads a body delimited by the connection closing, and does not reuse a connection: close', async () => {
    const { server, seen } = rawServer((s, _req, n) => {
      if (n === 0 && seen.connections === 1) s.end('HTTP/1.1 200 OK\r\n\r\nuntil the end');
      else s.write('HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok');
    });
    const p = pool(await listen(server));
    expect(await (await p.request({ method: 'GET', path: '/' })).text()).toBe('until the end');
    expect(await (await p.request({ method: 'GET', path: '/' })).text()).toBe('ok');
    await waitFor(() => p.stats.sockets === 0);
    expect(seen.connections).toBe(2);
  });

  it('aborting mid-stream closes the connection and fails the read with the reason', async () => {
    let closed = false;
    const server = http.createServer((_req, res) => {
      res.writeHead(200);
      res.write('first');
      res.on('close', () => (closed = true));
    });
    const p = pool(await listen(server));
    const ctl = new AbortController();
    const res = await p.request({ method: 'POST', path: '/', body: 'x', signal: ctl.signal });
    expect((await res.read())!.toString()).toBe('first');
    const pending = res.read();
    ctl.abort(new Error('client gone'));
    expect((await failure(pending)).message).toBe('client gone');
    await waitFor(() => closed && p.stats.sockets === 0);
  });

  it('aborting before the head arrives rejects the request and closes the connection', async () => {
    const { server, seen } = rawServer(() => undefined);
    const p = pool(await listen(server));
    const ctl = new AbortController();
    const req = p.request({ method: 'POST', path: '/', body: 'x', signal: ctl.signal });
    await waitFor(() => seen.requests === 1);
    ctl.abort();
    expect((await failure(req)).name).toBe('AbortError');
    await waitFor(() => seen.closed === 1 && p.stats.sockets === 0);
    expect(await failure(p.request({ method: 'GET', path: '/', signal: ctl.signal }))).toBe(ctl.signal.reason);
  });

  it('sends a request again when a kept-alive connection resets before answering; a fresh one fails', async () => {
    // Each connection answers one request, then resets when the next arrives on it: the server
    // closing an idle pooled connection just as a request is written to it.
    const { server, seen } = rawServer((s, _req, n) => (n === 0 ? s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok') : s.resetAndDestroy()));
    const p = pool(await listen(server));
    for (let i = 0; i < 3; i++) expect(await (await p.request({ method: 'POST', path: '/', body: String(i) })).text()).toBe('ok');
    expect(seen.connections).toBe(3);
    expect(seen.requests).toBe(5); // 3 answered, 2 sent to a connection that reset: each retried once

    const { server: resetting, seen: rs } = rawServer((s) => s.resetAndDestroy());
    const q = pool(await listen(resetting));
    const err = (await failure(q.request({ method: 'POST', path: '/', body: 'x' }))) as Error & { code: string };
    expect(err.code).toBe('ECONNRESET');
    expect(rs.requests).toBe(1);
    await waitFor(() => q.stats.sockets === 0);
  });

  it('does not send a request again once part of the answer arrived', async () => {
    const { server, seen } = rawServer((s, _req, n) => {
      if (n === 0) s.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
      else {
        s.write('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npart');
        setTimeout(() => s.resetAndDestroy(), 20);
      }
    });
    const p = pool(await listen(server));
    expect(await (await p.request({ method: 'GET', path: '/' })).text()).toBe('ok');
    const res = await p.request({ method: 'GET', path: '/' });
    expect((await res.read())!.toString()).toBe('part');
    const err = (await failure(res.read())) as Error & { code: string };
    expect(err.code).toBe('ECONNRESET');
    expect(seen.requests).toBe(2);
    await waitFor(() => p.stats.sockets === 0);

    // The head only, then a reset: the answer had begun, so no second try either.
    const { server: half, seen: hs } = rawServer((s) => {
      s.write('HTTP/1.1 20');
      setTimeout(() => s.resetAndDestroy(), 20);
    });
    const q = pool(await listen(half));
    expect(((await failure(q.request({ method: 'GET', path: '/' }))) as Http1Error).code).toBe('ECONNRESET');
    expect(hs.requests).toBe(1);
  });

  it('fails malformed answers with a clear error and drops their connection', async () => {
    const answers = [
      ['SPDY/3 200 OK\r\n\r\n', /status line "SPDY\/3 200 OK"/],
      ['HTTP/1.1 200 OK\r\nno colon here\r\n\r\n', /header line "no colon here"/],
      ['HTTP/1.1 200 OK\r\ncontent-length: 12abc\r\n\r\n', /content-length "12abc"/],
      ['HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\n', /content-length "1, 2"/],
      ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n', /chunk size "zz"/],
      ['HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n', /chunk data longer than its size/],
      [`HTTP/1.1 200 OK\r\nx: ${'a'.repeat(70_000)}`, /head larger than 64 KiB/],
    ] as const;
    for (const [wire, message] of answers) {
      const { server } = rawServer((s) => s.write(wire));
      const p = pool(await listen(server));
      const err = await failure(p.request({ method: 'GET', path: '/' }).then((r) => r.text()));
      expect(err).toBeInstanceOf(Http1Error);
      expect((err as Http1Error).code).toBe('ERR_HTTP1_MALFORMED');
      expect(err.message).toMatch(message);
      await waitFor(() => p.stats.sockets === 0);
    }
  });

  it('refuses a header value that would end its line, before sending anything', async () => {
    const { server, seen } = rawServer((s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'));
    const p = pool(await listen(server));
    expect(await failure(p.request({ method: 'GET', path: '/', headers: { 'x-request-id': 'a\r\nx-evil: 1' } }))).toBeInstanceOf(TypeError);
    expect((await p.request({ method: 'GET', path: '/' })).status).toBe(200);
    expect(seen.requests).toBe(1);
  });

  it('queues requests above maxSockets; an aborted waiter leaves the queue', async () => {
    const server = http.createServer((_req, res) => setTimeout(() => res.end('done'), 50));
    const p = pool(await listen(server), { maxSockets: 1 });
    const ctl = new AbortController();
    const a = p.request({ method: 'GET', path: '/' });
    const b = p.request({ method: 'GET', path: '/' });
    const c = p.request({ method: 'GET', path: '/', signal: ctl.signal });
    await waitFor(() => p.stats.waiting === 2);
    ctl.abort();
    expect((await failure(c)).name).toBe('AbortError');
    expect(p.stats.waiting).toBe(1);
    expect(await Promise.all([a, b].map(async (r) => (await r).text()))).toEqual(['done', 'done']);
    expect(p.stats).toEqual({ sockets: 1, idle: 1, waiting: 0 });
  });

  it('drains a body it will not read and reuses the connection; cancel() closes it', async () => {
    let connections = 0;
    const server = http.createServer((_req, res) => res.end('x'.repeat(200_000)));
    server.on('connection', () => connections++);
    const p = pool(await listen(server), { highWaterBytes: 1024 });
    await (await p.request({ method: 'GET', path: '/' })).drain();
    expect((await (await p.request({ method: 'GET', path: '/' })).text()).length).toBe(200_000);
    expect(connections).toBe(1);
    const res = await p.request({ method: 'GET', path: '/' });
    res.cancel();
    await waitFor(() => p.stats.sockets === 0);
    expect(((await failure(p.request({ method: 'GET', path: '/', signal: AbortSignal.abort() }))) as Error).name).toBe('AbortError');
  });

  it('does not reuse a connection idle longer than idleTimeoutMs, and closes it', async () => {
    let connections = 0;
    const server = http.createServer((_req, res) => res.end('ok'));
    server.on('connection', () => connections++);
    const p = pool(await listen(server), { idleTimeoutMs: 50 });
    expect(await (await p.request({ method: 'GET', path: '/' })).text()).toBe('ok');
    await new Promise((r) => setTimeout(r, 100));
    expect(await (await p.request({ method: 'GET', path: '/' })).text()).toBe('ok');
    expect(connections).toBe(2);
    await waitFor(() => p.stats.sockets === 0, 3000); // the sweep closes the second one too
  });

  it('reports a refused connection with its code', async () => {
    const s = net.createServer();
    const origin = await listen(s);
    await new Promise((resolve) => s.close(resolve));
    const p = pool(origin);
    expect(((await failure(p.request({ method: 'GET', path: '/' }))) as Error & { code: string }).code).toBe('ECONNREFUSED');
    expect(p.stats.sockets).toBe(0);
  });

  it('speaks https to a server with a private CA', async () => {
    const certs = makeCerts();
    cleanups.push(() => certs.remove());
    const server = https.createServer({ cert: readFileSync(certs.server.cert), key: readFileSync(certs.server.key) }, (_req, res) => res.end('over tls'));
    const origin = (await listen(server)).replace('http:', 'https:');
    const p = pool(origin, { tls: { ca: readFileSync(certs.ca) } });
    for (let i = 0; i < 2; i++) expect(await (await p.request({ method: 'GET', path: '/' })).text()).toBe('over tls');
    expect(p.stats.sockets).toBe(1);
    const untrusted = pool(origin);
    expect(await failure(untrusted.request({ method: 'GET', path: '/' }))).toHaveProperty('code', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });
});
