// A real NATS server (Debian nats-server 2.9) for tests, on 127.0.0.1 and a free port (outside
// the ephemeral range);
// stop() and start() again reuse the port (a NATS restart). `extra`: more nats-server flags
// (--user/--pass, --auth, --tls ...).

import { connect } from 'node:net';
import { restartablePort, ServerProcess } from './server_process.js';

export class NatsServer extends ServerProcess {
  private constructor(
    readonly port: number,
    readonly extra: string[],
  ) {
    super();
  }

  static async start(extra: string[] = []): Promise<NatsServer> {
    const s = new NatsServer(await restartablePort(), extra);
    await s.start();
    return s;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  protected command(): [string, string[]] {
    return ['nats-server', ['-a', '127.0.0.1', '-p', String(this.port), ...this.extra]];
  }

  // Ready once it accepts and greets (INFO {...}).
  protected ready(): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const sock = connect(this.port, '127.0.0.1');
      sock.once('data', (d) => (sock.destroy(), resolve(d.toString().startsWith('INFO'))));
      sock.once('error', () => resolve(false));
    });
  }
}
