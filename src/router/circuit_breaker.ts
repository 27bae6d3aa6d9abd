// A per-worker circuit breaker with SGLang's gateway's semantics and defaults
// (reference/sglang.md §4.8): `failureThreshold` consecutive failures (5xx, unreachable,
// timeouts) within `windowMs` open it; open, the worker takes no requests for `openMs`;
// then half-open, it takes requests again and `successThreshold` successes close it, while
// one failure opens it again. The worker set acts on the transitions (takes the worker out,
// readmits it).

export interface BreakerOptions {
  failureThreshold: number;
  successThreshold: number;
  openMs: number;
  windowMs: number;
}

export const DEFAULT_BREAKER: BreakerOptions = { failureThreshold: 10, successThreshold: 3, openMs: 60_000, windowMs: 120_000 };

export type BreakerState = 'closed' | 'open' | 'half-open';

// The gauge encoding SGLang's gateway uses.
export const BREAKER_STATE_VALUE: Record<BreakerState, number> = { closed: 0, open: 1, 'half-open': 2 };

export class CircuitBreaker {
  state: BreakerState = 'closed';
  private failures = 0;
  private firstFailureAt = 0;
  private successes = 0;

  constructor(
    private readonly opts: BreakerOptions,
    private readonly now: () => number = Date.now,
  ) {}

  // A failed request; true when it opened the breaker.
  failure(): boolean {
    if (this.opts.failureThreshold <= 0 || this.state === 'open') return false;
    if (this.state === 'half-open') return this.open();
    const t = this.now();
    if (this.failures === 0 || t - this.firstFailureAt > this.opts.windowMs) {
      this.failures = 0;
      this.firstFailureAt = t;
    }
    return ++this.failures >= this.opts.failureThreshold ? this.open() : false;
  }

  success(): void {
    if (this.state === 'half-open') {
      if (++this.successes >= this.opts.successThreshold) this.state = 'closed';
    }
    if (this.state === 'closed') this.failures = 0;
  }

  // The open period is over: the worker takes requests again, on probation.
  halfOpen(): void {
    if (this.state !== 'open') return;
    this.state = 'half-open';
    this.successes = 0;
  }

  private open(): true {
    this.state = 'open';
    this.failures = 0;
    this.successes = 0;
    return true;
  }
}
