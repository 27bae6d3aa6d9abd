// The request plane over TLS, with real processes and a CA made with openssl: a
// `kvgate worker --tls-cert-file/--tls-key-file` serves wss://, a frontend given the CA
// (--tls-ca-file) admits it and serves through it, a frontend without the CA refuses the
// worker's certificate (and /health says so), and a plain ws:// client gets nowhere.

import WebSocket from 'ws';
import { afterAll, describe, expect, it } from 'vitest';
import { MODEL, waitFor } from '../e2e/stack.js';
import { chat, health, killAll, startFrontend, startWorker } from './processes.js';
import { makeCerts } from './test_certs.js';

const certs = makeCerts();
afterAll(async () => {
  await killAll();
  certs.remove();
});

describe('request plane over TLS', () => {
  it('serves wss:// to frontends that trust its CA, and to no one else', { timeout: 120_000 }, async () => {
    const env = { KVGATE_CLUSTER_TOKEN: 'tls-token' };
    const w = await startWorker(['--tls-cert-file', certs.server.cert, '--tls-key-file', certs.server.key], env);
    expect(w.url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
    const [trusting, doubting] = await Promise.all([
      startFrontend(['--worker-urls', w.url, '--tls-ca-file', certs.ca], env),
      startFrontend(['--worker-urls', w.url, '--served-model-name', MODEL, '--engine-wait', '0'], env),
    ]);
    expect((await health(trusting.url)).workers).toEqual([{ name: w.url, model: MODEL, role: 'agg', healthy: true }]);
    expect((await chat(trusting.url)).usage!.completion_tokens).toBeGreaterThan(0);

    await waitFor(async () => /certificate/i.test((await health(doubting.url)).workers[0]?.reason ?? ''), 'the doubting frontend to refuse the certificate');
    expect((await health(doubting.url)).workers[0]).toMatchObject({ healthy: false });

    // Plain WebSocket against the TLS port: no upgrade.
    const plain = await new Promise<string>((resolve) => {
      const ws = new WebSocket(w.url.replace('wss:', 'ws:'));
      ws.on('open', () => (resolve('open'), ws.terminate()));
      ws.on('error', (err) => resolve(err.message));
    });
    expect(plain).not.toBe('open');
  });
});
