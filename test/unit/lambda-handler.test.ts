import { describe, expect, it } from 'vitest';
import { defineApp, route } from '../../src/index.js';
import type { AppConfig, ChangeEvent } from '../../src/index.js';
import { createStreamHandler } from '../../src/lambda/index.js';
import { FakeClock, memoryLogger, MemoryDeadLetterQueue, MemoryProgressStore, MemorySink, simulateEventSourceMapping, streamRecords } from '../../src/testing/index.js';
import type { LambdaStreamRecord } from '../../src/testing/index.js';

type Task = { PK: string; SK: string; Version: number };

/** n modify records over `keys` keys, round-robin; each bumps its key's Version by one. */
const shard = (n: number, keys: number): LambdaStreamRecord[] => {
  const records = streamRecords();
  return Array.from({ length: n }, (_, i) => {
    const k = i % keys;
    const v = Math.floor(i / keys);
    return records.modify({ PK: `USER#${k}`, SK: `TASK#${k}`, Version: v }, { PK: `USER#${k}`, SK: `TASK#${k}`, Version: v + 1 });
  });
};

const keyOf = (e: unknown) => String((e as ChangeEvent<Task>).key['PK']);
const versionOf = (e: unknown) => ((e as ChangeEvent<Task>).newImage as Task).Version;

const setup = (config: Partial<AppConfig> & { latencyMs?: number } = {}) => {
  const clock = new FakeClock();
  const sink = new MemorySink({ clock, latencyMs: config.latencyMs ?? 5 });
  const progressStore = new MemoryProgressStore();
  const logger = memoryLogger();
  const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], ...config });
  const handler = createStreamHandler(app, { clock, progressStore, logger, random: () => 0.5 });
  return { clock, sink, progressStore, logger, handler };
};

/** Asserts each key's deliveries are exactly 1..n in order: nothing lost, nothing repeated, in order. */
const expectExactlyOnceInOrder = (delivered: readonly unknown[], keys: number, perKey: number) => {
  const byKey = new Map<string, number[]>();
  for (const e of delivered) byKey.set(keyOf(e), [...(byKey.get(keyOf(e)) ?? []), versionOf(e)]);
  expect(byKey.size).toBe(keys);
  for (const versions of byKey.values()) expect(versions).toEqual(Array.from({ length: perKey }, (_, i) => i + 1));
};

describe('createStreamHandler', () => {
  it('returns an empty batchItemFailures when every record is done', async () => {
    // Prepare
    const { handler, clock, progressStore } = setup();
    const records = shard(20, 5);

    // Act
    const response = await handler({ Records: records }, { getRemainingTimeInMillis: () => 60_000 - (clock.now() - Date.UTC(2026, 0, 1)) });

    // Assess: one progress read, no write on the happy path.
    expect(response).toEqual({ batchItemFailures: [] });
    expect(progressStore.reads).toBe(1);
    expect(progressStore.writes).toBe(0);
  });

  it('reports the lowest sequence number that is not done, and stores what was done after it', async () => {
    // Prepare: record 3 (key 3) is blocked: no DLQ and it always fails.
    const { handler, sink, progressStore } = setup({ retry: { maxAttempts: 2 } });
    const records = shard(10, 5);
    sink.failWhere((e) => keyOf(e) === 'USER#3' && versionOf(e) === 1);

    // Act
    const response = await handler({ Records: records }, { getRemainingTimeInMillis: () => 60_000 });

    // Assess: the watermark is record 3; records 4, 5, 6, 7, 9 (other keys) are stored as done.
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: records[3]?.dynamodb.SequenceNumber }]);
    expect(progressStore.writes).toBe(1);
    const stored = [...progressStore.entries.values()][0];
    expect([...(stored ?? [])].sort()).toEqual([4, 5, 6, 7, 9].map((i) => records[i]?.dynamodb.SequenceNumber).sort());
  });

  it('returns before the function times out and reports the rest', async () => {
    // Prepare: one key, 100 ms a request, a 3 s function: 50 records cannot all fit.
    const { handler, clock } = setup({ latencyMs: 100 });
    const records = shard(50, 1);
    const start = clock.now();

    // Act
    const response = await handler({ Records: records }, { getRemainingTimeInMillis: () => start + 3000 - clock.now() });

    // Assess: stopped with the default margin (500 ms) to spare, reporting the first unfinished record.
    expect(clock.now() - start).toBeLessThanOrEqual(2600);
    expect(response.batchItemFailures).toHaveLength(1);
    const index = records.findIndex((r) => r.dynamodb.SequenceNumber === response.batchItemFailures[0]?.itemIdentifier);
    expect(index).toBeGreaterThanOrEqual(24);
    expect(index).toBeLessThan(50);
  });

  it('logs a batch summary without images', async () => {
    // Prepare
    const { handler, logger } = setup();
    const records = streamRecords();

    // Act
    await handler({ Records: [records.insert({ PK: 'USER#1', SK: 'TASK#1', Secret: 'hunter2' })] }, { getRemainingTimeInMillis: () => 60_000, awsRequestId: 'r1' });

    // Assess
    expect(logger.entries.find((e) => e.msg === 'batch done')?.obj).toMatchObject({ requestId: 'r1', records: 1, delivered: 1 });
    expect(JSON.stringify(logger.entries)).not.toContain('hunter2');
  });
});

describe('createStreamHandler under the Lambda event source mapping', () => {
  it('loses nothing, keeps per-key order and sends nothing twice through sink failures', async () => {
    // Prepare: 600 records over 30 keys in batches of 100; without a DLQ, failing entries block
    // their lanes, so batches end partly done and Lambda re-delivers from the watermark.
    const { handler, sink, clock, progressStore } = setup({ retry: { maxAttempts: 2 } });
    const records = shard(600, 30);
    sink.failWhere((e) => versionOf(e) % 7 === 3 && keyOf(e) !== 'USER#0', { times: 3 });
    sink.failRequests(2);

    // Act
    const { invocations, checkpoint } = await simulateEventSourceMapping({ records, handler, clock, batchSize: 100 });

    // Assess
    expect(checkpoint).toBe(600);
    expect(invocations.filter((i) => i.result === 'partial').length).toBeGreaterThan(0);
    expect(invocations.every((i) => i.result === 'done' || i.result === 'partial')).toBe(true);
    expectExactlyOnceInOrder(sink.delivered, 30, 20);
    expect(progressStore.reads).toBe(invocations.length);
    expect(progressStore.writes).toBeLessThanOrEqual(invocations.filter((i) => i.result === 'partial').length);
  });

  it('loses nothing and sends nothing twice when batches run into the function timeout', async () => {
    // Prepare: 40 ms a request and a 2 s function: a 500-record batch over 5 keys cannot finish.
    const { handler, sink, clock } = setup({ latencyMs: 40 });
    const records = shard(1000, 5);

    // Act
    const { invocations, checkpoint } = await simulateEventSourceMapping({ records, handler, clock, batchSize: 500, timeoutMs: 2000 });

    // Assess: the handler always returned in time; Lambda re-delivered from each reported point.
    expect(checkpoint).toBe(1000);
    expect(invocations.some((i) => i.result === 'timeout')).toBe(false);
    expect(invocations.filter((i) => i.result === 'partial').length).toBeGreaterThan(0);
    expectExactlyOnceInOrder(sink.delivered, 5, 200);
  });

  it('dead-letters what keeps failing and moves on, with a DLQ', async () => {
    // Prepare
    const dlq = new MemoryDeadLetterQueue();
    const { handler, sink, clock } = setup({ deadLetter: dlq, retry: { maxAttempts: 3 } });
    const records = shard(200, 10);
    sink.failWhere((e) => versionOf(e) === 5);

    // Act
    const { invocations, checkpoint } = await simulateEventSourceMapping({ records, handler, clock, batchSize: 100 });

    // Assess: every record is either delivered once or dead-lettered once; one invocation per batch.
    expect(checkpoint).toBe(200);
    expect(invocations.map((i) => i.result)).toEqual(['done', 'done']);
    expect(dlq.letters).toHaveLength(10);
    expect(sink.delivered).toHaveLength(190);
    expect(new Set(sink.delivered.map((e) => (e as ChangeEvent).eventID)).size).toBe(190);
  });

  it('re-sends delivered records after a partial failure when there is no progress store, still losing none', async () => {
    // Prepare: the same failure as above but no progress store: at-least-once.
    const clock = new FakeClock();
    const sink = new MemorySink({ clock, latencyMs: 5 });
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], retry: { maxAttempts: 1 } });
    const handler = createStreamHandler(app, { clock, logger: memoryLogger() });
    const records = shard(100, 10);
    sink.failWhere((e) => keyOf(e) === 'USER#0' && versionOf(e) === 1, { times: 1 });

    // Act
    await simulateEventSourceMapping({ records, handler, clock, batchSize: 100 });

    // Assess: every record arrived; those of other keys done in the first attempt arrived twice.
    expect(new Set(sink.delivered.map((e) => (e as ChangeEvent).eventID)).size).toBe(100);
    expect(sink.delivered.length).toBeGreaterThan(100);
  });
});
