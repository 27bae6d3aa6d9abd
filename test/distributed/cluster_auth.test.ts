// Cluster authentication with real processes: etcd with its authentication on (etcdctl from
// Debian etcd-client), nats-server with a user and password, a `kvgate worker` and
// `kvgate serve` given the cluster token, the engine API key and both sets of credentials
// through environment variables and files. Checked as a user sees it:
// - the authorized frontend finds the worker (etcd), routes on its KV events (NATS) and
//   streams from its engine (Bearer key);
// - the engine (the mocker, as SGLang's --api-key) refuses requests without the key with 401
//   but answers /health; the worker's request plane refuses a WebSocket without the token (401);
// - a frontend proves the token without sending it, and refuses a stray "worker" that cannot
//   prove it back;
// - a frontend with a wrong token is refused by the worker (logged by both; /health says why);
// - a worker with a wrong etcd password never registers, one with a wrong NATS password exits;
// - no secret appears in any log line of any of these processes.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { afterAll, describe, expect, it } from 'vitest';
import { parseCommandLine } from '../../src/config.js';
import { ETCD_WORKERS_PREFIX, etcdEndpoints } from '../../src/discovery/etcd.js';
import { clusterSecrets } from '../../src/security/secrets.js';
import { NatsEventPublisher } from '../../src/transport/nats_event_plane.js';
import { MODEL, waitFor } from '../e2e/stack.js';
import { EtcdServer } from './etcd_server.js';
import { NatsServer } from './nats_server.js';
import { chat, health, killAll, startFrontend, startWorker, type Proc } from './processes.js';

const TOKEN = 'cluster-token-7f3a91c2e5';
const ENGINE_KEY = 'engine-key-b81d04e6aa';
const ETCD_PASSWORD = 'etcd-pass-2c9e77d1f0';
const NATS_PASSWORD = 'nats-pass-5a0b3e88c4';
const SECRETS = [TOKEN, ENGINE_KEY, ETCD_PASSWORD, NATS_PASSWORD];

let etcd: EtcdServer | null = null;
let nats: NatsServer | null = null;
const dir = mkdtempSync(join(tmpdir(), 'kvgate-auth-'));
afterAll(async () => {
  await killAll();
  await nats?.stop();
  await etcd?.destroy();
  rmSync(dir, { recursive: true, force: true });
});

const file = (name: string, content: string) => {
  const p = join(dir, name);
  writeFileSync(p, content + '\n', { mode: 0o600 });
  return p;
};

describe('cluster authentication: cluster token, engine API key, etcd and NATS credentials', () => {
  it('admits only what holds the secrets, and never logs them', { timeout: 180_000 }, async () => {
    etcd = await EtcdServer.start();
    await etcd.enableAuth(ETCD_PASSWORD);
    nats = await NatsServer.start(['--user', 'kvgate', '--pass', NATS_PASSWORD]);
    const flags = ['--discovery', etcd.url, '--event-plane', nats.url, '--etcd-username', 'root', '--nats-user', 'kvgate'];
    // The worker takes everything from its environment, the frontend from files and variables.
    const workerEnv = { KVGATE_CLUSTER_TOKEN: TOKEN, KVGATE_ENGINE_API_KEY: ENGINE_KEY, KVGATE_ETCD_PASSWORD: ETCD_PASSWORD, KVGATE_NATS_PASSWORD: NATS_PASSWORD };
    const w = await startWorker(flags, workerEnv);
    const a = await startFrontend([...flags, '--cluster-token-file', file('token', TOKEN), '--engine-api-key-file', file('engine-key', ENGINE_KEY), '--etcd-password-file', file('etcd', ETCD_PASSWORD)], {
      KVGATE_NATS_PASSWORD: NATS_PASSWORD,
    });
    const procs: Proc[] = [w, a];

    // Authorized: found, routed exactly on events from NATS, streamed from the keyed engine.
    await waitFor(async () => (await health(a.url)).status === 'healthy', 'the frontend to admit the worker');
    expect((await health(a.url)).workers).toEqual([{ name: w.url, model: MODEL, role: 'agg', healthy: true }]);
    await chat(a.url);
    const second = await chat(a.url);
    expect(second.usage!.prompt_tokens_details?.cached_tokens).toBeGreaterThanOrEqual(64);

    // The record in etcd needs the credentials to read; it names the engine, which wants its key.
    const denied = new Etcd3({ hosts: etcdEndpoints(etcd.url) });
    await expect(denied.getAll().prefix(ETCD_WORKERS_PREFIX).strings()).rejects.toThrow(/user name is empty|permission denied|authentication/i);
    denied.close();
    const root = new Etcd3({ hosts: etcdEndpoints(etcd.url), auth: { username: 'root', password: ETCD_PASSWORD } });
    const [record] = Object.values(await root.getAll().prefix(ETCD_WORKERS_PREFIX).json()) as { card: { engineUrl: string } }[];
    root.close();
    const engine = record!.card.engineUrl;
    const generate = (headers: Record<string, string>) =>
      fetch(`${engine}/generate`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ input_ids: [1, 2, 3], sampling_params: { max_new_tokens: 2 } }) });
    const noKey = await generate({});
    expect(noKey.status).toBe(401);
    expect(await noKey.json()).toEqual({ error: 'Unauthorized' });
    expect((await generate({ authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await generate({ authorization: `bearer ${ENGINE_KEY}` })).status).toBe(200);
    expect((await fetch(`${engine}/health`)).status).toBe(200);
    expect((await fetch(`${engine}/model_info`)).status).toBe(401);

    // The request plane without the token: 401 at the upgrade, and the worker logs it.
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(w.url);
      ws.on('unexpected-response', (_req, res) => (resolve(res.statusCode ?? 0), ws.terminate()));
      ws.on('open', () => (resolve(101), ws.terminate()));
      ws.on('error', () => undefined);
    });
    expect(status).toBe(401);
    await waitFor(() => /refused a request-plane connection from 127\.0\.0\.1: no cluster token/.test(w.stderr()), 'the worker to log the refusal');

    // A frontend with the wrong token finds the worker in etcd but is refused by it.
    const b = await startFrontend([...flags, '--served-model-name', MODEL, '--engine-wait', '0'], {
      KVGATE_CLUSTER_TOKEN: 'not-the-token',
      KVGATE_ETCD_PASSWORD: ETCD_PASSWORD,
      KVGATE_NATS_PASSWORD: NATS_PASSWORD,
      KVGATE_ENGINE_API_KEY: ENGINE_KEY,
    });
    procs.push(b);
    await waitFor(async () => (await health(b.url)).workers[0]?.reason?.includes('cluster token') === true, 'the refused frontend to say why');
    const hb = await health(b.url);
    expect(hb.workers).toMatchObject([{ name: w.url, healthy: false }]);
    expect(b.stderr()).toContain("worker refused this frontend's cluster token (401)");
    await waitFor(() => /refused a request-plane connection from 127\.0\.0\.1: wrong cluster token/.test(w.stderr()), 'the worker to log the wrong token');
    const refused = await fetch(`${b.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }) });
    expect(refused.status).toBe(503);

    // A worker with the wrong etcd password starts but never registers (and says why).
    const stray = await startWorker(flags, { ...workerEnv, KVGATE_ETCD_PASSWORD: 'wrong' });
    procs.push(stray);
    await waitFor(() => /etcd: cannot register [0-9a-f]{16}: .*(authentication failed|invalid user ID or password)/i.test(stray.stderr()), 'the stray worker to log its refusal').catch((err: Error) => {
      throw new Error(`${err.message}:\n${stray.stderr().slice(-2000)}`);
    });
    expect((await health(a.url)).workers.map((x) => x.name)).toEqual([w.url]);

    // A worker with the wrong NATS password exits at once with the reason.
    const noNats = await startWorker(flags, { ...workerEnv, KVGATE_NATS_PASSWORD: 'wrong' }).catch((err: Error) => err);
    expect(noNats).toBeInstanceOf(Error);
    expect((noNats as Error).message).toMatch(/--event-plane nats:\/\/127\.0\.0\.1:\d+: Authorization Violation/);

    // Secrets appear in no log line: not the worker's, its engine's (--api-key is redacted
    // from the logged command line), nor any frontend's.
    expect(w.stderr()).toMatch(/starting engine: .* --api-key '?<redacted>'?/);
    for (const p of procs) {
      const out = p.stdout() + p.stderr();
      for (const secret of SECRETS) expect(out.includes(secret), `a secret in the log of ${p.url}`).toBe(false);
    }
    expect((noNats as Error).message.includes(NATS_PASSWORD)).toBe(false);
  });

  it('NATS with a token: the right one connects, a wrong one is refused at once', { timeout: 30_000 }, async () => {
    const n = await NatsServer.start(['--auth', 'nats-token-31d9']);
    try {
      const ok = await NatsEventPublisher.connect(n.url, { access: clusterSecrets(parseCommandLine('worker', []).options, { KVGATE_NATS_TOKEN: 'nats-token-31d9' }).nats });
      await ok.close();
      await expect(NatsEventPublisher.connect(n.url, { access: { token: 'wrong' } })).rejects.toThrow(/Authorization Violation/);
    } finally {
      await n.stop();
    }
  });

  it('a frontend proves the token without sending it, and refuses a "worker" that cannot prove it back', { timeout: 60_000 }, async () => {
    // A stray WebSocket server posing as a worker: it accepts any upgrade and records it.
    const seen: string[] = [];
    const stray = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    stray.on('connection', (_ws, req) => seen.push(JSON.stringify(req.headers)));
    await new Promise((r) => stray.once('listening', r));
    try {
      const url = `ws://127.0.0.1:${(stray.address() as AddressInfo).port}`;
      const f = await startFrontend(['--worker-urls', url, '--served-model-name', MODEL, '--engine-wait', '0'], { KVGATE_CLUSTER_TOKEN: TOKEN });
      await waitFor(async () => (await health(f.url)).workers[0]?.reason?.includes('did not prove the cluster token') === true, 'the frontend to refuse the stray');
      expect(f.stderr()).toContain(`worker ${url}: worker did not prove the cluster token`);
      expect(seen.length).toBeGreaterThan(0);
      for (const h of seen) {
        expect(h).toMatch(/"authorization":"KvgateHmac ts=\d+,nonce=[0-9a-f]{32},mac=[0-9a-f]{64}"/);
        expect(h.includes(TOKEN)).toBe(false);
      }
    } finally {
      stray.close();
    }
  });
});
