import { describe, expect, it } from 'vitest';
import { defineApp, route } from '../../src/index.js';
import type { AppConfig, ChangeEvent, ProgressStore } from '../../src/index.js';
import { createStreamHandler } from '../../src/lambda/index.js';
import type { LambdaContextLike, StreamEventLike } from '../../src/lambda/index.js';
import { FakeClock, memoryLogger, MemoryDeadLetterQueue, MemoryProgressStore, MemorySink, simulateEventSourceMapping, streamRecords, transientError } from '../../src/testing/index.js';
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

  it('reports the lowest sequence number that is not done, and stores what the batch got done under it', async () => {
    // Prepare: record 3 (key 3) is blocked: no DLQ and it always fails.
    const { handler, sink, progressStore } = setup({ retry: { maxAttempts: 2 } });
    const records = shard(10, 5);
    sink.failWhere((e) => keyOf(e) === 'USER#3' && versionOf(e) === 1);

    // Act
    const response = await handler({ Records: records }, { getRemainingTimeInMillis: () => 60_000 });

    // Assess: the watermark is record 3; one record keyed at the batch's first record holds records
    // 0, 1, 2 (before the watermark) and 4, 5, 6, 7, 9 (other keys) as done, and 3 and 8 (key 3,
    // blocked) as acknowledged by no sink.
    const seq = (i: number) => records[i]?.dynamodb.SequenceNumber as string;
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: seq(3) }]);
    expect(progressStore.writes).toBe(1);
    const stored = [...progressStore.entries.values()];
    expect(stored.map((p) => p.sequenceNumber)).toEqual([seq(0)]);
    expect([...(stored[0]?.done ?? [])].sort()).toEqual([0, 1, 2, 4, 5, 6, 7, 9].map(seq).sort());
    expect(stored[0]?.acknowledged).toEqual(new Map([[seq(3), new Set()], [seq(8), new Set()]]));
  });

  it('writes nothing when a partly failed batch got nothing done', async () => {
    // Prepare: one key, its first record blocked, so nothing in the batch is done.
    const { handler, sink, progressStore } = setup({ retry: { maxAttempts: 1 } });
    const records = shard(5, 1);
    sink.failWhere((e) => versionOf(e) === 1);

    // Act
    const response = await handler({ Records: records }, { getRemainingTimeInMillis: () => 60_000 });

    // Assess
    expect(response.batchItemFailures).toEqual([{ itemIdentifier: records[0]?.dynamodb.SequenceNumber }]);
    expect(progressStore.writes).toBe(0);
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

  it('re-sends delivered records after a partial failure when there is no progress store and the retry lands on a cold start, still losing none', async () => {
    // Prepare: the same failure as above but no progress store, and every invocation in a new
    // container (nothing in process memory): at-least-once.
    const clock = new FakeClock();
    const sink = new MemorySink({ clock, latencyMs: 5 });
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], retry: { maxAttempts: 1 } });
    const handler = (event: StreamEventLike, context: LambdaContextLike) => createStreamHandler(app, { clock, logger: memoryLogger() })(event, context);
    const records = shard(100, 10);
    sink.failWhere((e) => keyOf(e) === 'USER#0' && versionOf(e) === 1, { times: 1 });

    // Act
    await simulateEventSourceMapping({ records, handler, clock, batchSize: 100 });

    // Assess: every record arrived; those of other keys done in the first attempt arrived twice.
    expect(new Set(sink.delivered.map((e) => (e as ChangeEvent).eventID)).size).toBe(100);
    expect(sink.delivered.length).toBeGreaterThan(100);
  });
});

/** mulberry32: a small seeded generator, so a scenario replays exactly. */
const seeded = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
};

const idOf = (e: unknown) => (e as ChangeEvent).eventID;

/**
 * Counts, per sink, sends of a record that sink had already acknowledged, and sends of a record
 * every sink had already acknowledged (a fully done record), by wrapping each sink's `send`.
 */
const countResends = (sinks: readonly MemorySink[]) => {
  const acked = new Map<MemorySink, Set<string>>(sinks.map((s) => [s, new Set<string>()]));
  const counts = { toSinkThatAcked: 0, ofFullyDone: 0 };
  for (const sink of sinks) {
    const send = sink.send.bind(sink);
    sink.send = async (events, signal) => {
      for (const e of events) {
        if (acked.get(sink)?.has(idOf(e))) counts.toSinkThatAcked++;
        if (sinks.every((s) => acked.get(s)?.has(idOf(e)))) counts.ofFullyDone++;
      }
      const result = await send(events, signal);
      const failed = new Set(result.failed.map((f) => f.index));
      events.forEach((e, i) => failed.has(i) || acked.get(sink)?.add(idOf(e)));
      return result;
    };
  }
  return counts;
};

/** Two sinks, A and B, both taking every record; one attempt per batch (no DLQ), so a failure blocks its key. */
const twoSinks = (options: { store?: boolean } = {}) => {
  const clock = new FakeClock();
  const a = new MemorySink({ clock, latencyMs: 5, name: 'a' });
  const b = new MemorySink({ clock, latencyMs: 5, name: 'b' });
  const progressStore = new MemoryProgressStore();
  const app = defineApp({ table: 'TaskApp', routes: [route('*').to(a), route('*').to(b)], retry: { maxAttempts: 1 } });
  /** A new handler is a cold start: a new container, nothing in process memory. */
  const makeHandler = () => createStreamHandler(app, { clock, logger: memoryLogger(), random: () => 0.5, ...(options.store === false ? {} : { progressStore }) });
  const context = () => {
    const start = clock.now();
    return { getRemainingTimeInMillis: () => start + 60_000 - clock.now() };
  };
  const sends = (sink: MemorySink, record: LambdaStreamRecord) => sink.attempts.filter((e) => idOf(e) === record.eventID).length;
  return { clock, a, b, progressStore, makeHandler, context, sends };
};

describe('createStreamHandler when Lambda re-batches', () => {
  it('remembers records done past a shorter retry: [1..10] fails at 5, [5..7] succeeds, [8..12] sends 8..10 to nobody', async () => {
    // Prepare: one key per record, so only record 5 blocks; B fails it once.
    const { a, b, makeHandler, context, sends } = twoSinks();
    const records = shard(12, 12);
    b.failWhere((e) => idOf(e) === records[4]?.eventID, { times: 1 });
    const handler = makeHandler();

    // Act
    const first = await handler({ Records: records.slice(0, 10) }, context());
    const retry = await handler({ Records: records.slice(4, 7) }, context());
    const next = await handler({ Records: records.slice(7, 12) }, context());

    // Assess: every record but 5 went once to each sink; 5 went to B twice.
    expect(first.batchItemFailures).toEqual([{ itemIdentifier: records[4]?.dynamodb.SequenceNumber }]);
    expect(retry.batchItemFailures).toEqual([]);
    expect(next.batchItemFailures).toEqual([]);
    expect(records.map((r) => sends(a, r)).filter((_, i) => i !== 4)).toEqual(Array(11).fill(1));
    expect(records.map((r) => sends(b, r))).toEqual([1, 1, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1]);
  });

  it('re-sends a record acknowledged by A but not by B to B only', async () => {
    // Prepare
    const { a, b, makeHandler, context, sends } = twoSinks();
    const records = shard(3, 3);
    b.failWhere((e) => idOf(e) === records[1]?.eventID, { times: 1 });
    const handler = makeHandler();

    // Act
    const first = await handler({ Records: records }, context());
    const retry = await handler({ Records: records.slice(1) }, context());

    // Assess
    expect(first.batchItemFailures).toEqual([{ itemIdentifier: records[1]?.dynamodb.SequenceNumber }]);
    expect(retry.batchItemFailures).toEqual([]);
    expect(records.map((r) => sends(a, r))).toEqual([1, 1, 1]);
    expect(records.map((r) => sends(b, r))).toEqual([1, 2, 1]);
  });

  it('remembers across a bisected retry: [3..10] arrives as [3..6] then [7..10]', async () => {
    // Prepare
    const { a, b, makeHandler, context, sends } = twoSinks();
    const records = shard(10, 10);
    b.failWhere((e) => idOf(e) === records[2]?.eventID, { times: 2 });
    const handler = makeHandler();

    // Act: record 3 fails at B in the first batch and again in the first half of the retry.
    await handler({ Records: records }, context());
    const firstHalf = await handler({ Records: records.slice(2, 6) }, context());
    const retry = await handler({ Records: records.slice(2, 6) }, context());
    const secondHalf = await handler({ Records: records.slice(6) }, context());

    // Assess: nothing but record 3 was sent again, and 3 only to B.
    expect(firstHalf.batchItemFailures).toEqual([{ itemIdentifier: records[2]?.dynamodb.SequenceNumber }]);
    expect([retry, secondHalf].map((r) => r.batchItemFailures)).toEqual([[], []]);
    expect(records.map((r) => sends(b, r))).toEqual([1, 1, 3, 1, 1, 1, 1, 1, 1, 1]);
    expect(records.map((r) => sends(a, r))).toEqual(Array(10).fill(1));
  });

  it('remembers across a whole-batch retry after the invocation failed, on a cold start with a store', async () => {
    // Prepare
    const { a, b, makeHandler, context, sends } = twoSinks();
    const records = shard(10, 10);
    b.failWhere((e) => idOf(e) === records[4]?.eventID, { times: 1 });

    // Act: each invocation in a new container.
    await makeHandler()({ Records: records }, context());
    const again = await makeHandler()({ Records: records }, context());

    // Assess: records 1..4 (before the failure) and 6..10 (after it) went once to each sink.
    expect(again.batchItemFailures).toEqual([]);
    expect(records.map((r) => sends(a, r))).toEqual(Array(10).fill(1));
    expect(records.map((r) => sends(b, r))).toEqual([1, 1, 1, 1, 2, 1, 1, 1, 1, 1]);
  });

  it('remembers across a digit-length boundary and with zero-padded sequence numbers (as DynamoDB Local writes them)', async () => {
    // Prepare: two shards of 12 records; one numbered 995..1006, the other the same zero-padded to 21 digits.
    for (const pad of [0, 21]) {
      const { a, b, makeHandler, context, sends } = twoSinks();
      const factory = streamRecords({ table: `TaskApp${pad}` });
      const records = Array.from({ length: 12 }, (_, i) =>
        factory.insert({ PK: `USER#${i}`, SK: `TASK#${i}`, Version: 1 }, { sequenceNumber: String(995 + i).padStart(pad, '0'), eventID: `e${i}` }),
      );
      b.failWhere((e) => idOf(e) === 'e2', { times: 1 });

      // Act: [995..1004] fails at 997; the retry [997..999] succeeds; then [1000..1006].
      const first = await makeHandler()({ Records: records.slice(0, 10) }, context());
      const retry = await makeHandler()({ Records: records.slice(2, 5) }, context());
      const next = await makeHandler()({ Records: records.slice(5) }, context());

      // Assess
      expect(first.batchItemFailures).toEqual([{ itemIdentifier: records[2]?.dynamodb.SequenceNumber }]);
      expect([retry, next].map((r) => r.batchItemFailures)).toEqual([[], []]);
      expect(records.map((r) => sends(a, r))).toEqual(Array(12).fill(1));
      expect(records.map((r) => sends(b, r))).toEqual([1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
    }
  });

  it('keeps the progress of parallel batches of one shard apart (ParallelizationFactor > 1)', async () => {
    // Prepare: two batchers take the odd and the even records; each fails one record at B.
    const { a, b, makeHandler, context, sends } = twoSinks();
    const records = shard(16, 16);
    const odd = records.filter((_, i) => i % 2 === 0);
    const even = records.filter((_, i) => i % 2 === 1);
    b.failWhere((e) => idOf(e) === odd[1]?.eventID || idOf(e) === even[2]?.eventID, { times: 1 });

    // Act: each batch on a cold start, interleaved as parallel batchers run.
    const x1 = await makeHandler()({ Records: odd.slice(0, 5) }, context());
    const y1 = await makeHandler()({ Records: even.slice(0, 5) }, context());
    const x2 = await makeHandler()({ Records: odd.slice(1, 3) }, context());
    const y2 = await makeHandler()({ Records: even.slice(2, 4) }, context());
    const x3 = await makeHandler()({ Records: odd.slice(3) }, context());
    const y3 = await makeHandler()({ Records: even.slice(4) }, context());

    // Assess
    expect(x1.batchItemFailures).toEqual([{ itemIdentifier: odd[1]?.dynamodb.SequenceNumber }]);
    expect(y1.batchItemFailures).toEqual([{ itemIdentifier: even[2]?.dynamodb.SequenceNumber }]);
    expect([x2, y2, x3, y3].map((r) => r.batchItemFailures)).toEqual([[], [], [], []]);
    expect(records.map((r) => sends(a, r))).toEqual(Array(16).fill(1));
    expect(records.map((r) => (r === odd[1] || r === even[2] ? sends(b, r) - 1 : sends(b, r)))).toEqual(Array(16).fill(1));
  });

  it('sends no fully done record again, nor a record to a sink that acknowledged it, under random re-batching, whole-batch retries and cold starts', async () => {
    // Prepare: five shards of 300 records over 7 keys; each sink fails 10 % of its entries once;
    // batches of 1 to 40 records; 15 % of the invocations that report a partial failure fail
    // anyway (Lambda retries the whole batch, or its first half as BisectBatchOnFunctionError
    // does), half of those on a cold start.
    const totals = { invocations: 0, ofFullyDone: 0, toSinkThatAcked: 0 };
    for (const seed of [10, 11, 12, 13, 14]) {
      const { a, b, makeHandler, context } = twoSinks();
      const random = seeded(seed);
      const records = shard(300, 7);
      const unlucky = new Set(records.flatMap((r) => ['a', 'b'].filter(() => random() < 0.1).map((sink) => `${sink}${r.eventID}`)));
      a.failWhere((e) => unlucky.has(`a${idOf(e)}`), { times: 1 });
      b.failWhere((e) => unlucky.has(`b${idOf(e)}`), { times: 1 });
      const resends = countResends([a, b]);
      let handler = makeHandler();
      let checkpoint = 0;
      let size = 40;

      // Act
      for (let n = 0; checkpoint < records.length && n < 2000; n++, totals.invocations++) {
        const batch = records.slice(checkpoint, checkpoint + size);
        size = 1 + Math.floor(random() * 40);
        const failed = (await handler({ Records: batch }, context())).batchItemFailures[0]?.itemIdentifier;
        if (failed === undefined) {
          checkpoint += batch.length;
        } else if (random() < 0.15) {
          if (random() < 0.5) size = Math.ceil(batch.length / 2);
          if (random() < 0.5) handler = makeHandler();
        } else {
          checkpoint += batch.findIndex((r) => r.dynamodb.SequenceNumber === failed);
        }
      }

      // Assess: nothing lost; each sink got every record.
      expect(checkpoint).toBe(records.length);
      for (const sink of [a, b]) expect(new Set(sink.delivered.map(idOf)).size).toBe(records.length);
      totals.ofFullyDone += resends.ofFullyDone;
      totals.toSinkThatAcked += resends.toSinkThatAcked;
    }
    console.info(`re-batching scenario: ${JSON.stringify(totals)}`);
    expect(totals).toMatchObject({ ofFullyDone: 0, toSinkThatAcked: 0 });
  });
});

describe('createStreamHandler with a progress store that hangs or fails', () => {
  it('after an invocation that could not read the store, re-sends the newer changes of the items it replayed (no stale change last)', async () => {
    // Prepare: records 6 and 9 are two changes of one item (K); the others each their own item.
    // [1..10] fails at 5 (6..10 done, stored); the retry [5..7] cannot read the store, so it sends
    // 6 again (the item's older change); then [8..12] reads the store again.
    const clock = new FakeClock();
    const sink = new MemorySink({ clock, latencyMs: 5 });
    const progressStore = new MemoryProgressStore();
    let readFails = false;
    const store: ProgressStore = {
      load: (position, signal) => (readFails ? Promise.reject(transientError()) : progressStore.load(position, signal)),
      save: (progress, signal) => progressStore.save(progress, signal),
    };
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], retry: { maxAttempts: 1 } });
    const factory = streamRecords();
    const records = Array.from({ length: 12 }, (_, i) => {
      const k = i === 8 ? 5 : i;
      return factory.modify({ PK: `USER#${k}`, SK: `TASK#${k}`, Version: i }, { PK: `USER#${k}`, SK: `TASK#${k}`, Version: i + 1 });
    });
    sink.failWhere((e) => idOf(e) === records[4]?.eventID, { times: 1 });
    const handler = () => createStreamHandler(app, { clock, logger: memoryLogger(), random: () => 0.5, progressStore: store });
    const context = { getRemainingTimeInMillis: () => 60_000 };

    // Act
    await handler()({ Records: records.slice(0, 10) }, context);
    readFails = true;
    const retry = await handler()({ Records: records.slice(4, 7) }, context);
    readFails = false;
    const next = await handler()({ Records: records.slice(7, 12) }, context);

    // Assess: the item's last delivery is its newest change (record 9), sent again after 6.
    expect([retry, next].map((r) => r.batchItemFailures)).toEqual([[], []]);
    const ofItem = sink.delivered.filter((e) => keyOf(e) === 'USER#5').map(idOf);
    expect(ofItem).toEqual([records[5], records[8], records[5], records[8]].map((r) => r?.eventID));
  });

  it('stops waiting for a store that never answers, sends nothing it could not record, and returns before the function times out', async () => {
    // Prepare: reads and writes that never settle while `hang` is set; a 3 s function; record 2 fails once.
    const clock = new FakeClock();
    const sink = new MemorySink({ clock, latencyMs: 5 });
    const progressStore = new MemoryProgressStore();
    const signals: AbortSignal[] = [];
    let hang = true;
    const store: ProgressStore = {
      load: (position, signal) => (hang ? (signals.push(signal as AbortSignal), new Promise(() => {})) : progressStore.load(position, signal)),
      save: (progress, signal) => (hang ? (signals.push(signal as AbortSignal), new Promise(() => {})) : progressStore.save(progress, signal)),
    };
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], retry: { maxAttempts: 1 } });
    const logger = memoryLogger();
    const handler = createStreamHandler(app, { clock, logger, random: () => 0.5, progressStore: store });
    const records = shard(40, 40);
    sink.failWhere((e) => idOf(e) === records[2]?.eventID, { times: 1 });

    // Act: one invocation while the store hangs, then the event source mapping once it answers.
    const started = clock.now();
    const stalled = await handler({ Records: records.slice(0, 20) }, { getRemainingTimeInMillis: () => Math.max(0, started + 3000 - clock.now()) });
    const sentWhileHanging = sink.delivered.length;
    hang = false;
    const { invocations, checkpoint } = await simulateEventSourceMapping({ records, handler, clock, batchSize: 20, timeoutMs: 3000 });

    // Assess: the stalled invocation returned in time, sent nothing and asked for the whole batch
    // again (its read and its marker were aborted); afterwards everything was delivered once.
    expect(clock.now() - started).toBeLessThan(3000);
    expect(stalled.batchItemFailures).toEqual([{ itemIdentifier: records[0]?.dynamodb.SequenceNumber }]);
    expect(sentWhileHanging).toBe(0);
    expect(signals.length).toBe(2);
    expect(signals.every((s) => s?.aborted)).toBe(true);
    expect(logger.entries.filter((e) => e.level === 'error').map((e) => e.msg)[0]).toMatch(/^progress store can be neither read nor written; nothing sent/);
    expect(checkpoint).toBe(40);
    expect(invocations.map((i) => i.result)).toEqual(['partial', 'done', 'done']);
    expect(new Set(sink.delivered.map(idOf)).size).toBe(40);
  });

  it('marks a blind invocation before it sends anything, so a lost final write cannot leave a replay unrecorded', async () => {
    // Prepare: as above, but the blind retry [5..7] fails at 5 again and its final write is lost
    // (as when the function crashes); then Lambda re-delivers [5..12].
    const clock = new FakeClock();
    const sink = new MemorySink({ clock, latencyMs: 5 });
    const progressStore = new MemoryProgressStore();
    let blindPhase = false;
    const store: ProgressStore = {
      load: (position, signal) => (blindPhase ? Promise.reject(transientError()) : progressStore.load(position, signal)),
      // In the blind phase only a record that holds something fails: the empty marker gets through.
      save: (progress, signal) => (blindPhase && progress.done.size + progress.acknowledged.size > 0 ? Promise.reject(transientError()) : progressStore.save(progress, signal)),
    };
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], retry: { maxAttempts: 1 } });
    const factory = streamRecords();
    const records = Array.from({ length: 12 }, (_, i) => {
      const k = i === 8 ? 5 : i;
      return factory.modify({ PK: `USER#${k}`, SK: `TASK#${k}`, Version: i }, { PK: `USER#${k}`, SK: `TASK#${k}`, Version: i + 1 });
    });
    sink.failWhere((e) => idOf(e) === records[4]?.eventID, { times: 2 });
    const handler = () => createStreamHandler(app, { clock, logger: memoryLogger(), random: () => 0.5, progressStore: store });
    const context = { getRemainingTimeInMillis: () => 60_000 };

    // Act
    await handler()({ Records: records.slice(0, 10) }, context);
    blindPhase = true;
    const retry = await handler()({ Records: records.slice(4, 7) }, context);
    blindPhase = false;
    const again = await handler()({ Records: records.slice(4, 12) }, context);

    // Assess: the item's last delivery is its newest change.
    expect(retry.batchItemFailures).toEqual([{ itemIdentifier: records[4]?.dynamodb.SequenceNumber }]);
    expect(again.batchItemFailures).toEqual([]);
    expect(sink.delivered.filter((e) => keyOf(e) === 'USER#5').map(idOf).at(-1)).toBe(records[8]?.eventID);
  });

  it('loses nothing and keeps per-key order when half the store calls fail, under re-batching and cold starts', async () => {
    // Prepare
    const { a, b, makeHandler, context, progressStore } = twoSinks();
    const random = seeded(7);
    const load = progressStore.load.bind(progressStore);
    const save = progressStore.save.bind(progressStore);
    progressStore.load = (...args: Parameters<typeof load>) => (random() < 0.5 ? Promise.reject(transientError()) : load(...args));
    progressStore.save = (...args: Parameters<typeof save>) => (random() < 0.5 ? Promise.reject(transientError()) : save(...args));
    const records = shard(200, 5);
    a.failWhere(() => random() < 0.1, { times: 1 });
    b.failWhere(() => random() < 0.1, { times: 1 });
    let handler = makeHandler();
    let checkpoint = 0;

    // Act
    for (let n = 0; checkpoint < records.length && n < 2000; n++) {
      const batch = records.slice(checkpoint, checkpoint + 1 + Math.floor(random() * 30));
      if (random() < 0.2) handler = makeHandler();
      const failed = (await handler({ Records: batch }, context())).batchItemFailures[0]?.itemIdentifier;
      checkpoint += failed === undefined ? batch.length : batch.findIndex((r) => r.dynamodb.SequenceNumber === failed);
    }

    // Assess: per sink and key, the first deliveries are 1..40 in order.
    expect(checkpoint).toBe(records.length);
    for (const sink of [a, b]) {
      const firsts = new Map<string, number[]>();
      const seen = new Set<string>();
      for (const e of sink.delivered) {
        if (seen.has(idOf(e))) continue;
        seen.add(idOf(e));
        firsts.set(keyOf(e), [...(firsts.get(keyOf(e)) ?? []), versionOf(e)]);
      }
      expect([...firsts.values()]).toEqual(Array(5).fill(Array.from({ length: 40 }, (_, i) => i + 1)));
      const lasts = new Map(sink.delivered.map((e) => [keyOf(e), versionOf(e)]));
      expect([...lasts.values()]).toEqual(Array(5).fill(40));
    }
  });
});
