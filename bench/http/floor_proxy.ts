// A do-nothing reverse proxy for bench:ttft-c1's floors: what any Node process in the path costs
// before a gateway does any work of its own. It takes a POST, forwards its body unchanged to the
// same path on --upstream over kvgate's own HTTP/1.1 client (Http1Pool), and streams the
// response bytes back as they arrive, with the upstream's status and content type. No parsing,
// no routing, no tokens. The server is node:http (--server node) or uWebSockets.js (--server
// uws), the two kvgate can run.
//
// usage: node --import tsx bench/http/floor_proxy.ts --server node|uws --upstream http://127.0.0.1:PORT
// Binds 127.0.0.1 on an ephemeral port and prints "listening on http://127.0.0.1:PORT".

import http from 'node:http';
import { parseArgs } from 'node:util';
import { Http1Pool, type Http1Response } from '../../src/net/http1_client.js';

const { values } = parseArgs({ options: { server: { type: 'string', default: 'node' }, upstream: { type: 'string' } } });
if (!values.upstream || (values.server !== 'node' && values.server !== 'uws')) {
  console.error('usage: floor_proxy.ts --server node|uws --upstream http://HOST:PORT');
  process.exit(2);
}
const pool = new Http1Pool(values.upstream, { maxSockets: 64 });

const forward = (path: string, contentType: string, body: Buffer): Promise<Http1Response> =>
  pool.request({ method: 'POST', path, headers: { 'content-type': contentType }, body });

const listening = (port: number) => console.log(`floor proxy (${values.server}): listening on http://127.0.0.1:${port}`);

if (values.server === 'node') {
  const server = http.createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('end', async () => {
      try {
        const up = await forward(req.url ?? '/', req.headers['content-type'] ?? 'application/json', Buffer.concat(parts));
        res.writeHead(up.status, { 'content-type': up.headers['content-type'] ?? 'application/octet-stream' });
        for await (const b of up.chunks()) res.write(b);
        res.end();
      } catch (err) {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`floor proxy: ${(err as Error).message}`);
      }
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(0, '127.0.0.1', () => listening((server.address() as { port: number }).port));
} else {
  const { uws } = await import('../../src/http/uws.js');
  const app = uws.App();
  app.post('/*', (res, req) => {
    const path = req.getUrl() + (req.getQuery() ? `?${req.getQuery()}` : '');
    const contentType = req.getHeader('content-type') || 'application/json';
    let aborted = false;
    res.onAborted(() => (aborted = true));
    const parts: Buffer[] = [];
    // uWS reuses the chunk's memory after the callback returns: copy it.
    res.onData((chunk, last) => {
      parts.push(Buffer.from(new Uint8Array(chunk)));
      if (!last) return;
      void (async () => {
        let headed = false;
        try {
          const up = await forward(path, contentType, Buffer.concat(parts));
          if (aborted) return up.cancel();
          res.cork(() => res.writeStatus(String(up.status)).writeHeader('content-type', up.headers['content-type'] ?? 'application/octet-stream'));
          headed = true;
          for await (const b of up.chunks()) {
            if (aborted) return up.cancel();
            res.cork(() => res.write(b));
          }
          if (!aborted) res.cork(() => res.end());
        } catch (err) {
          if (!aborted) res.cork(() => (headed ? res : res.writeStatus('502')).end(`floor proxy: ${(err as Error).message}`));
        }
      })();
    });
  });
  app.listen('127.0.0.1', 0, (socket) => {
    if (!socket) throw new Error('floor proxy: uWS could not listen');
    listening(uws.us_socket_local_port(socket));
  });
}

process.on('SIGTERM', () => {
  void pool.close();
  process.exit(0);
});
