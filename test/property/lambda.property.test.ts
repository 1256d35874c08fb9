import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzzConfig, reportFuzz } from './fuzz-config.js';
import { DEFAULT_RUNS, runCase, scenario } from './lambda-model.js';

describe('Lambda handler against a random event-source mapping (model-based)', () => {
  const config = fuzzConfig(DEFAULT_RUNS);

  it(
    'loses nothing, keeps per-item order, never checkpoints past a record not done, never re-sends an acknowledged record, and its projections equal the source',
    async () => {
      let deliveries = 0;
      let invocations = 0;
      let crashes = 0;
      const details = await fc.check(
        fc.asyncProperty(scenario, async (s) => {
          const result = await runCase(s);
          deliveries += result.log.length;
          invocations += result.invocations.length;
          crashes += result.invocations.filter((i) => i.result === 'crashed').length;
          if (result.violations.length > 0) throw new Error(result.violations.join('\n'));
        }),
        { seed: config.seed, numRuns: config.numRuns, endOnFailure: process.env.FUZZ_SHRINK !== '1' },
      );
      reportFuzz({ suite: 'lambda', cases: details.numRuns, failures: details.failed ? 1 : 0, seed: config.seed, invocations, deliveries, crashes });
      if (details.failed) {
        const reproduce = `FUZZ_SEED=${config.seed} FUZZ_RUNS=${config.numRuns} npx vitest run --config test/property/vitest.config.ts test/property/lambda.property.test.ts`;
        const error = details.errorInstance as Error | undefined;
        expect.fail(`${error?.message ?? String(details.errorInstance)}\n\n${fc.defaultReportMessage(details) ?? 'property failed'}\nReproduce: ${reproduce}`);
      }
    },
    // The fuzz run's budget is its own; inside npm test the fixed budget stays far below this.
    process.env.FUZZ_RUNS === undefined ? 60_000 : 24 * 3600_000,
  );
});
