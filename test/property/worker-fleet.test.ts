import fc from 'fast-check';
import { describe, it } from 'vitest';
import { fuzzConfig, reportFuzz } from './fuzz-config.js';
import { Fleet } from './worker-fleet.js';
import { profiles, scenarioArb } from './worker-fleet-scenarios.js';
import type { Profile, Scenario } from './worker-fleet-scenarios.js';

/**
 * A fleet of real workers against a reference model (test/property/worker-fleet.ts): random
 * writes, splits, trims, expired iterators, crashes, restarts, graceful stops, stalled lease and
 * streams calls that land late, clock leaps and sink failures, then every fault healed and the
 * fleet run to quiescence. Invariants: nothing owed is lost; per item, first deliveries in order
 * and re-deliveries only as contiguous replays; no two workers deliver a shard at overlapping
 * virtual times, and no older lease holder after a newer one began; no checkpoint passes a record
 * not done; no child record before its parents are done; a stopped worker is quiet and holds no
 * lease; a projection of the deliveries equals the source.
 *
 * A failure names the seed and the path of the shrunk counterexample. Replay it with
 * `FUZZ_SEED=<seed>`, and set FLEET_TRACE=1 to print what happened in it, event by event.
 */

/** How long shrinking a counterexample may take before the best one so far is reported. */
const SHRINK_MS = Number(process.env.FUZZ_SHRINK_MS ?? 20_000);

const fleetProperty = (profile: Profile, totals: Record<string, number>) =>
  fc.asyncProperty(scenarioArb(profile), async (scenario: Scenario) => {
    const { violations, stats } = await new Fleet(scenario).run();
    for (const [k, n] of Object.entries(stats)) totals[k] = (totals[k] ?? 0) + n;
    if (violations.length > 0) throw new Error(`${violations.length} violation(s):\n  ${violations.slice(0, 8).join('\n  ')}`);
  });

const check = async (name: string, profile: Profile, defaultRuns: number) => {
  const { seed, numRuns } = fuzzConfig(defaultRuns);
  const totals: Record<string, number> = {};
  // Find a failure without shrinking, then shrink it within a time budget: a counterexample that
  // is only half shrunk still beats a test timeout that shows nothing.
  const found = await fc.check(fleetProperty(profile, totals), { seed, numRuns, endOnFailure: true });
  reportFuzz({ suite: `worker-fleet/${name}`, cases: found.numRuns, failures: found.failed ? 1 : 0, seed, ...totals });
  if (!found.failed) return;
  const shrunk = await fc.check(fleetProperty(profile, {}), { seed, path: found.counterexamplePath ?? undefined, interruptAfterTimeLimit: SHRINK_MS });
  const result = shrunk.failed ? shrunk : found;
  let trace = '';
  if (process.env.FLEET_TRACE && result.counterexample) {
    const fleet = new Fleet(result.counterexample[0], { trace: true });
    await fleet.run();
    trace = `\nTrace of the counterexample:\n${fleet.trace?.join('\n') ?? ''}`;
  }
  throw new Error(
    `worker-fleet/${name} failed (seed ${seed}, path "${result.counterexamplePath}", shrunk ${result.numShrinks} time(s)${shrunk.interrupted ? ', shrinking cut short' : ''})\n` +
      `${String((result.errorInstance as Error | undefined)?.message)}\nCounterexample: ${JSON.stringify(result.counterexample?.[0])}${trace}`,
  );
};

describe('Worker fleet against a reference model', () => {
  it('survives crashes, restarts, stops, splits, trims and sink failures, from TRIM_HORIZON or LATEST', () => check('lifecycle', profiles.lifecycle, 50), 120_000);
  it('fences deliveries in time when renewals, checkpoints and discovery stall', () => check('stalls', profiles.stalls, 50), 120_000);
  it('stops cleanly while lease calls hang', () => check('shutdown', profiles.shutdown, 50), 120_000);
  it('holds every invariant with all faults mixed', () => check('everything', profiles.everything, 40), 120_000);
});
