// Admission to the tokenizer by input size. Encodes run on libuv's thread pool
// (UV_THREADPOOL_SIZE threads, 4 by default, shared with fs and dns): a multi-megabyte prompt
// holds a thread for seconds and ~150 bytes of memory per input byte, so four of them would
// stall every other request until they finish. Small inputs go straight to the pool. Large
// ones queue (first come, first served) for a byte budget and at most `maxLarge` threads, so
// the other threads stay free for small requests and the memory of large encodes in flight
// stays bounded.

import { availableParallelism } from 'node:os';
import { KvgateError } from '../errors.js';

export interface TokenizeLimiterOptions {
  // Inputs up to this many chars are small: never queued.
  smallChars: number;
  // Chars of large inputs being tokenized at once (one larger than this runs alone).
  budgetChars: number;
  // Large inputs being tokenized at once.
  maxLarge: number;
}

interface Waiter {
  weight: number;
  start: () => void;
}

function cancelled(signal: AbortSignal): KvgateError {
  return signal.reason instanceof KvgateError ? signal.reason : new KvgateError('client_closed_request', 'the client left while its prompt waited for the tokenizer');
}

export class TokenizeLimiter {
  private readonly queue: Waiter[] = [];
  private activeChars = 0;
  private activeLarge = 0;

  constructor(readonly options: TokenizeLimiterOptions) {}

  // Large inputs waiting for their turn / being tokenized (for tests and metrics).
  get waiting(): number {
    return this.queue.length;
  }
  get running(): number {
    return this.activeLarge;
  }

  // Runs `work` when an input of `chars` chars may be tokenized. A signal that aborts while
  // the input waits takes it out of the queue: rejects with the signal's reason when that is
  // a KvgateError (shutting_down), else client_closed_request.
  async run<T>(chars: number, work: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (chars <= this.options.smallChars) return work();
    if (signal?.aborted) throw cancelled(signal);
    const weight = Math.min(chars, this.options.budgetChars);
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        weight,
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        reject(cancelled(signal!));
        this.admit(); // a smaller waiter behind it may fit now
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
      this.admit();
    });
    try {
      return await work();
    } finally {
      this.activeChars -= weight;
      this.activeLarge--;
      this.admit();
    }
  }

  private admit(): void {
    const { budgetChars, maxLarge } = this.options;
    while (this.queue.length > 0 && this.activeLarge < maxLarge && this.activeChars + this.queue[0]!.weight <= budgetChars) {
      const w = this.queue.shift()!;
      this.activeChars += w.weight;
      this.activeLarge++;
      w.start();
    }
  }
}

// One pool per process, so one limiter for every tokenizer. Large inputs get half the pool,
// and leave a core to the event loop (at least one thread); 64 Ki chars is ~16K tokens,
// ~15 ms of encoding.
function poolSize(): number {
  const n = Number(process.env['UV_THREADPOOL_SIZE']);
  return Number.isInteger(n) && n > 0 ? n : 4;
}

export const tokenizeLimiter = new TokenizeLimiter({
  smallChars: 64 * 1024,
  budgetChars: 8 * 1024 * 1024,
  maxLarge: Math.max(1, Math.min(Math.floor(poolSize() / 2), availableParallelism() - 1)),
});
