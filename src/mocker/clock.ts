// The scheduler's clock: real time for the mocker process, virtual time for the fleet
// simulator (bench/sim), which runs many engines' step loops in one event queue.

export interface EngineClock {
  // Milliseconds, monotonic.
  now(): number;
  // Runs `fn` after `ms` (0: after the current synchronous work and pending I/O).
  setTimer(ms: number, fn: () => void): unknown;
  clearTimer(handle: unknown): void;
  // Runs `fn` once the current synchronous run is over (before any timer).
  defer(fn: () => void): void;
}

export const realClock: EngineClock = {
  now: () => performance.now(),
  setTimer: (ms, fn) => (ms >= 1 ? setTimeout(fn, ms) : setImmediate(fn)),
  clearTimer: (h) => {
    clearTimeout(h as NodeJS.Timeout);
    clearImmediate(h as NodeJS.Immediate);
  },
  defer: (fn) => queueMicrotask(fn),
};
