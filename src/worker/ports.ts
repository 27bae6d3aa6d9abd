// Free TCP ports on 127.0.0.1 for the engine a worker starts. The engine binds them after we
// let go, so another process could take one in between (the same race Dynamo's launcher has);
// a taken port shows up as an engine that fails to start, which the supervisor retries.

import { createServer } from 'node:net';

function tryListen(port: number, host: string): Promise<number | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(null));
    srv.listen({ port, host, exclusive: true }, () => {
      const addr = srv.address();
      const got = typeof addr === 'object' && addr ? addr.port : null;
      srv.close(() => resolve(got));
    });
  });
}

// A free port the OS picks, other than those in `taken` (it may hand a just-released port out again).
export async function freePort(host = '127.0.0.1', taken: ReadonlySet<number> = new Set()): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = await tryListen(0, host);
    if (port === null) break;
    if (!taken.has(port)) return port;
  }
  throw new Error(`no free TCP port on ${host}`);
}

// `count` consecutive free ports (SGLang offsets its KV-event ports by dp rank), avoiding `taken`.
export async function freePortRange(count: number, host = '127.0.0.1', taken: ReadonlySet<number> = new Set()): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * (60_000 - 20_000 - count));
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = !taken.has(base + i) && (await tryListen(base + i, host)) !== null;
    if (ok) return base;
  }
  throw new Error(`no ${count} consecutive free TCP ports on ${host}`);
}
