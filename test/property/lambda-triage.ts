/**
 * Runs every case of a lambda property budget without stopping at the first failure and tells
 * which invariants each case breaks, grouped by the issue-10 path they point at: the evidence that
 * the suite catches each path, and a map for whoever fixes what it finds.
 *
 *   npx tsx test/property/lambda-triage.ts            # the npm test budget (fixed seed)
 *   FUZZ_SEED=7 FUZZ_RUNS=300 npx tsx test/property/lambda-triage.ts
 */
import fc from 'fast-check';
import { fuzzConfig } from './fuzz-config.js';
import { DEFAULT_RUNS, runCase, scenario } from './lambda-model.js';

const classes: readonly [string, RegExp][] = [
  ['path 4 (observer throws: hang, throw or unhandled rejection)', /did not return within the function timeout|threw:|unhandled rejection/],
  ['path 5 (re-sent after re-batching despite the progress store)', /issue path 5/],
  ['path 6 (malformed number delivered)', /issue path 6/],
  ['path 9 (healthy sink gets repeats in one invocation)', /issue path 9/],
  ['other', /./],
];

const { seed, numRuns } = fuzzConfig(DEFAULT_RUNS);
const cases = fc.sample(scenario, { seed, numRuns });
const found = new Map<string, { run: number; message: string }[]>();
const started = Date.now();
for (const [run, s] of cases.entries()) {
  const result = await runCase(s);
  for (const message of result.violations) {
    const [name] = classes.find(([, re]) => re.test(message)) as [string, RegExp];
    const list = found.get(name) ?? [];
    if (!list.some((x) => x.run === run)) list.push({ run, message });
    found.set(name, list);
  }
}
console.log(`seed ${seed}, ${numRuns} cases, ${Date.now() - started} ms`);
for (const [name] of classes) {
  const list = found.get(name) ?? [];
  console.log(`\n${name}: ${list.length} case(s)${list.length ? ` (runs ${list.map((x) => x.run).join(', ')})` : ''}`);
  if (list[0]) console.log(`  run ${list[0].run}: ${list[0].message}`);
}
