import { describe, expect, it } from 'vitest';
import type { BatchResponse, StreamEventLike } from '../../src/lambda/index.js';
import { FakeClock, seededRandom, simulateRandomEventSourceMapping, streamRecords } from '../../src/testing/index.js';
import type { LambdaStreamRecord } from '../../src/testing/index.js';
import { runCase } from './lambda-model.js';
import type { Scenario } from './lambda-model.js';

/** n inserts whose sequence numbers go from 18 digits to 19 halfway. */
const shard = (n: number): LambdaStreamRecord[] => {
  const records = streamRecords();
  const start = 10n ** 18n - BigInt(Math.floor(n / 2));
  return Array.from({ length: n }, (_, i) => records.insert({ PK: `K#${i}`, SK: 'ITEM' }, { sequenceNumber: (start + BigInt(i)).toString(), eventID: `ev-${i}` }));
};

const seqs = (event: StreamEventLike) => (event.Records as LambdaStreamRecord[]).map((r) => r.dynamodb.SequenceNumber);

describe('simulateRandomEventSourceMapping', () => {
  it('re-batches retries, restarts at the lowest reported sequence number across a digit-length boundary, and starts instances cold', async () => {
    // Prepare: the handler fails the 19-digit record right after the boundary once, and reports a
    // shorter 18-digit one as well: the lowest (numerically) must win.
    const records = shard(40);
    const boundary = records[20] as LambdaStreamRecord;
    const batches: string[][] = [];
    let failed = false;
    const handler = async (event: StreamEventLike): Promise<BatchResponse> => {
      const batch = seqs(event);
      batches.push(batch);
      const at = batch.indexOf(boundary.dynamodb.SequenceNumber);
      if (!failed && at > 0) {
        failed = true;
        return { batchItemFailures: [{ itemIdentifier: boundary.dynamodb.SequenceNumber }, { itemIdentifier: batch[at - 1] as string }] };
      }
      return { batchItemFailures: [] };
    };
    const started: number[] = [];

    // Act
    const result = await simulateRandomEventSourceMapping({ records, clock: new FakeClock(), random: seededRandom(3), maxBatchSize: 30, coldStartRate: 0.3, crashRate: 0, startInstance: (n) => (started.push(n), handler) });

    // Assess: every record was delivered from the checkpoint on; the retry started at record 19.
    expect(result.checkpoint).toBe(40);
    expect(result.stalled).toBe(false);
    const partial = result.invocations.find((i) => i.result === 'partial');
    expect(partial?.checkpoint).toBe(19);
    const next = result.invocations[(partial?.index ?? 0) + 1];
    expect(next?.from).toBe(19);
    expect(new Set(result.invocations.map((i) => i.size)).size).toBeGreaterThan(1);
    expect(started.length).toBeGreaterThan(1);
    expect(batches.flat()).toEqual(expect.arrayContaining(records.map((r) => r.dynamodb.SequenceNumber)));
  });

  it('ends a handler that never returns as a timeout and serves the retry on a new instance, bisected or not', async () => {
    // Prepare: instance 0 hangs for ever; the others answer.
    const records = shard(10);
    const stopped: number[] = [];
    const startInstance = (n: number) => async (): Promise<BatchResponse> => (n === 0 ? new Promise<BatchResponse>(() => {}) : { batchItemFailures: [] });

    // Act
    const result = await simulateRandomEventSourceMapping({ records, clock: new FakeClock(), random: seededRandom(1), maxBatchSize: 10, timeoutMs: 5000, coldStartRate: 0, crashRate: 0, startInstance, stopInstance: (n) => stopped.push(n) });

    // Assess
    expect(result.invocations[0]).toMatchObject({ instance: 0, result: 'timeout', checkpoint: 0, durationMs: 5000 });
    expect(result.invocations[1]).toMatchObject({ instance: 1, coldStart: true, from: 0 });
    expect(stopped[0]).toBe(0);
    expect(result.checkpoint).toBe(10);
  });

  it('retries the whole batch on an identifier that is not in it, and stops after maxStalled invocations without progress', async () => {
    const records = shard(5);
    const handler = async (): Promise<BatchResponse> => ({ batchItemFailures: [{ itemIdentifier: '12345' }] });

    const result = await simulateRandomEventSourceMapping({ records, clock: new FakeClock(), random: seededRandom(2), crashRate: 0, maxStalled: 7, startInstance: () => handler });

    expect(result.invocations.map((i) => i.result)).toEqual(new Array(7).fill('retry-all'));
    expect(result).toMatchObject({ checkpoint: 0, stalled: true });
  });
});

describe('the Lambda model (test/property/lambda-model.ts)', () => {
  const base: Scenario = {
    seed: 42, length: 30, hotKeys: 2, coldKeys: 5, hotShare: 0.6, removeShare: 0.2,
    sequence: { boundary: true, digits: 20, step: 3 }, poison: [], numbers: 'number',
    sinks: [{ ordered: false, maxRecords: 5, callFailRate: 0, entryFailRate: 0.2, throttlingShare: 0.5, permanentShare: 0, latencyMs: 20, slowRate: 0, filter: 'all', rejects: [7] }],
    dlq: 'none', store: 'none', observer: 'none', maxAttempts: 2, baseDelayMs: 10, concurrency: 4, maxBatchSize: 10, timeoutMs: 10_000, coldStartRate: 0, crashRate: 0,
  };

  it('passes a correct run: record 7 blocks for good without a DLQ, and the checkpoint stays there', async () => {
    const result = await runCase(base);
    expect(result.violations).toEqual([]);
    expect(result.checkpoint).toBe(7);
  });

  it('catches a handler that reports every batch done: the checkpoint passes the blocked record', async () => {
    const result = await runCase(base, { wrapHandler: (handler) => async (event, context) => (await handler(event, context), { batchItemFailures: [] }) });
    expect(result.violations.join('\n')).toMatch(/checkpoint is at #\d+, past record #7 .* not done/);
  });

  it('catches a handler that re-sends a whole batch: a sink gets records it acknowledged again', async () => {
    const result = await runCase({ ...base, sinks: [{ ...(base.sinks[0] as Scenario['sinks'][number]), rejects: [], entryFailRate: 0 }] }, {
      wrapHandler: (handler) => async (event, context) => (await handler(event, context), handler(event, context)),
    });
    expect(result.violations.join('\n')).toMatch(/twice in invocation 0/);
  });
});
