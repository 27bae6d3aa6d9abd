import { describe, expect, it } from 'vitest';
import { CircuitBreaker, DEFAULT_BREAKER } from '../../src/router/circuit_breaker.js';

describe('CircuitBreaker', () => {
  it('opens after the threshold of consecutive failures within the window, half-opens, and closes after enough successes', () => {
    let t = 0;
    const b = new CircuitBreaker(DEFAULT_BREAKER, () => t);
    for (let i = 0; i < 9; i++) expect(b.failure()).toBe(false);
    b.success(); // a success resets the count
    for (let i = 0; i < 9; i++) expect(b.failure()).toBe(false);
    expect(b.failure()).toBe(true);
    expect(b.state).toBe('open');
    b.halfOpen();
    b.success();
    b.success();
    expect(b.state).toBe('half-open');
    expect(b.failure()).toBe(true); // one failure on probation opens it again
    b.halfOpen();
    for (let i = 0; i < 3; i++) b.success();
    expect(b.state).toBe('closed');
    // Failures spread wider than the window do not add up.
    for (let i = 0; i < 20; i++) {
      t += 14_000;
      expect(b.failure()).toBe(false);
    }
  });
});
