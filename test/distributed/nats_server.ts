// A real NATS server (Debian nats-server 2.9) for tests, on 127.0.0.1 and a free port;
// stop() and start() again reuse the port (a NATS restart).

import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import { freePort } from '../../src/worker/ports.js';

export class NatsServer {
  private proc: ChildProcess | null = null;
  private log = '';
  private constructor(readonly port: number) {}

  static async start(): Promise<NatsServer> {
    const s = new NatsServer(await freePort());
    await s.start();
    return s;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  async start(): Promise<void> {
    const proc = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(this.port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    proc.stderr!.on('data', (d) => (this.log = (this.log + d).slice(-20_000)));
    const end = Date.now() + 20_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`nats-server exited (${proc.exitCode}):\n${this.log.slice(-3000)}`);
      // Ready once it accepts and greets (INFO {...}).
      const greeted = await new Promise<boolean>((resolve) => {
        const sock = connect(this.port, '127.0.0.1');
        sock.once('data', (d) => (sock.destroy(), resolve(d.toString().startsWith('INFO'))));
        sock.once('error', () => resolve(false));
      });
      if (greeted) return;
      if (Date.now() > end) throw new Error(`nats-server did not start:\n${this.log.slice(-3000)}`);
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
}
