/**
 * `npm run fuzz`: every property suite under test/property, longer than in `npm test` and with a
 * random seed (or FUZZ_SEED), through the protocol of fuzz-config.ts: FUZZ_SEED and FUZZ_RUNS go to
 * the suites, each suite appends its counts to FUZZ_REPORT. Prints the seed of a failure with the
 * command that reproduces it, and ends with one JSON line:
 * `{"fuzz":"ok","cases":N,"failures":0,"seed":S,...}`, or `"fuzz":"failed"` and exit code 1.
 *
 *   npm run fuzz                           # random seed, FUZZ_RUNS=1000 cases per suite
 *   FUZZ_SEED=42 FUZZ_RUNS=200 npm run fuzz
 *   npm run fuzz -- test/property/lambda   # arguments go to vitest (a filter)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FuzzReport } from './fuzz-config.js';

const seed = process.env.FUZZ_SEED === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.FUZZ_SEED);
const runs = process.env.FUZZ_RUNS === undefined ? 1000 : Number(process.env.FUZZ_RUNS);
if (!Number.isInteger(seed)) throw new Error(`FUZZ_SEED must be an integer, got \`${process.env.FUZZ_SEED}\``);
if (!Number.isInteger(runs) || runs < 1) throw new Error(`FUZZ_RUNS must be an integer >= 1, got \`${process.env.FUZZ_RUNS}\``);

const dir = mkdtempSync(join(tmpdir(), 'dynamo-cdc-fuzz-'));
const reportPath = join(dir, 'report.jsonl');
const started = Date.now();
console.log(`fuzz: seed ${seed}, ${runs} cases per suite`);
const vitest = spawnSync('npx', ['vitest', 'run', '--config', 'test/property/vitest.config.ts', ...process.argv.slice(2)], {
  stdio: 'inherit',
  env: { ...process.env, FUZZ_SEED: String(seed), FUZZ_RUNS: String(runs), FUZZ_REPORT: reportPath },
});

let reports: FuzzReport[] = [];
try {
  reports = readFileSync(reportPath, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as FuzzReport);
} catch {
  // No suite reported: vitest failed before running them; the exit status says so below.
}
rmSync(dir, { recursive: true, force: true });

const cases = reports.reduce((n, r) => n + r.cases, 0);
const failures = reports.reduce((n, r) => n + r.failures, 0);
// A suite that failed without reporting (a crash, a timeout) still fails the run.
const failed = failures > 0 || vitest.status !== 0 || reports.length === 0;
const reproduce = `FUZZ_SEED=${seed} FUZZ_RUNS=${runs} npm run fuzz`;
if (failed) {
  const which = reports.filter((r) => r.failures > 0).map((r) => r.suite);
  console.log(`\nfuzz FAILED with seed ${seed}${which.length ? ` (suites: ${which.join(', ')})` : ''}; reproduce with:\n  ${reproduce}`);
}
const suites = Object.fromEntries(reports.map(({ suite, seed: _seed, ...rest }) => [suite, rest]));
console.log(JSON.stringify({ fuzz: failed ? 'failed' : 'ok', cases, failures: failed && failures === 0 ? 1 : failures, seed, runs, durationMs: Date.now() - started, suites }));
process.exit(failed ? 1 : 0);
