// Admission control (reference/sglang.md §4.9): at most `maxConcurrent` generation requests
// are served at once; the next `queueSize` wait in FIFO order for at most `queueTimeoutMs`.
// A full queue is 429 and a wait that runs out 503, both with Retry-After, so overload shows
// as clear errors rather than unbounded latency. A client that leaves while queued frees
// its place at once.

import { KvgateError } from '../errors.js';

export interface AdmissionOptions {
  maxConcurrent: number; // 0: no limit
  queueSize: number;
  queueTimeoutMs: number;
}

// What a refused client is told to wait, in seconds.
const RETRY_AFTER_S = 1;

interface Waiter {
  admit(): void;
  refuse(err: KvgateError): void;
}

export class Admission {
  private active = 0;
  private readonly queue: Waiter[] = [];

  constructor(
    private readonly opts: AdmissionOptions,
    private readonly onQueued: (delta: number) => void = () => undefined,
  ) {}

  get queued(): number {
    return this.queue.length;
  }

  // Resolves with the release function once the request may run.
  acquire(signal: AbortSignal): Promise<() => void> {
    if (this.opts.maxConcurrent <= 0) return Promise.resolve(() => undefined);
    if (this.active < this.opts.maxConcurrent && this.queue.length === 0) return Promise.resolve(this.slot());
    if (this.queue.length >= this.opts.queueSize) {
      return Promise.reject(
        new KvgateError('too_many_requests', `the server is at its limit of ${this.opts.maxConcurrent} concurrent requests and ${this.opts.queueSize} queued; retry later`, null, RETRY_AFTER_S),
      );
    }
    return new Promise((resolve, reject) => {
      const leave = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        const i = this.queue.indexOf(w);
        if (i >= 0) {
          this.queue.splice(i, 1);
          this.onQueued(-1);
        }
      };
      const w: Waiter = {
        admit: () => {
          leave();
          resolve(this.slot());
        },
        refuse: (err) => {
          leave();
          reject(err);
        },
      };
      const timer = setTimeout(
        () => w.refuse(new KvgateError('queue_timeout', `the request waited ${this.opts.queueTimeoutMs / 1000} s for one of the ${this.opts.maxConcurrent} request slots; retry later`, null, RETRY_AFTER_S)),
        this.opts.queueTimeoutMs,
      );
      const onAbort = () => w.refuse(new KvgateError('client_closed_request', 'the client left while the request was queued'));
      signal.addEventListener('abort', onAbort, { once: true });
      this.queue.push(w);
      this.onQueued(1);
      if (signal.aborted) onAbort();
    });
  }

  private slot(): () => void {
    this.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.active--;
      if (this.active < this.opts.maxConcurrent) this.queue[0]?.admit();
    };
  }
}
