// A real etcd (Debian etcd-server 3.4) for tests: one member on 127.0.0.1, free ports, a
// temporary data directory. stop() and start() again keep the data (an etcd restart).

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/worker/ports.js';

export class EtcdServer {
  private proc: ChildProcess | null = null;
  private log = '';
  private constructor(
    readonly dataDir: string,
    readonly clientPort: number,
    readonly peerPort: number,
  ) {}

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

  async start(): Promise<void> {
    const client = `http://127.0.0.1:${this.clientPort}`;
    const peer = `http://127.0.0.1:${this.peerPort}`;
    const args = ['--name', 'kvgate-test', '--data-dir', this.dataDir, '--listen-client-urls', client, '--advertise-client-urls', client];
    args.push('--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `kvgate-test=${peer}`);
    const proc = spawn('etcd', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    proc.stderr!.on('data', (d) => (this.log = (this.log + d).slice(-20_000)));
    const end = Date.now() + 20_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`etcd exited (${proc.exitCode}):\n${this.log.slice(-3000)}`);
      try {
        const r = await fetch(`${client}/health`);
        if (r.ok && ((await r.json()) as { health?: string }).health === 'true') return;
      } catch {
        // not listening yet
      }
      if (Date.now() > end) throw new Error(`etcd did not become healthy:\n${this.log.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async stop(): Promise<void> {
    const p = this.proc;
    this.proc = null;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGKILL');
    await exited;
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}
