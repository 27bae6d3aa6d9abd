// A server binary the distributed tests start and stop themselves (etcd, nats-server): spawn,
// poll `ready()` until it answers (its stderr quoted when it exits or times out), SIGKILL.

import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

// A free port below the kernel's ephemeral range (32768-60999 on Linux), for a server that a test
// stops and starts again on the same port: a port from listen(0) would be handed meanwhile to
// another test's socket or server (other files run in parallel), and the clients would
// reconnect to that stranger instead.
export async function restartablePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

export abstract class ServerProcess {
  private proc: ChildProcess | null = null;
  private log = '';

  protected abstract command(): [string, string[]];
  protected abstract ready(): Promise<boolean>;

  async start(): Promise<void> {
    const [cmd, args] = this.command();
    const proc = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    proc.stderr!.on('data', (d) => (this.log = (this.log + d).slice(-20_000)));
    const end = Date.now() + 20_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`${cmd} exited (${proc.exitCode}):\n${this.log.slice(-3000)}`);
      if (await this.ready()) return;
      if (Date.now() > end) throw new Error(`${cmd} did not become ready:\n${this.log.slice(-3000)}`);
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
