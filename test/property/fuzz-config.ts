import { appendFileSync } from 'node:fs';

/**
 * How the property suites run. `npm test` uses a fixed seed and a small budget, so a failure is
 * reproducible and the suite stays fast; `npm run fuzz` sets FUZZ_SEED (random) and FUZZ_RUNS
 * (larger) and collects each suite's counts through FUZZ_REPORT.
 */
export interface FuzzConfig {
  readonly seed: number;
  readonly numRuns: number;
}

/** The fast-check parameters of one suite; `defaultRuns` is its budget inside `npm test`. */
export const fuzzConfig = (defaultRuns: number): FuzzConfig => {
  const seed = process.env.FUZZ_SEED === undefined ? 20261130 : Number(process.env.FUZZ_SEED);
  const runs = process.env.FUZZ_RUNS === undefined ? defaultRuns : Number(process.env.FUZZ_RUNS);
  if (!Number.isInteger(seed)) throw new Error(`FUZZ_SEED must be an integer, got \`${process.env.FUZZ_SEED}\``);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`FUZZ_RUNS must be an integer >= 1, got \`${process.env.FUZZ_RUNS}\``);
  return { seed, numRuns: runs };
};

/** One suite's result, appended as a JSON line to FUZZ_REPORT when `npm run fuzz` set it. */
export interface FuzzReport {
  readonly suite: string;
  readonly cases: number;
  readonly failures: number;
  readonly seed: number;
  /** Extra counts worth reporting (deliveries checked, crashes injected, ...). */
  readonly [key: string]: unknown;
}

export const reportFuzz = (report: FuzzReport): void => {
  const path = process.env.FUZZ_REPORT;
  if (path) appendFileSync(path, `${JSON.stringify(report)}\n`);
};
