// The abort signal of each attempt at a worker: aborted when the client goes away, or when the
// attempt outlives --request-timeout-secs (a TimeoutError, as AbortSignal.timeout gives).
//
// One controller per attempt and one sweep timer per router, instead of AbortSignal.any over
// AbortSignal.timeout per attempt: that pair (a timer, weak references and a finalization
// registry per request) was among the router's top JS costs in a --cpu-prof of
// bench:sgl-router (bench/README.md, kvgate router). All attempts share one timeout, so the
// ones started first expire first: the sweep stops at the first that has not.

export class Attempt {
  private readonly controller = new AbortController();
  private readonly onClientGone = () => this.controller.abort(this.client.reason);

  constructor(
    private readonly client: AbortSignal,
    private readonly owner: AttemptSignals,
  ) {
    if (client.aborted) this.controller.abort(client.reason);
    else client.addEventListener('abort', this.onClientGone, { once: true });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  timeout(): void {
    this.controller.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError'));
  }

  // The attempt is over (answered, failed or given up): nothing more to abort.
  done(): void {
    this.client.removeEventListener('abort', this.onClientGone);
    this.owner.forget(this);
  }
}

export class AttemptSignals {
  // Insertion order is deadline order.
  private readonly live = new Map<Attempt, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly timeoutMs: number) {}

  open(client: AbortSignal): Attempt {
    const a = new Attempt(client, this);
    this.live.set(a, performance.now() + this.timeoutMs);
    // A timeout is seen within a quarter of it (at most 1 s late).
    this.timer ??= setInterval(() => this.sweep(), Math.min(1000, Math.max(10, this.timeoutMs / 4))).unref();
    return a;
  }

  forget(a: Attempt): void {
    this.live.delete(a);
    this.stopIfIdle();
  }

  private stopIfIdle(): void {
    if (this.live.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private sweep(): void {
    const now = performance.now();
    for (const [a, deadline] of this.live) {
      if (deadline > now) break;
      this.live.delete(a);
      a.timeout();
    }
    this.stopIfIdle();
  }
}
