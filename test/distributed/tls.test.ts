// etcd and NATS over TLS, with client certificates, on real servers (Debian etcd-server and
// nats-server) and a CA made here with openssl: the flags (--etcd-ca-file, --nats-cert-file,
// ...) reach the clients through clusterSecrets(), a worker registers and a frontend finds it
// over TLS, events pass over TLS, and a client without the CA is refused.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCommandLine } from '../../src/config.js';
import { EtcdDiscovery, EtcdRegistry } from '../../src/discovery/etcd.js';
import { clusterSecrets } from '../../src/security/secrets.js';
import { NatsEventPublisher, NatsEventSubscriber } from '../../src/transport/nats_event_plane.js';
import { decodeFrame } from '../../src/transport/frames.js';
import { waitFor } from '../e2e/stack.js';
import { card } from '../transport/card.js';
import { EtcdServer } from './etcd_server.js';
import { NatsServer } from './nats_server.js';
import { makeCerts, type TestCerts } from './test_certs.js';

let certs: TestCerts;
let etcd: EtcdServer | null = null;
let nats: NatsServer | null = null;
beforeAll(() => {
  certs = makeCerts();
});
afterAll(async () => {
  await nats?.stop();
  await etcd?.destroy();
  certs.remove();
});

// What `kvgate worker`/`serve` make of the TLS flags.
const tlsFlags = (c: TestCerts) => [
  ...['--etcd-ca-file', c.ca, '--etcd-cert-file', c.client.cert, '--etcd-key-file', c.client.key],
  ...['--nats-ca-file', c.ca, '--nats-cert-file', c.client.cert, '--nats-key-file', c.client.key],
];

describe('TLS to etcd and NATS', () => {
  it('the flags become the clients\' TLS files, and a half-given client certificate is refused', () => {
    const s = clusterSecrets(parseCommandLine('worker', tlsFlags(certs)).options, {});
    expect(s.etcd).toEqual({ tls: { ca: certs.ca, cert: certs.client.cert, key: certs.client.key } });
    expect(s.nats).toEqual({ tls: { ca: certs.ca, cert: certs.client.cert, key: certs.client.key } });
    expect(() => clusterSecrets(parseCommandLine('serve', ['--etcd-cert-file', certs.client.cert]).options, {})).toThrow('--etcd-cert-file and --etcd-key-file go together');
    expect(() => clusterSecrets(parseCommandLine('serve', ['--nats-ca-file', '/nonexistent/ca.pem']).options, {})).toThrow('--nats-ca-file: cannot read /nonexistent/ca.pem (ENOENT)');
  });

  it('etcd: a worker registers and a frontend finds it over TLS with client certificates; without the CA nothing connects', { timeout: 60_000 }, async () => {
    etcd = await EtcdServer.start(certs);
    const access = clusterSecrets(parseCommandLine('worker', tlsFlags(certs)).options, {}).etcd;
    const registry = new EtcdRegistry({ url: etcd.url, access });
    const discovery = new EtcdDiscovery({ url: etcd.url, access });
    const plain = new EtcdDiscovery({ url: etcd.url });
    try {
      registry.register({ instanceId: '00000000000000a1', url: 'ws://127.0.0.1:9', card });
      await waitFor(() => registry.registered, 'the registration over TLS');
      await discovery.synced();
      await waitFor(() => discovery.list().length === 1, 'the frontend to find the worker over TLS');
      expect(discovery.health()).toMatchObject({ connected: true, workers: 1 });
      // Plain http against the TLS port: never connected, nothing found.
      await new Promise((r) => setTimeout(r, 1500));
      expect(plain.health()).toMatchObject({ connected: false, workers: 0 });
    } finally {
      await Promise.all([registry.close(), discovery.close(), plain.close()]);
    }
  });

  it('NATS: events pass over mutual TLS; a client without the CA is refused', { timeout: 60_000 }, async () => {
    nats = await NatsServer.start(['--tls', '--tlscert', certs.server.cert, '--tlskey', certs.server.key, '--tlsverify', '--tlscacert', certs.ca]);
    const access = clusterSecrets(parseCommandLine('serve', tlsFlags(certs)).options, {}).nats;
    const got: string[] = [];
    const sub = await NatsEventSubscriber.connect(nats.url, (id, bytes) => got.push(`${id} ${decodeFrame(bytes).type}`), () => undefined, { access });
    const pub = await NatsEventPublisher.connect(nats.url, { access });
    try {
      await waitFor(() => {
        pub.send({ type: 'load', report: { instanceId: 0xa2n, timestampMs: Date.now(), ranks: [] } });
        return got.length > 0;
      }, 'a frame over TLS');
      expect(got[0]).toBe('00000000000000a2 load');
      expect(sub.health()).toMatchObject({ backend: 'nats', connected: true });
      // Without the CA the server's certificate does not verify: refused at once, not retried.
      await expect(NatsEventPublisher.connect(nats.url, { access: { tls: { cert: certs.client.cert, key: certs.client.key } } })).rejects.toThrow(/--event-plane nats:\/\/127\.0\.0\.1:\d+: unable to verify the first certificate/);
    } finally {
      await Promise.all([pub.close(), sub.close()]);
    }
  });
});
