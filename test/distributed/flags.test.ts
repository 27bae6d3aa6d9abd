// --discovery and --event-plane: what is refused, with a message naming the flag, before
// anything starts.

import { describe, expect, it } from 'vitest';
import { run as serve } from '../../src/cli/commands/serve.js';
import { run as worker } from '../../src/cli/commands/worker.js';

describe('--discovery and --event-plane flags', () => {
  it('kvgate serve refuses malformed URLs and combinations that cannot work', async () => {
    await expect(serve(['--discovery', 'http://127.0.0.1:2379'])).rejects.toThrow("--discovery: 'http://127.0.0.1:2379' is not etcd://host:port");
    await expect(serve(['--discovery', 'etcd://127.0.0.1:2379', '--worker-urls', 'ws://127.0.0.1:1'])).rejects.toThrow('--discovery finds the workers: give it without --worker-urls/--engine-urls');
    await expect(serve(['--discovery', 'etcd://127.0.0.1:2379', '--', '--page-size', '16'])).rejects.toThrow(/engine arguments after --/);
    await expect(serve(['--event-plane', 'nats://127.0.0.1:4222'])).rejects.toThrow('--event-plane takes the events of workers started with the same --event-plane');
    await expect(serve(['--event-plane', 'nats:/x', '--discovery', 'etcd://127.0.0.1:2379'])).rejects.toThrow("--event-plane: 'nats:/x' is not nats://host:port");
    await expect(serve(['--event-plane', 'nats://127.0.0.1:4222', '--discovery', 'etcd://127.0.0.1:2379', '--event-plane-stale-after', '1'])).rejects.toThrow('--event-plane-stale-after must be 0 (never) or at least 2 s');
  });

  it('kvgate worker refuses malformed URLs', async () => {
    await expect(worker(['--engine', 'mocker', '--discovery', 'etcd://'])).rejects.toThrow("--discovery: 'etcd://' is not etcd://host:port");
    await expect(worker(['--engine', 'mocker', '--event-plane', 'nats://a'])).rejects.toThrow("--event-plane: 'nats://a' is not nats://host:port");
  });
});
