// A real etcd (Debian etcd-server 3.4) for tests: one member on 127.0.0.1, free ports, a
// temporary data directory. stop() and start() again keep the data (an etcd restart).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/worker/ports.js';
import { ServerProcess } from './server_process.js';

export class EtcdServer extends ServerProcess {
  private constructor(
    readonly dataDir: string,
    readonly clientPort: number,
    readonly peerPort: number,
  ) {
    super();
  }

  static async start(): Promise<EtcdServer> {
    const client = await freePort();
    let peer = await freePort();
    while (peer === client) peer = await freePort();
    const s = new EtcdServer(mkdtempSync(join(tmpdir(), 'kvgate-etcd-')), client, peer);
    await s.start();
    return s;
  }

  get url(): string {
    return `etcd://127.0.0.1:${this.clientPort}`;
  }

  protected command(): [string, string[]] {
    const client = `http://127.0.0.1:${this.clientPort}`;
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const args = ['--name', 'kvgate-test', '--data-dir', this.dataDir, '--listen-client-urls', client, '--advertise-client-urls', client];
    args.push('--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `kvgate-test=${peer}`);
    return ['etcd', args];
  }

  protected async ready(): Promise<boolean> {
    try {
      const r = await fetch(`http://127.0.0.1:${this.clientPort}/health`);
      return r.ok && ((await r.json()) as { health?: string }).health === 'true';
    } catch {
      return false; // not listening yet
    }
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
