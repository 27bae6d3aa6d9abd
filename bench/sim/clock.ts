// Virtual time for the fleet simulator: one event queue (a binary heap on time, then insertion
// order) that every simulated engine's step loop, every arrival and every delayed KV event runs
// on. Implements the mocker scheduler's EngineClock, so the real scheduler code runs unchanged.

import type { EngineClock } from '../../src/mocker/clock.js';

interface Entry {
  at: number;
  seq: number;
  fn: (() => void) | null; // null: cancelled
}

export class VirtualClock implements EngineClock {
  private t = 0;
  private seq = 0;
  private heap: Entry[] = [];

  now(): number {
    return this.t;
  }

  // Runs fn at virtual time `at` (not before now).
  at(at: number, fn: () => void): Entry {
    const e: Entry = { at: Math.max(at, this.t), seq: this.seq++, fn };
    this.push(e);
    return e;
  }

  setTimer(ms: number, fn: () => void): unknown {
    return this.at(this.t + ms, fn);
  }

  clearTimer(handle: unknown): void {
    (handle as Entry).fn = null;
  }

  defer(fn: () => void): void {
    this.at(this.t, fn);
  }

  get pending(): number {
    return this.heap.length;
  }

  // Runs events in order until the queue is empty or `stop` says so; returns the events run.
  run(stop?: () => boolean): number {
    let n = 0;
    while (this.heap.length > 0) {
      const e = this.pop();
      if (!e.fn) continue;
      this.t = e.at;
      e.fn();
      n++;
      if (stop && (n & 1023) === 0 && stop()) break;
    }
    return n;
  }

  private less(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  private push(e: Entry): void {
    const a = this.heap;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(e, a[p]!)) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = e;
  }

  private pop(): Entry {
    const a = this.heap;
    const top = a[0]!;
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const r = l + 1;
        const c = r < a.length && this.less(a[r]!, a[l]!) ? r : l;
        if (!this.less(a[c]!, last)) break;
        a[i] = a[c]!;
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}
