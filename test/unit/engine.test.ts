import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineApp, Engine, entity, route } from '../../src/index.js';
import type { AppConfig, ChangeEvent, Sink } from '../../src/index.js';
import { FakeClock, memoryLogger, MemoryDeadLetterQueue, MemorySink, permanentError, streamRecords, throttlingError, transientError } from '../../src/testing/index.js';

type Task = { PK: string; SK: string; TaskId: string; Status: string; Version: number; Secret?: string };
const Task = entity<Task>('Task', { key: { PK: 'USER#', SK: 'TASK#' } });

const setup = (config: Partial<AppConfig> & { sink?: MemorySink; clock?: FakeClock }, random = () => 0.5) => {
  const clock = config.clock ?? new FakeClock();
  const sink = config.sink ?? new MemorySink({ clock, latencyMs: 5 });
  const logger = memoryLogger();
  const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], ...config });
  return { clock, sink, logger, engine: new Engine({ app, logger, clock, random }) };
};

const task = (k: number, version: number, extra: Partial<Task> = {}): Task => ({ PK: `USER#${k}`, SK: `TASK#${k}`, TaskId: `${k}`, Status: 'OPEN', Version: version, ...extra });

/** n modify records over `keys` keys, round-robin, each bumping its key's Version by one. */
const workload = (n: number, keys: number, records = streamRecords()) =>
  Array.from({ length: n }, (_, i) => records.modify(task(i % keys, Math.floor(i / keys)), task(i % keys, Math.floor(i / keys) + 1)));

const versionsByKey = (events: readonly unknown[]) => {
  const byKey = new Map<string, number[]>();
  for (const e of events as ChangeEvent<Task>[]) {
    const key = String(e.key['PK']);
    byKey.set(key, [...(byKey.get(key) ?? []), (e.newImage as Task).Version]);
  }
  return byKey;
};

const versionOf = (e: unknown) => ((e as ChangeEvent<Task>).newImage as Task).Version;
const keyOf = (e: unknown) => String((e as ChangeEvent<Task>).key['PK']);

describe('Engine', () => {
  describe('ordering', () => {
    it('delivers every record in stream order per key while keys run concurrently', async () => {
      // Prepare: 200 records over 20 keys; some entries fail twice, so lanes fall out of step.
      const { engine, sink } = setup({});
      sink.failWhere((e) => versionOf(e) % 3 === 0, { times: 2 });

      // Act
      const outcome = await engine.process(workload(200, 20));

      // Assess
      expect(outcome.counts.delivered).toBe(200);
      expect(outcome.watermark).toBe(200);
      for (const [, versions] of versionsByKey(sink.delivered)) expect(versions).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
      expect(sink.maxInFlight).toBeGreaterThan(1);
      expect(outcome.retries).toBeGreaterThan(0);
    });

    it('never sends record n+1 of a key before record n is acknowledged', async () => {
      // Prepare: every first attempt of every entry fails, so each record is sent at least twice.
      const { engine, sink } = setup({});
      sink.failWhere(() => true, { times: 1 });

      // Act
      await engine.process(workload(60, 6));

      // Assess: in the sequence of attempts, a key's version k+1 appears only after k was last attempted.
      const lastAttempt = new Map<string, number>();
      for (const e of sink.attempts) {
        const prev = lastAttempt.get(keyOf(e)) ?? 0;
        expect(versionOf(e)).toBeGreaterThanOrEqual(prev);
        expect(versionOf(e) - prev).toBeLessThanOrEqual(1);
        lastAttempt.set(keyOf(e), versionOf(e));
      }
    });

    it("groups by partition key with ordering 'partitionKey'", async () => {
      // Prepare: one user, ten tasks: ten items, one partition key.
      const records = streamRecords();
      const batch = Array.from({ length: 10 }, (_, i) => records.insert({ PK: 'USER#1', SK: `TASK#${i}`, TaskId: `${i}`, Status: 'OPEN', Version: i }));
      const { engine, sink } = setup({ ordering: 'partitionKey', partitionKey: 'PK' });

      // Act
      await engine.process(batch);

      // Assess: one lane, so one request at a time, in stream order.
      expect(sink.maxInFlight).toBe(1);
      expect(sink.delivered.map(versionOf)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    });

    it('groups by the value of an ordering function', async () => {
      // Prepare: every record in one lane through the function.
      const { engine, sink } = setup({ ordering: () => 'all' });

      // Act
      await engine.process(workload(20, 10));

      // Assess
      expect(sink.maxInFlight).toBe(1);
      expect(sink.requests.every((r) => r.length === 1)).toBe(true);
    });

    it('keeps at most `concurrency` lanes in flight', async () => {
      // Prepare: a sink that takes one record per request, so requests in flight = lanes in flight.
      const clock = new FakeClock();
      const sink = new MemorySink({ clock, latencyMs: 10, maxRecords: 1 });
      const { engine } = setup({ sink, clock, concurrency: 3 });

      // Act
      await engine.process(workload(40, 10));

      // Assess
      expect(sink.delivered).toHaveLength(40);
      expect(sink.maxInFlight).toBe(3);
    });
  });

  describe('micro-batching', () => {
    it('packs records of different keys into as few requests as the sink allows', async () => {
      // Prepare: 100 keys with one record each, a sink of 10 records per request.
      const { engine, sink } = setup({});

      // Act
      await engine.process(workload(100, 100));

      // Assess
      expect(sink.requests).toHaveLength(10);
      expect(sink.requests.every((r) => r.length === 10)).toBe(true);
    });

    it('never exceeds maxBytes and fails an event larger than a request as PERMANENT', async () => {
      // Prepare: requests of at most 1,000 bytes; one event alone is larger.
      const clock = new FakeClock();
      const dlq = new MemoryDeadLetterQueue();
      const sizes = new Map<number, number>([[7, 1500]]);
      const sink = Object.assign(new MemorySink({ clock, maxRecords: 10, maxBytes: 1000 }), {
        sizeOf: (e: unknown) => sizes.get(Number((e as ChangeEvent<Task>).newImage?.TaskId)) ?? 300,
      });
      const records = streamRecords();
      const batch = Array.from({ length: 20 }, (_, i) => records.insert({ ...task(i, 1), TaskId: String(i) }));
      const { engine } = setup({ sink, clock, deadLetter: dlq });

      // Act
      const outcome = await engine.process(batch);

      // Assess: 3 events (900 bytes) per request at most; the oversized one is dead-lettered at once.
      expect(sink.requests.every((r) => r.length <= 3)).toBe(true);
      expect(sink.delivered).toHaveLength(19);
      expect(dlq.letters).toHaveLength(1);
      expect(dlq.letters[0]?.error).toMatchObject({ name: 'OversizedEventError', class: 'PERMANENT' });
      expect(dlq.letters[0]?.attempts).toBe(1);
      expect(outcome.watermark).toBe(20);
    });
  });

  describe('retries', () => {
    it('retries TRANSIENT failures with exponential backoff and full jitter, then dead-letters', async () => {
      // Prepare: a sink that always fails one key; jitter fixed at 0.999 to read the ceilings.
      const dlq = new MemoryDeadLetterQueue();
      const { engine, sink, logger } = setup({ deadLetter: dlq, retry: { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 500 } }, () => 0.999);
      sink.failWhere((e) => keyOf(e) === 'USER#0');

      // Act
      const outcome = await engine.process(workload(4, 2));

      // Assess: delays 99, 199, 399, 499 (capped at 500), 5 attempts, then the DLQ; the lane moved on.
      const delays = logger.entries.filter((e) => e.msg === 'delivery failed; retrying' && e.obj['attempt'] !== undefined).map((e) => e.obj['delayMs']);
      expect(delays.slice(0, 4)).toEqual([99, 199, 399, 499]);
      expect(dlq.letters.map((l) => l.attempts)).toEqual([5, 5]);
      expect(outcome.counts).toMatchObject({ delivered: 2, 'dead-lettered': 2 });
      expect(outcome.watermark).toBe(4);
    });

    it('does not retry PERMANENT failures', async () => {
      // Prepare
      const dlq = new MemoryDeadLetterQueue();
      const { engine, sink } = setup({ deadLetter: dlq });
      sink.failWhere((e) => versionOf(e) === 1 && keyOf(e) === 'USER#0', { error: () => permanentError('ValidationException: detail too large') });

      // Act
      await engine.process(workload(2, 1));

      // Assess: one attempt for the poison entry, then the next record of the key went through.
      expect(sink.attempts.filter((e) => versionOf(e) === 1)).toHaveLength(1);
      expect(dlq.letters[0]).toMatchObject({ attempts: 1, error: { name: 'ValidationException', class: 'PERMANENT' } });
      expect(sink.delivered.map(versionOf)).toEqual([2]);
    });

    it('waits longer after THROTTLING than after a TRANSIENT failure', async () => {
      // Prepare: jitter 0.5; throttling base 500 ms versus base 100 ms.
      const { engine, sink, logger } = setup({ retry: { baseDelayMs: 100, throttlingBaseDelayMs: 500 } });
      sink.failWhere((e) => keyOf(e) === 'USER#0', { times: 1, error: () => throttlingError() });
      sink.failWhere((e) => keyOf(e) === 'USER#1', { times: 1, error: () => transientError() });

      // Act
      await engine.process(workload(2, 2));

      // Assess
      const byFailure = Object.fromEntries(logger.entries.filter((e) => e.msg === 'delivery failed; retrying').map((e) => [e.obj['failure'], e.obj['delayMs']]));
      expect(byFailure).toEqual({ THROTTLING: 250, TRANSIENT: 50 });
    });

    it('retries a whole request that rejected, without duplicating acknowledged entries', async () => {
      // Prepare: the first request rejects as a whole.
      const { engine, sink } = setup({});
      sink.failRequests(1);

      // Act
      const outcome = await engine.process(workload(10, 10));

      // Assess
      expect(outcome.counts.delivered).toBe(10);
      expect(sink.delivered).toHaveLength(10);
      expect(new Set(sink.delivered.map(keyOf)).size).toBe(10);
    });
  });

  describe('dead letters and blocking', () => {
    it('dead-letters a poison record with its full payload and keeps the key lane moving', async () => {
      // Prepare
      const records = streamRecords();
      const batch = [records.insert(task(1, 1, { Secret: 'hunter2' })), records.modify(task(1, 1), task(1, 2)), records.modify(task(1, 2), task(1, 3))];
      const dlq = new MemoryDeadLetterQueue();
      const { engine, sink, clock } = setup({ deadLetter: dlq, retry: { maxAttempts: 3 } });
      sink.failWhere((e) => versionOf(e) === 1, { error: () => transientError('boom') });
      const start = clock.now();

      // Act
      const outcome = await engine.process(batch);

      // Assess: the letter has the raw record (images included), error, attempts, times, position.
      expect(outcome.statuses).toEqual(['dead-lettered', 'delivered', 'delivered']);
      const letter = dlq.letters[0];
      expect(letter?.record).toEqual(batch[0]);
      expect(letter).toMatchObject({
        sink: 'memory',
        attempts: 3,
        error: { name: 'ServiceUnavailable', message: 'boom', class: 'TRANSIENT' },
        position: { streamArn: records.streamArn, sequenceNumber: batch[0]?.dynamodb.SequenceNumber, eventID: batch[0]?.eventID },
      });
      expect(letter?.firstAttemptAt).toBe(start);
      expect(letter?.lastAttemptAt).toBeGreaterThan(start);
      expect(sink.delivered.map(versionOf)).toEqual([2, 3]);
    });

    it('blocks the lane when there is no dead-letter queue, and only that lane', async () => {
      // Prepare: key 0's first record always fails.
      const { engine, sink, logger } = setup({ retry: { maxAttempts: 2 } });
      sink.failWhere((e) => keyOf(e) === 'USER#0' && versionOf(e) === 1);
      const batch = workload(9, 3);

      // Act
      const outcome = await engine.process(batch);

      // Assess: key 0's later records were never sent; keys 1 and 2 were delivered; watermark at 0.
      expect(outcome.statuses).toEqual(['blocked', 'delivered', 'delivered', 'blocked', 'delivered', 'delivered', 'blocked', 'delivered', 'delivered']);
      expect(sink.attempts.filter((e) => keyOf(e) === 'USER#0').map(versionOf)).toEqual([1, 1]);
      expect(outcome.watermark).toBe(0);
      expect(logger.entries.some((e) => e.level === 'error' && e.msg.includes('lane blocked'))).toBe(true);
    });

    it('blocks the lane when the dead-letter queue fails', async () => {
      // Prepare
      const dlq = new MemoryDeadLetterQueue().failNext(Infinity);
      const { engine, sink } = setup({ deadLetter: dlq, retry: { maxAttempts: 2 } });
      sink.failWhere((e) => keyOf(e) === 'USER#1' && versionOf(e) === 1, { error: () => permanentError() });

      // Act
      const outcome = await engine.process(workload(4, 2));

      // Assess: the contiguous watermark stops at the blocked record even though a later one is done.
      expect(outcome.statuses).toEqual(['delivered', 'blocked', 'delivered', 'blocked']);
      expect(outcome.watermark).toBe(1);
      expect(sink.attempts.filter((e) => keyOf(e) === 'USER#1').map(versionOf)).toEqual([1]);
    });

    it('dead-letters a malformed record without crashing the batch', async () => {
      // Prepare: a record with an unknown eventName and one with a number that is not a number.
      const records = streamRecords();
      const good = records.insert(task(1, 1));
      const badName = { ...records.insert(task(2, 1)), eventName: 'UPSERT' };
      const badNumber = records.insert(task(3, 1));
      badNumber.dynamodb.NewImage = { ...badNumber.dynamodb.NewImage, Version: { N: 'not-a-number' } };
      const dlq = new MemoryDeadLetterQueue();
      const { engine, sink } = setup({ deadLetter: dlq });

      // Act
      const outcome = await engine.process([badName, good, badNumber, 'garbage']);

      // Assess
      expect(outcome.statuses).toEqual(['dead-lettered', 'delivered', 'dead-lettered', 'dead-lettered']);
      expect(sink.delivered).toHaveLength(1);
      expect(dlq.letters.map((l) => [l.error.name, l.error.class, l.sink])).toEqual([
        ['MalformedRecordError', 'PERMANENT', undefined],
        ['MalformedRecordError', 'PERMANENT', undefined],
        ['MalformedRecordError', 'PERMANENT', undefined],
      ]);
      expect(dlq.letters[0]?.record).toEqual(badName);
      expect(dlq.letters[2]?.record).toBe('garbage');
    });

    it('dead-letters an item that fails its entity schema and delivers the schema output otherwise', async () => {
      // Prepare: a zod schema that requires a known Status and fills a default.
      const Strict = entity('Task', {
        key: { PK: 'USER#', SK: 'TASK#' },
        schema: z.object({ PK: z.string(), SK: z.string(), Status: z.enum(['OPEN', 'DONE']), Priority: z.number().default(3) }),
      });
      const records = streamRecords();
      const dlq = new MemoryDeadLetterQueue();
      const clock = new FakeClock();
      const sink = new MemorySink({ clock });
      const app = defineApp({ table: 'TaskApp', routes: [route(Strict).to(sink)], deadLetter: dlq });
      const engine = new Engine({ app, logger: memoryLogger(), clock });

      // Act
      const outcome = await engine.process([records.insert(task(1, 1, { Status: 'BOGUS' })), records.insert(task(2, 1))]);

      // Assess
      expect(outcome.statuses).toEqual(['dead-lettered', 'delivered']);
      expect(dlq.letters[0]?.error).toMatchObject({ name: 'SchemaValidationError', class: 'PERMANENT' });
      expect(dlq.letters[0]?.error.message).toContain('Status');
      expect(dlq.letters[0]?.error.message).not.toContain('BOGUS');
      expect((sink.delivered[0] as ChangeEvent).newImage).toMatchObject({ Priority: 3 });
    });

    it('dead-letters a record whose route predicate throws', async () => {
      // Prepare
      const records = streamRecords();
      const dlq = new MemoryDeadLetterQueue();
      const clock = new FakeClock();
      const sink = new MemorySink({ clock });
      const app = defineApp({
        table: 'TaskApp',
        deadLetter: dlq,
        routes: [
          route(Task)
            .when((e) => (e.newImage as Task).Status.length > 0)
            .to(sink),
        ],
      });
      const engine = new Engine({ app, logger: memoryLogger(), clock });
      const { Status: _s, ...noStatus } = task(1, 1);

      // Act
      const outcome = await engine.process([records.insert(noStatus), records.insert(task(2, 1))]);

      // Assess
      expect(outcome.statuses).toEqual(['dead-lettered', 'delivered']);
      expect(dlq.letters[0]?.error.name).toBe('PoisonRecordError');
    });

    it('names the failing sink when one of two sinks fails a record for good', async () => {
      // Prepare
      const clock = new FakeClock();
      const good = new MemorySink({ clock, name: 'good' });
      const bad = new MemorySink({ clock, name: 'bad' }).failWhere(() => true, { error: () => permanentError() });
      const dlq = new MemoryDeadLetterQueue();
      const app = defineApp({ table: 'TaskApp', deadLetter: dlq, routes: [route(Task).to(good), route('*').to(bad)] });
      const engine = new Engine({ app, logger: memoryLogger(), clock });

      // Act
      const outcome = await engine.process(workload(1, 1));

      // Assess
      expect(outcome.statuses).toEqual(['dead-lettered']);
      expect(good.delivered).toHaveLength(1);
      expect(dlq.letters.map((l) => l.sink)).toEqual(['bad']);
    });
  });

  describe('acknowledgement', () => {
    it('counts a record no route matches as done', async () => {
      // Prepare: only Task items are routed; a user profile is not.
      const records = streamRecords();
      const clock = new FakeClock();
      const sink = new MemorySink({ clock });
      const app = defineApp({ table: 'TaskApp', routes: [route(Task).on('remove').to(sink)] });
      const engine = new Engine({ app, logger: memoryLogger(), clock });

      // Act
      const outcome = await engine.process([records.insert({ PK: 'USER#1', SK: 'PROFILE' }), records.insert(task(1, 1)), records.remove(task(1, 1))]);

      // Assess
      expect(outcome.statuses).toEqual(['unrouted', 'unrouted', 'delivered']);
      expect(outcome.watermark).toBe(3);
    });

    it('skips records that an earlier delivery already did', async () => {
      // Prepare
      const batch = workload(4, 2);
      const { engine, sink } = setup({});

      // Act
      const outcome = await engine.process(batch, { alreadyDone: new Set([batch[1]?.dynamodb.SequenceNumber as string]) });

      // Assess
      expect(outcome.statuses).toEqual(['delivered', 'skipped', 'delivered', 'delivered']);
      expect(sink.delivered).toHaveLength(3);
    });

    it('starts no new work after the deadline and reports the rest unfinished', async () => {
      // Prepare: one key, 10 records, 100 ms per request, a deadline 350 ms out.
      const clock = new FakeClock();
      const sink = new MemorySink({ clock, latencyMs: 100 });
      const { engine } = setup({ sink, clock });
      const deadline = clock.now() + 350;

      // Act
      const outcome = await engine.process(workload(10, 1), { deadline });

      // Assess: four started before the deadline (at 0, 100, 200, 300), the rest never started.
      expect(outcome.counts).toMatchObject({ delivered: 4, unfinished: 6 });
      expect(outcome.watermark).toBe(4);
      expect(sink.attempts).toHaveLength(4);
    });

    it('does not start a retry whose backoff would end after the deadline', async () => {
      // Prepare: the only record fails once; the backoff (50 ms) would cross the deadline (30 ms).
      const { engine, sink, clock } = setup({});
      sink.failWhere(() => true, { times: 1 });

      // Act
      const outcome = await engine.process(workload(1, 1), { deadline: clock.now() + 30 });

      // Assess
      expect(outcome.statuses).toEqual(['unfinished']);
      expect(sink.attempts).toHaveLength(1);
    });

    it('reports records of aborted in-flight requests as unfinished', async () => {
      // Prepare
      const clock = new FakeClock();
      const sink = new MemorySink({ clock, latencyMs: 1000 });
      const { engine } = setup({ sink, clock });
      const abort = new AbortController();
      void clock.sleep(10).then(() => abort.abort(new Error('deadline')));

      // Act
      const outcome = await engine.process(workload(3, 3), { signal: abort.signal });

      // Assess
      expect(outcome.statuses).toEqual(['unfinished', 'unfinished', 'unfinished']);
    });
  });

  describe('logging', () => {
    it('never logs item images', async () => {
      // Prepare: failures, retries, dead letters and blocks all log; the image holds a secret.
      const records = streamRecords();
      const dlq = new MemoryDeadLetterQueue();
      const { engine, sink, logger } = setup({ deadLetter: dlq, retry: { maxAttempts: 2 } });
      sink.failWhere(() => true, { error: () => permanentError() });

      // Act
      await engine.process([records.insert(task(1, 1, { Secret: 'hunter2' })), { ...records.insert(task(2, 1, { Secret: 'hunter2' })), eventName: 'X' }]);

      // Assess
      expect(logger.entries.length).toBeGreaterThan(0);
      expect(JSON.stringify(logger.entries)).not.toContain('hunter2');
    });
  });
});

export type { Sink };
