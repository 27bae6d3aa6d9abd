import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: run at most two test files at once so timing-dependent end-to-end
    // tests are not starved.
    maxWorkers: 2,
  },
});
