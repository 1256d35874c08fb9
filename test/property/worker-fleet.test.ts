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
 * virtual times; no checkpoint passes a record not done; no child record before its parents are
 * done; a stopped worker is quiet and holds no lease; a projection of the deliveries equals the
 * source.
 */

const check = async (name: string, profile: Profile, defaultRuns: number) => {
  const { seed, numRuns } = fuzzConfig(defaultRuns);
  const totals: Record<string, number> = {};
  const property = fc.asyncProperty(scenarioArb(profile), async (scenario: Scenario) => {
    const { violations, stats } = await new Fleet(scenario).run();
    for (const [k, n] of Object.entries(stats)) totals[k] = (totals[k] ?? 0) + n;
    if (violations.length > 0) throw new Error(`${violations.length} violation(s):\n  ${violations.slice(0, 8).join('\n  ')}`);
  });
  const result = await fc.check(property, { seed, numRuns });
  reportFuzz({ suite: `worker-fleet/${name}`, cases: result.numRuns, failures: result.failed ? 1 : 0, seed, ...totals });
  if (result.failed) throw new Error(fc.defaultReportMessage(result) ?? `worker-fleet/${name} failed (seed ${seed})`);
};

describe('Worker fleet against a reference model', () => {
  it('survives crashes, restarts, stops, splits, trims and sink failures, from TRIM_HORIZON or LATEST', () => check('lifecycle', profiles.lifecycle, 30), 120_000);
  it('fences deliveries in time when renewals, checkpoints and discovery stall', () => check('stalls', profiles.stalls, 30), 120_000);
  it('stops cleanly while lease calls hang', () => check('shutdown', profiles.shutdown, 30), 120_000);
  it('holds every invariant with all faults mixed', () => check('everything', profiles.everything, 20), 120_000);
});
