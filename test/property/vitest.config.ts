import { defineConfig } from 'vitest/config';

/**
 * The property suites alone, without the DynamoDB Local that the full run starts: `npm run fuzz`
 * runs them with this configuration (test/property/fuzz.ts).
 */
export default defineConfig({
  test: {
    include: ['test/property/**/*.test.ts'],
    testTimeout: 30_000,
  },
});
