// The per-worker circuit breaker of both routers (the frontend's worker set and the drop-in
// `kvgate router`), with SGLang's gateway's semantics and defaults (reference/sglang.md
// §4.8): `failureThreshold` consecutive failures (5xx, unreachable, timeouts), within
// `windowMs` when that is set, open it; open, the worker takes no requests for `openMs`;
// then half-open, it takes requests again and `successThreshold` successes close it, while
// one failure opens it again. Failures of requests still in flight when it opened are not
// counted. Every transition is reported to `onTransition` (metrics, logs).

export interface BreakerOptions {
  // 0: the breaker never opens.
  failureThreshold: number;
  successThreshold: number;
  openMs: number;
  // 0: consecutive failures count however far apart (SGLang's gateway).
  windowMs: number;
}

export const DEFAULT_BREAKER: BreakerOptions = { failureThreshold: 10, successThreshold: 3, openMs: 60_000, windowMs: 120_000 };

// SGLang's gateway's spellings (its transition metric's from_state/to_state labels).
export type BreakerState = 'closed' | 'open' | 'half_open';

// The gauge encoding SGLang's gateway uses.
export const BREAKER_STATE_VALUE: Record<BreakerState, number> = { closed: 0, open: 1, half_open: 2 };

export type BreakerTransition = (from: BreakerState, to: BreakerState) => void;

export class CircuitBreaker {
  private current: BreakerState = 'closed';
  private failures = 0;
  private firstFailureAt = 0;
  private successes = 0;
  private openedAt = 0;

  constructor(
    private readonly opts: BreakerOptions,
    private readonly onTransition: BreakerTransition = () => undefined,
    private readonly now: () => number = Date.now,
  ) {}

  get state(): BreakerState {
    return this.current;
  }

  get consecutiveFailures(): number {
    return this.failures;
  }

  // Whether the worker may take a request now; an open breaker whose open period is over
  // turns half-open here (the drop-in router asks this on every pick).
  allows(): boolean {
    if (this.current === 'open' && this.now() - this.openedAt >= this.opts.openMs) this.halfOpen();
    return this.current !== 'open';
  }

  // A failed request; true when it opened the breaker.
  failure(): boolean {
    if (this.opts.failureThreshold <= 0 || this.current === 'open') return false;
    this.successes = 0;
    if (this.current === 'half_open') return this.move('open');
    const t = this.now();
    if (this.failures === 0 || (this.opts.windowMs > 0 && t - this.firstFailureAt > this.opts.windowMs)) {
      this.failures = 0;
      this.firstFailureAt = t;
    }
    return ++this.failures >= this.opts.failureThreshold ? this.move('open') : false;
  }

  success(): void {
    this.failures = 0;
    if (this.current === 'half_open' && ++this.successes >= this.opts.successThreshold) this.move('closed');
  }

  // The open period is over (the frontend's worker set readmits the worker on a timer):
  // it takes requests again, on probation.
  halfOpen(): void {
    if (this.current === 'open') this.move('half_open');
  }

  private move(to: BreakerState): true {
    const from = this.current;
    this.current = to;
    this.failures = 0;
    this.successes = 0;
    if (to === 'open') this.openedAt = this.now();
    this.onTransition(from, to);
    return true;
  }
}
