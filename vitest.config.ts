import { defineConfig } from 'vitest/config';

// As scripts/quiet-sdk-node-warning.js does for the npm scripts (an import of it here would be
// dropped: the package declares no side effects). Set before any test or global setup loads the
// AWS SDK; the workers and the processes tests spawn inherit it, so none prints the SDK's Node 20
// support warning.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/**
 * Tests that need no DynamoDB Local (so no Java): `npm run test:unit` runs only these. Every other
 * test file is in the `integration` project, whose global setup starts DynamoDB Local; a test that
 * calls `inject('dynamoEndpoint')` (directly or through test/support/dynamo.ts) belongs there.
 */
const UNIT = ['test/unit/**/*.test.ts', 'test/contract/**/*.test.ts', 'test/property/**/*.test.ts'];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      { extends: true, test: { name: 'unit', include: UNIT } },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/**/*.test.ts'],
          exclude: UNIT,
          // One DynamoDB Local for the whole run; tests read its endpoint with inject('dynamoEndpoint').
          globalSetup: ['test/support/global-setup.ts'],
        },
      },
    ],
  },
});
