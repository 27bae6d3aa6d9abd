// --max-concurrent-requests: at most `max` requests served at once; the next `queueSize` wait
// in FIFO order for at most `timeoutMs` (408 after); beyond that, 429 at once. SGLang's router
// words this as a token bucket refilled at --rate-limit-tokens-per-second; kvgate limits
// concurrency only (README).

import { KvgateError } from '../errors.js';

export class Admission {
  private running = 0;
  private readonly queue: { grant: () => void }[] = [];
  constructor(
    private readonly max: number, // -1: no limit
    private readonly queueSize: number,
    private readonly timeoutMs: number,
  ) {}

  // Resolves with the release function once a slot is free.
  async acquire(signal: AbortSignal): Promise<() => void> {
    if (this.max < 0) return () => undefined;
    if (this.running < this.max) {
      this.running++;
      return this.releaser();
    }
    if (this.queue.length >= this.queueSize) throw new KvgateError('too_many_requests', `too many requests: ${this.max} running and ${this.queueSize} waiting`);
    await new Promise<void>((resolve, reject) => {
      const entry = {
        grant: () => {
          cleanup();
          resolve();
        },
      };
      const fail = (err: KvgateError): void => {
        const i = this.queue.indexOf(entry);
        if (i >= 0) this.queue.splice(i, 1);
        cleanup();
        reject(err);
      };
      const timer = setTimeout(() => fail(new KvgateError('request_timeout', `waited ${this.timeoutMs / 1000} s for a free slot`)), this.timeoutMs);
      const onAbort = (): void => fail(new KvgateError('client_closed_request', 'the client went away while queued'));
      const cleanup = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.queue.push(entry);
    });
    return this.releaser(); // the slot was handed over by the releaser that granted it
  }

  get inUse(): number {
    return this.running;
  }

  private releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.queue.shift();
      if (next) next.grant();
      else this.running--;
    };
  }
}
