import { describe, expect, it } from 'vitest';
import { CircuitBreaker, DEFAULT_BREAKER, type BreakerState } from '../../src/router/circuit_breaker.js';

describe('CircuitBreaker', () => {
  it('opens after the threshold of consecutive failures within the window, half-opens, and closes after enough successes', () => {
    let t = 0;
    const moves: string[] = [];
    const b = new CircuitBreaker(DEFAULT_BREAKER, (from, to) => moves.push(`${from}>${to}`), () => t);
    for (let i = 0; i < 9; i++) expect(b.failure()).toBe(false);
    b.success(); // a success resets the count
    for (let i = 0; i < 9; i++) expect(b.failure()).toBe(false);
    expect(b.failure()).toBe(true);
    expect(b.state).toBe('open');
    expect(b.failure()).toBe(false); // in-flight requests failing while open do not count
    b.halfOpen();
    b.success();
    b.success();
    expect(b.state).toBe('half_open');
    expect(b.failure()).toBe(true); // one failure on probation opens it again
    b.halfOpen();
    for (let i = 0; i < 3; i++) b.success();
    expect(b.state).toBe('closed');
    expect(moves).toEqual(['closed>open', 'open>half_open', 'half_open>open', 'open>half_open', 'half_open>closed']);
    // Failures spread wider than the window do not add up.
    for (let i = 0; i < 20; i++) {
      t += 14_000;
      expect(b.failure()).toBe(false);
    }
  });

  it('half-opens on its own once asked after the open period (the drop-in router), without a window when windowMs is 0', () => {
    let t = 0;
    const states: BreakerState[] = [];
    const b = new CircuitBreaker({ failureThreshold: 2, successThreshold: 1, openMs: 1000, windowMs: 0 }, (_from, to) => states.push(to), () => t);
    b.failure();
    t += 10_000_000; // far apart, still in a row
    expect(b.failure()).toBe(true);
    expect(b.allows()).toBe(false);
    t += 999;
    expect(b.allows()).toBe(false);
    t += 1;
    expect(b.allows()).toBe(true);
    expect(b.state).toBe('half_open');
    b.success();
    expect(states).toEqual(['open', 'half_open', 'closed']);
  });

  it('never opens with a failure threshold of 0', () => {
    const b = new CircuitBreaker({ ...DEFAULT_BREAKER, failureThreshold: 0 });
    for (let i = 0; i < 100; i++) expect(b.failure()).toBe(false);
    expect(b.allows()).toBe(true);
    expect(b.state).toBe('closed');
  });
});
