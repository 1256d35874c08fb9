import { defineConfig } from 'vitest/config';

/**
 * The property suites alone, without the DynamoDB Local that the full run starts: `npm run fuzz`
 * runs them with this configuration (test/property/fuzz.ts).
 */
export default defineConfig({
  test: {
    include: ['test/property/**/*.test.ts'],
    // A fuzz run's budget is FUZZ_RUNS cases, however long they take.
    testTimeout: process.env.FUZZ_RUNS === undefined ? 30_000 : 24 * 3600_000,
  },
});
