import { describe, expect, inject, it } from 'vitest';
import { runChaos } from './chaos.js';

describe('Worker chaos (small run of `npm run chaos`)', () => {
  it('loses nothing, replays only contiguously and builds an exact replica while worker processes get kill -9 and SIGTERM', async () => {
    // Act: 1,500 changes (5 % removes) over 30 keys, three worker processes, at least three kills.
    const result = await runChaos({ endpoint: inject('dynamoEndpoint'), changes: 1500, keys: 30, kills: 3, workers: 3, seed: 7 });
    console.info(`[chaos] ${JSON.stringify(result)}`);

    // Assess
    expect(result).toMatchObject({ changes: 1500, lost: 0, orderViolations: 0, unfinishedReplays: 0, staleLast: 0, unexpected: 0, badLines: 0, badTermExits: 0, unexpectedExits: 0 });
    expect(result).toMatchObject({ replicaDiffs: 0, replicaMissing: 0, replicaExtra: 0, replicaDifferent: 0 });
    expect(result.removes).toBeGreaterThan(0);
    expect(result.kills).toBeGreaterThanOrEqual(3);
    expect(result.ownerSigkills).toBeGreaterThanOrEqual(1);
    expect(result.ownerSigterms).toBeGreaterThanOrEqual(1);
  }, 120_000);
});
