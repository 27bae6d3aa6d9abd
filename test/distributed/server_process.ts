// A server binary the distributed tests start and stop themselves (etcd, nats-server): spawn,
// poll `ready()` until it answers (its stderr quoted when it exits or times out), SIGKILL.

import { spawn, type ChildProcess } from 'node:child_process';

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
