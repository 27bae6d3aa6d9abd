// A real etcd (Debian etcd-server 3.4) for tests: one member on 127.0.0.1, free ports, a
// temporary data directory. stop() and start() again keep the data (an etcd restart).
// With `tls` it serves its clients over TLS only (https) and requires client certificates
// signed by the test CA.

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { restartablePort, ServerProcess } from './server_process.js';
import type { TestCerts } from './test_certs.js';

export class EtcdServer extends ServerProcess {
  private constructor(
    readonly dataDir: string,
    readonly clientPort: number,
    readonly peerPort: number,
    readonly tls: TestCerts | null,
  ) {
    super();
  }

  static async start(tls: TestCerts | null = null): Promise<EtcdServer> {
    const client = await restartablePort();
    let peer = await restartablePort();
    while (peer === client) peer = await restartablePort();
    const s = new EtcdServer(mkdtempSync(join(tmpdir(), 'kvgate-etcd-')), client, peer, tls);
    await s.start();
    return s;
  }

  get url(): string {
    return `etcd://127.0.0.1:${this.clientPort}`;
  }

  // For etcdctl (a client on the same endpoint).
  get endpoint(): string {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.clientPort}`;
  }

  protected command(): [string, string[]] {
    const client = this.endpoint;
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const args = ['--name', 'kvgate-test', '--data-dir', this.dataDir, '--listen-client-urls', client, '--advertise-client-urls', client];
    args.push('--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `kvgate-test=${peer}`);
    if (this.tls) args.push('--cert-file', this.tls.server.cert, '--key-file', this.tls.server.key, '--client-cert-auth', '--trusted-ca-file', this.tls.ca);
    return ['etcd', args];
  }

  protected async ready(): Promise<boolean> {
    if (this.tls) return (await this.etcdctl(['endpoint', 'health'], null).catch(() => '')).includes('is healthy');
    try {
      const r = await fetch(`http://127.0.0.1:${this.clientPort}/health`);
      return r.ok && ((await r.json()) as { health?: string }).health === 'true';
    } catch {
      return false; // not listening yet
    }
  }

  // Runs etcdctl (Debian etcd-client) against this member, as `user` ('name:password') if given.
  etcdctl(args: string[], user: string | null): Promise<string> {
    const flags = [`--endpoints=${this.endpoint}`, ...(user ? [`--user=${user}`] : []), ...(this.tls ? [`--cacert=${this.tls.ca}`, `--cert=${this.tls.client.cert}`, `--key=${this.tls.client.key}`] : [])];
    return new Promise((resolve, reject) =>
      execFile('etcdctl', [...flags, ...args], { env: { ...process.env, ETCDCTL_API: '3' }, timeout: 10_000 }, (err, stdout, stderr) => (err ? reject(new Error(`etcdctl ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout + stderr))),
    );
  }

  // Turns on etcd's authentication with a root user (every client must log in from now on).
  async enableAuth(rootPassword: string): Promise<void> {
    await this.etcdctl(['user', 'add', `root:${rootPassword}`], null);
    await this.etcdctl(['user', 'grant-role', 'root', 'root'], null);
    await this.etcdctl(['auth', 'enable'], null);
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
