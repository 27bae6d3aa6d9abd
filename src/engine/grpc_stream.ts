// A server-streaming gRPC call read straight off @grpc/grpc-js's channel call, without the
// Node Readable that Client.makeServerStreamRequest wraps it in: that stream's buffering,
// nextTick hops and async iterator were most of the client's per-token cost (measured in
// bench/engine). Messages are read ahead as they arrive and handed over in batches: a reader
// that was busy takes every message queued meanwhile at once.

import * as grpc from '@grpc/grpc-js';

type ClientChannel = ReturnType<grpc.Client['getChannel']>;

export class ServerStream<T> {
  private readonly call: ReturnType<ClientChannel['createCall']>;
  private queue: T[] = [];
  private status: grpc.StatusObject | null = null;
  private wake: (() => void) | null = null;

  constructor(channel: ClientChannel, path: string, request: Buffer, private readonly deserialize: (b: Buffer) => T) {
    this.call = channel.createCall(path, Infinity, null, null, grpc.propagate.DEFAULTS);
    this.call.start(new grpc.Metadata(), {
      onReceiveMetadata: () => undefined,
      onReceiveMessage: (bytes: Buffer) => {
        this.queue.push(this.deserialize(bytes));
        this.call.startRead();
        this.notify();
      },
      onReceiveStatus: (status: grpc.StatusObject) => {
        this.status ??= status;
        this.notify();
      },
    });
    this.call.sendMessageWithContext({}, request);
    this.call.halfClose();
    this.call.startRead();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  // The messages received since the last call (waiting for one if none), or null once the
  // call ended with OK. Throws a grpc ServiceError-like object for any other status.
  async next(): Promise<T[] | null> {
    while (this.queue.length === 0) {
      const s = this.status;
      if (s) {
        if (s.code === grpc.status.OK) return null;
        throw Object.assign(new Error(`${s.code} ${grpc.status[s.code]}: ${s.details}`), { code: s.code, details: s.details, metadata: s.metadata });
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
    const batch = this.queue;
    this.queue = [];
    return batch;
  }

  // Ends the call (the server sees it cancelled); later next() calls throw CANCELLED.
  cancel(): void {
    if (!this.status) this.call.cancelWithStatus(grpc.status.CANCELLED, 'Cancelled on client');
  }
}
