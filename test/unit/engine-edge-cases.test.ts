import type { StandardSchemaV1 } from '@standard-schema/spec';
import { describe, expect, it } from 'vitest';
import { Dispatcher } from '../../src/core/dispatcher.js';
import { defineApp, Engine, entity, route } from '../../src/index.js';
import type { AppConfig, ChangeEvent, Clock, DeadLetter, DeadLetterQueue, ProgressStore, Sink, SinkFailure } from '../../src/index.js';
import { createStreamHandler } from '../../src/lambda/index.js';
import {
  FakeClock,
  memoryLogger,
  MemoryDeadLetterQueue,
  MemoryProgressStore,
  MemorySink,
  permanentError,
  simulateEventSourceMapping,
  streamRecords,
  toGetRecordsShape,
  transientError,
} from '../../src/testing/index.js';

type Task = { PK: string; SK: string; TaskId: string; Status: string; Version: number; Checked?: boolean };

const task = (k: number, version: number, extra: Partial<Task> = {}): Task => ({ PK: `USER#${k}`, SK: `TASK#${k}`, TaskId: `${k}`, Status: 'OPEN', Version: version, ...extra });

/** Records of one key, versions 1..n, in stream order. */
const history = (k: number, n: number, records = streamRecords()) => Array.from({ length: n }, (_, i) => records.modify(task(k, i), task(k, i + 1)));

const versionOf = (e: unknown) => ((e as ChangeEvent<Task>).newImage as Task).Version;
const eventIdOf = (e: unknown) => (e as ChangeEvent).eventID;

const setup = (config: Partial<AppConfig> & { sink?: MemorySink; clock?: FakeClock } = {}) => {
  const clock = config.clock ?? new FakeClock();
  const sink = config.sink ?? new MemorySink({ clock, latencyMs: 5 });
  const logger = memoryLogger();
  const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], ...config });
  return { clock, sink, logger, engine: new Engine({ app, logger, clock, random: () => 0.5 }) };
};

/** A MemorySink that also writes when each request starts and ends to a timeline shared between sinks. */
const timedSink = (name: string, clock: FakeClock, timeline: string[]) => {
  const sink = new MemorySink({ clock, latencyMs: 5, name, maxRecords: 1 });
  const send = sink.send.bind(sink);
  sink.send = async (events, signal) => {
    for (const e of events) timeline.push(`start ${name} v${versionOf(e)}`);
    try {
      return await send(events, signal);
    } finally {
      for (const e of events) timeline.push(`end ${name} v${versionOf(e)}`);
    }
  };
  return sink;
};

describe('Engine edge cases', () => {
  describe('a record routed to two sinks', () => {
    it('keeps per-key order across both sinks when they fail differently', async () => {
      // Prepare: sink A fails v1 twice (TRANSIENT); sink B fails v2 for good (dead-lettered).
      const clock = new FakeClock();
      const timeline: string[] = [];
      const a = timedSink('a', clock, timeline).failWhere((e) => versionOf(e) === 1, { times: 2 });
      const b = timedSink('b', clock, timeline).failWhere((e) => versionOf(e) === 2, { error: () => permanentError() });
      const dlq = new MemoryDeadLetterQueue();
      const app = defineApp({ table: 'TaskApp', deadLetter: dlq, routes: [route('*').to(a), route('*').to(b)] });
      const engine = new Engine({ app, logger: memoryLogger(), clock, random: () => 0.5 });

      const batch = history(1, 3);

      // Act
      const outcome = await engine.process(batch);

      // Assess: no request for v(n+1), on either sink, starts before every request for v(n) ended.
      expect(outcome.statuses).toEqual(['delivered', 'dead-lettered', 'delivered']);
      for (const n of [1, 2]) {
        const lastEnd = Math.max(timeline.lastIndexOf(`end a v${n}`), timeline.lastIndexOf(`end b v${n}`));
        const firstStart = Math.min(timeline.indexOf(`start a v${n + 1}`), timeline.indexOf(`start b v${n + 1}`));
        expect(firstStart).toBeGreaterThan(lastEnd);
      }
      expect(dlq.letters.map((l) => [l.sink, l.position.sequenceNumber])).toEqual([['b', batch[1]?.dynamodb.SequenceNumber]]);
      expect(a.attempts.map(versionOf)).toEqual([1, 1, 1, 2, 3]);
      expect(b.attempts.map(versionOf)).toEqual([1, 2, 3]);
    });

    it('retries only the sink that failed, never re-sending to the one that acknowledged', async () => {
      // Prepare: sink A acknowledges everything; sink B fails every entry twice, then acknowledges.
      const clock = new FakeClock();
      const a = new MemorySink({ clock, latencyMs: 5, name: 'a' });
      const b = new MemorySink({ clock, latencyMs: 5, name: 'b' }).failWhere(() => true, { times: 2 });
      const app = defineApp({ table: 'TaskApp', routes: [route('*').to(a), route('*').to(b)] });
      const engine = new Engine({ app, logger: memoryLogger(), clock, random: () => 0.5 });
      const records = streamRecords();
      const batch = [...history(1, 2, records), ...history(2, 2, records)];

      // Act
      const outcome = await engine.process(batch);

      // Assess: A got each record exactly once; B got each three times and acknowledged each once.
      expect(outcome.statuses).toEqual(['delivered', 'delivered', 'delivered', 'delivered']);
      expect(a.attempts.map(eventIdOf).sort()).toEqual(batch.map((r) => r.eventID).sort());
      expect(b.attempts).toHaveLength(12);
      expect(b.delivered.map(eventIdOf).sort()).toEqual(batch.map((r) => r.eventID).sort());
    });
  });

  describe('dead-letter queue', () => {
    it('dead-letters once when the queue fails transiently and then succeeds, and the lane moves on', async () => {
      // Prepare: v1 fails for good; the DLQ fails its first two sends.
      const dlq = new MemoryDeadLetterQueue().failNext(2);
      const { engine, sink, logger } = setup({ deadLetter: dlq, retry: { maxAttempts: 4 } });
      sink.failWhere((e) => versionOf(e) === 1, { error: () => permanentError() });
      const batch = history(1, 3);

      // Act
      const outcome = await engine.process(batch);

      // Assess
      expect(outcome.statuses).toEqual(['dead-lettered', 'delivered', 'delivered']);
      expect(outcome.watermark).toBe(3);
      expect(dlq.letters).toHaveLength(1);
      expect(dlq.letters[0]).toMatchObject({ sink: 'memory', attempts: 1, record: batch[0] });
      expect(sink.delivered.map(versionOf)).toEqual([2, 3]);
      expect(logger.entries.some((e) => e.msg.includes('lane blocked'))).toBe(false);
    });

    it('reports a record unfinished, not blocked, when the deadline stops the dead-letter retries', async () => {
      // Prepare: v1 fails for good; the DLQ fails once; its backoff (50 ms) would cross the deadline (30 ms).
      const dlq = new MemoryDeadLetterQueue().failNext(1);
      const { engine, sink, clock } = setup({ deadLetter: dlq, retry: { maxAttempts: 4 } });
      sink.failWhere((e) => versionOf(e) === 1, { error: () => permanentError() });

      // Act
      const outcome = await engine.process(history(1, 2), { deadline: clock.now() + 30 });

      // Assess: the record is left for the next delivery, like a sink retry stopped by the deadline.
      expect(outcome.statuses).toEqual(['unfinished', 'unfinished']);
      expect(outcome.counts.blocked).toBe(0);
      expect(dlq.letters).toHaveLength(0);
    });

    it('reports a record unfinished when the run is aborted while its dead-letter send is in flight', async () => {
      // Prepare: a DLQ that takes a second and honours the signal; the run aborts after 100 ms.
      const clock = new FakeClock();
      const stored: DeadLetter[] = [];
      const slowDlq: DeadLetterQueue = {
        name: 'slow-dlq',
        send: async (letters, signal) => {
          await clock.sleep(1000, signal);
          stored.push(...letters);
        },
      };
      const { engine, sink } = setup({ clock, deadLetter: slowDlq });
      sink.failWhere((e) => versionOf(e) === 1, { error: () => permanentError() });
      const abort = new AbortController();
      void clock.sleep(100).then(() => abort.abort(new Error('deadline near')));

      // Act
      const outcome = await engine.process(history(1, 2), { signal: abort.signal });

      // Assess: neither dead-lettered nor blocked; the next record of the lane was never sent.
      expect(outcome.statuses).toEqual(['unfinished', 'unfinished']);
      expect(outcome.watermark).toBe(0);
      expect(stored).toHaveLength(0);
      expect(sink.attempts.map(versionOf)).toEqual([1]);
    });
  });

  describe('deadline', () => {
    it('does not retry when the deadline passes while the backoff sleeps', async () => {
      // Prepare: a clock that loses a second during every sleep (a stalled event loop); deadline 500 ms out.
      const fake = new FakeClock();
      const clock: Clock = {
        now: () => fake.now(),
        sleep: async (ms, signal) => {
          await fake.sleep(ms, signal);
          fake.advance(1000);
        },
      };
      const sink = new MemorySink().failWhere((e) => versionOf(e) === 1, { times: 1 });
      const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)] });
      const engine = new Engine({ app, logger: memoryLogger(), clock, random: () => 0.5 });

      // Act
      const outcome = await engine.process(history(1, 2), { deadline: fake.now() + 500 });

      // Assess
      expect(outcome.statuses).toEqual(['unfinished', 'unfinished']);
      expect(sink.attempts.map(versionOf)).toEqual([1]);
    });
  });

  describe('alreadyDone', () => {
    it('skips a done record in the middle of a lane and keeps the lane in order', async () => {
      // Prepare: one key, v2 was done in an earlier delivery.
      const batch = history(1, 3);
      const { engine, sink } = setup();

      // Act
      const outcome = await engine.process(batch, { alreadyDone: new Set([batch[1]?.dynamodb.SequenceNumber as string]) });

      // Assess
      expect(outcome.statuses).toEqual(['delivered', 'skipped', 'delivered']);
      expect(sink.attempts.map(versionOf)).toEqual([1, 3]);
    });

    it('never skips a record without a sequence number, whatever alreadyDone holds', async () => {
      // Prepare: a malformed record lacking SequenceNumber; alreadyDone holds the empty string.
      const records = streamRecords();
      const noSeq = records.insert(task(2, 1));
      const { SequenceNumber: _seq, ...dynamodb } = noSeq.dynamodb;
      const malformed = { ...noSeq, dynamodb };
      const dlq = new MemoryDeadLetterQueue();
      const { engine } = setup({ deadLetter: dlq });

      // Act
      const outcome = await engine.process([records.insert(task(1, 1)), malformed], { alreadyDone: new Set(['']) });

      // Assess: it was not mistaken for a done record; it went to the DLQ.
      expect(outcome.statuses).toEqual(['delivered', 'dead-lettered']);
      expect(dlq.letters.map((l) => l.record)).toEqual([malformed]);
    });
  });

  describe('lanes', () => {
    it('gives records whose key cannot be read lanes of their own, stalling no keyed lane', async () => {
      // Prepare: two records without usable Keys between records of one key; no DLQ, so they block.
      const records = streamRecords();
      const noKeys = { ...records.insert(task(9, 1)), dynamodb: { ...records.insert(task(9, 1)).dynamodb, Keys: undefined } };
      const nullKeys = { ...records.insert(task(8, 1)), dynamodb: null };
      const batch = [records.insert(task(1, 1)), noKeys, records.modify(task(1, 1), task(1, 2)), nullKeys, records.modify(task(1, 2), task(1, 3))];
      const { engine, sink } = setup();

      // Act
      const outcome = await engine.process(batch);

      // Assess
      expect(outcome.statuses).toEqual(['delivered', 'blocked', 'delivered', 'blocked', 'delivered']);
      expect(outcome.watermark).toBe(1);
      expect(sink.delivered.map(versionOf)).toEqual([1, 2, 3]);
    });

    it("orders by a numeric partition key with ordering 'partitionKey'", async () => {
      // Prepare: items (id: number, sk); id 1's first record always fails and blocks (no DLQ).
      const records = streamRecords({ keyAttributes: ['id', 'sk'] });
      const batch = [
        records.insert({ id: 1, sk: 'a', Version: 1 }),
        records.insert({ id: 10, sk: 'a', Version: 1 }),
        records.insert({ id: 1, sk: 'b', Version: 2 }),
        records.insert({ id: 10, sk: 'b', Version: 2 }),
      ];
      const clock = new FakeClock();
      const sink = new MemorySink({ clock, latencyMs: 5 }).failWhere((e) => (e as ChangeEvent).key['id'] === 1 && versionOf(e) === 1);
      const { engine } = setup({ sink, clock, ordering: 'partitionKey', partitionKey: 'id', retry: { maxAttempts: 1 } });

      // Act
      const outcome = await engine.process(batch);

      // Assess: id 1's second item waited behind its first; id 10 went through.
      expect(outcome.statuses).toEqual(['blocked', 'delivered', 'blocked', 'delivered']);
      expect(sink.attempts.filter((e) => (e as ChangeEvent).key['id'] === 1)).toHaveLength(1);
    });

    it("orders by a binary partition key with ordering 'partitionKey', in both record shapes", async () => {
      // Prepare: binary partition keys, a fresh byte array per record (GetRecords) or base64 (Lambda).
      const records = streamRecords({ keyAttributes: ['bin', 'sk'] });
      const raw = [
        records.insert({ bin: new Uint8Array([1, 2]), sk: 'a', Version: 1 }),
        records.insert({ bin: new Uint8Array([3, 4]), sk: 'a', Version: 1 }),
        records.insert({ bin: new Uint8Array([1, 2]), sk: 'b', Version: 2 }),
      ];
      const lambdaShape = raw.map((r) => ({
        ...r,
        dynamodb: { ...r.dynamodb, Keys: { ...r.dynamodb.Keys, bin: { B: Buffer.from(r.dynamodb.Keys['bin']?.B as Uint8Array).toString('base64') } } },
      }));

      for (const [batch, options] of [
        [raw.map(toGetRecordsShape), { streamArn: records.streamArn }],
        [lambdaShape, {}],
      ] as const) {
        const clock = new FakeClock();
        const sink = new MemorySink({ clock, latencyMs: 5 }).failWhere((e) => eventIdOf(e) === raw[0]?.eventID);
        const { engine } = setup({ sink, clock, ordering: 'partitionKey', partitionKey: 'bin', retry: { maxAttempts: 1 } });

        // Act
        const outcome = await engine.process(batch, options);

        // Assess: the second item of bytes [1, 2] waited behind the first; bytes [3, 4] went through.
        expect(outcome.statuses).toEqual(['blocked', 'delivered', 'blocked']);
        expect(sink.attempts.map(eventIdOf)).not.toContain(raw[2]?.eventID);
      }
    });
  });

  describe('watermark', () => {
    it('stops before the last record when only the last record is not done', async () => {
      // Prepare: four keys; the last record's key always fails and there is no DLQ.
      const records = streamRecords();
      const batch = [1, 2, 3, 4].map((k) => records.insert(task(k, 1)));
      const { engine, sink } = setup({ retry: { maxAttempts: 2 } });
      sink.failWhere((e) => (e as ChangeEvent<Task>).key['PK'] === 'USER#4');

      // Act
      const outcome = await engine.process(batch);

      // Assess
      expect(outcome.statuses).toEqual(['delivered', 'delivered', 'delivered', 'blocked']);
      expect(outcome.watermark).toBe(3);
    });
  });

  describe('numbers DynamoDB could not hold', () => {
    /** Three changes of one item; the second carries `n` as its Amount. */
    const withBadSecond = (n: string) => {
      const records = streamRecords();
      const batch = history(1, 3, records);
      (batch[1]?.dynamodb.NewImage as Record<string, { N?: string }>)['Amount'] = { N: n };
      return batch;
    };

    it.each([
      ['auto', 'abc'],
      ['exact', '1e999'],
      ['number', `1${'1'.repeat(38)}`],
    ] as const)("dead-letters a record with such a number under numbers: '%s' and keeps its lane moving", async (numbers, n) => {
      // Prepare
      const dlq = new MemoryDeadLetterQueue();
      const { engine, sink } = setup({ numbers, deadLetter: dlq });

      // Act
      const outcome = await engine.process(withBadSecond(n));

      // Assess
      expect(outcome.statuses).toEqual(['delivered', 'dead-lettered', 'delivered']);
      expect(sink.delivered.map((e) => Number(String(versionOf(e))))).toEqual([1, 3]);
      expect(dlq.letters[0]?.error).toMatchObject({ name: 'MalformedRecordError', class: 'PERMANENT' });
      expect(dlq.letters[0]?.error.message).toMatch(/dynamodb\.NewImage\.Amount is not a DynamoDB number/);
    });

    it('never lets the watermark pass such a record without a dead-letter queue', async () => {
      // Prepare
      const { engine, sink } = setup({ numbers: 'auto' });

      // Act
      const outcome = await engine.process(withBadSecond('abc'));

      // Assess
      expect(outcome.statuses).toEqual(['delivered', 'blocked', 'blocked']);
      expect(outcome.watermark).toBe(1);
      expect(sink.delivered.map(versionOf)).toEqual([1]);
    });
  });

  describe('sinks that misbehave', () => {
    it('retries a request whose send() throws synchronously', async () => {
      // Prepare: send() throws before returning a promise, once.
      const clock = new FakeClock();
      const inner = new MemorySink({ clock });
      let throws = 1;
      const sink: Sink = {
        name: 'sync-thrower',
        limits: inner.limits,
        preservesOrderWithinRequest: false,
        send: (events, signal) => {
          if (throws-- > 0) throw transientError('socket closed');
          return inner.send(events, signal);
        },
      };
      const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)] });
      const engine = new Engine({ app, logger: memoryLogger(), clock, random: () => 0.5 });

      // Act
      const outcome = await engine.process(history(1, 2));

      // Assess
      expect(outcome.statuses).toEqual(['delivered', 'delivered']);
      expect(outcome.retries).toBe(1);
      expect(inner.delivered.map(versionOf)).toEqual([1, 2]);
    });

    it('does not count entries as acknowledged when the sink reports a failure at an index out of range', async () => {
      // Prepare: the sink accepts nothing and reports the failure at index 5 of a 1-entry request.
      const clock = new FakeClock();
      const attempts: unknown[] = [];
      const sink: Sink = {
        name: 'off-by-some',
        limits: { maxRecords: 10, maxBytes: Infinity },
        preservesOrderWithinRequest: false,
        send: async (events) => {
          attempts.push(...events);
          return { failed: [{ index: 5, error: transientError() }] };
        },
      };
      const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], retry: { maxAttempts: 2 } });
      const engine = new Engine({ app, logger: memoryLogger(), clock, random: () => 0.5 });

      // Act
      const outcome = await engine.process(history(1, 2));

      // Assess: not 'delivered': the first record was retried and then blocked its lane.
      expect(outcome.statuses).toEqual(['blocked', 'blocked']);
      expect(outcome.watermark).toBe(0);
      expect(attempts.map(versionOf)).toEqual([1, 1]);
    });

    it('fails the request rather than hanging when the sink resolves without a failed list', async () => {
      // Prepare: the sink resolves with `{}` once (a broken adapter), then behaves.
      const clock = new FakeClock();
      const inner = new MemorySink({ clock });
      let broken = 1;
      const sink: Sink = {
        name: 'no-failed-list',
        limits: inner.limits,
        preservesOrderWithinRequest: false,
        send: async (events, signal) => {
          if (broken-- > 0) return {} as unknown as { failed: SinkFailure[] };
          return inner.send(events, signal);
        },
      };
      const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)] });
      const engine = new Engine({ app, logger: memoryLogger(), clock, random: () => 0.5 });

      // Act
      const outcome = await engine.process(history(1, 1));

      // Assess: the broken answer counted as a failure, and the retry delivered the record.
      expect(outcome.statuses).toEqual(['delivered']);
      expect(outcome.retries).toBe(1);
      expect(inner.delivered).toHaveLength(1);
    });
  });

  describe('schema validation', () => {
    it('waits for an async Standard Schema, delivering its output and dead-lettering its failures in lane order', async () => {
      // Prepare: a schema whose validate returns a Promise that settles 10 ms later.
      const clock = new FakeClock();
      const schema: StandardSchemaV1<unknown, Task> = {
        '~standard': {
          version: 1,
          vendor: 'test',
          validate: async (value) => {
            await clock.sleep(10);
            const item = value as Task;
            return item.Status === 'OPEN' ? { value: { ...item, Checked: true } } : { issues: [{ message: 'must be OPEN', path: ['Status'] }] };
          },
        },
      };
      const Checked = entity<Task>('Task', { key: { PK: 'USER#', SK: 'TASK#' }, schema });
      const records = streamRecords();
      const batch = [records.insert(task(1, 1)), records.modify(task(1, 1), task(1, 2, { Status: 'BOGUS' })), records.modify(task(1, 2), task(1, 3))];
      const dlq = new MemoryDeadLetterQueue();
      const sink = new MemorySink({ clock, latencyMs: 5 });
      const app = defineApp({ table: 'TaskApp', deadLetter: dlq, routes: [route(Checked).to(sink)] });
      const engine = new Engine({ app, logger: memoryLogger(), clock });

      // Act
      const outcome = await engine.process(batch);

      // Assess
      expect(outcome.statuses).toEqual(['delivered', 'dead-lettered', 'delivered']);
      expect(sink.delivered.map((e) => Number(String(versionOf(e))))).toEqual([1, 3]);
      expect(sink.delivered.every((e) => ((e as ChangeEvent<Task>).newImage as Task).Checked === true)).toBe(true);
      expect(dlq.letters[0]?.error).toMatchObject({ name: 'SchemaValidationError', class: 'PERMANENT' });
    });
  });
});

describe('Dispatcher edge cases', () => {
  const dispatcher = (maxBytes: number, sizes: Map<string, number>, send: ConstructorParameters<typeof Dispatcher<string>>[0]['send']) =>
    new Dispatcher<string>({ name: 'test', maxRecords: 10, maxBytes, sizeOf: (e) => sizes.get(e) ?? 0, send, signal: new AbortController().signal });

  const submitAll = (d: Dispatcher<string>, entries: readonly string[]) => Promise.all(entries.map((e) => new Promise<unknown>((resolve) => d.submit(e, resolve))));

  it('fills a request up to exactly maxBytes and accepts an entry of exactly maxBytes', async () => {
    // Prepare: maxBytes 1000; a and b make 1000 together; c alone is 1000.
    const requests: string[][] = [];
    const d = dispatcher(1000, new Map([['a', 400], ['b', 600], ['c', 1000]]), async (entries) => {
      requests.push([...entries]);
      return [];
    });

    // Act
    const results = await submitAll(d, ['a', 'b', 'c']);

    // Assess
    expect(results).toEqual([undefined, undefined, undefined]);
    expect(requests).toEqual([['a', 'b'], ['c']]);
  });

  it('fails an entry one byte over maxBytes without sending it', async () => {
    // Prepare
    const requests: string[][] = [];
    const d = dispatcher(1000, new Map([['big', 1001]]), async (entries) => {
      requests.push([...entries]);
      return [];
    });

    // Act
    const [result] = await submitAll(d, ['big']);

    // Assess
    expect(result).toMatchObject({ name: 'OversizedEventError' });
    expect(requests).toEqual([]);
  });

  it('settles every entry with the error when send() throws synchronously', async () => {
    // Prepare
    const boom = new Error('synchronous');
    const d = dispatcher(Infinity, new Map(), () => {
      throw boom;
    });

    // Act
    const results = await submitAll(d, ['a', 'b']);

    // Assess
    expect(results).toEqual([boom, boom]);
  });

  it('fails every entry of a request whose failed list names an index out of range', async () => {
    // Prepare: two entries; the answer names index 2 (there is none) and index -1.
    const d = dispatcher(Infinity, new Map(), async () => [
      { index: 2, error: transientError() },
      { index: -1, error: transientError() },
    ]);

    // Act
    const results = await submitAll(d, ['a', 'b']);

    // Assess: neither entry is acknowledged.
    expect(results.every((r) => r instanceof Error)).toBe(true);
  });
});

describe('createStreamHandler edge cases', () => {
  const makeHandler = (config: Partial<AppConfig> = {}, progressStore?: ProgressStore) => {
    const clock = new FakeClock();
    const sink = new MemorySink({ clock, latencyMs: 5 });
    const logger = memoryLogger();
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], ...config });
    const handler = createStreamHandler(app, { clock, logger, random: () => 0.5, ...(progressStore ? { progressStore } : {}) });
    return { clock, sink, logger, handler };
  };
  const context = { getRemainingTimeInMillis: () => 60_000 };

  it('answers an empty Records array with no failures and no progress read', async () => {
    // Prepare
    const progressStore = new MemoryProgressStore();
    const { handler } = makeHandler({}, progressStore);

    // Act
    const response = await handler({ Records: [] }, context);

    // Assess
    expect(response).toEqual({ batchItemFailures: [] });
    expect(progressStore.reads).toBe(0);
  });

  it("returns itemIdentifier '' when the first record not done has no sequence number, so Lambda retries the batch", async () => {
    // Prepare: no DLQ; the second record lacks SequenceNumber, so it blocks in its own lane.
    const records = streamRecords();
    const good = [records.insert(task(1, 1)), records.insert(task(3, 1))];
    const { SequenceNumber: _seq, ...dynamodb } = records.insert(task(2, 1)).dynamodb;
    const noSeq = { ...records.insert(task(2, 1)), dynamodb };
    const progressStore = new MemoryProgressStore();
    const { handler, sink } = makeHandler({}, progressStore);

    // Act
    const response = await handler({ Records: [good[0], noSeq, good[1]] }, context);

    // Assess: no progress was stored under an empty key.
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: '' }] });
    expect(sink.delivered).toHaveLength(2);
    expect(progressStore.writes).toBe(0);
  });

  it('does not crash when the first record of the event is not an object', async () => {
    // Prepare: a null record first (dead-lettered), a good one after.
    const records = streamRecords();
    const dlq = new MemoryDeadLetterQueue();
    const { handler, sink } = makeHandler({ deadLetter: dlq });

    // Act
    const response = await handler({ Records: [null, records.insert(task(1, 1))] }, context);

    // Assess
    expect(response).toEqual({ batchItemFailures: [] });
    expect(sink.delivered).toHaveLength(1);
    expect(dlq.letters.map((l) => l.record)).toEqual([null]);
  });

  it('carries on and logs when the progress store fails to load or to save', async () => {
    // Prepare: reads fail; the blind marker before sending gets through, the final write fails;
    // record 0 blocks (no DLQ), so a save is due.
    let saves = 0;
    const flakyStore: ProgressStore = {
      load: async () => {
        throw transientError('progress table unavailable');
      },
      save: async () => {
        if (++saves > 1) throw transientError('progress table unavailable');
      },
    };
    const records = streamRecords();
    const batch = [records.insert(task(1, 1)), records.insert(task(2, 1))];
    const { handler, sink, logger } = makeHandler({ retry: { maxAttempts: 1 } }, flakyStore);
    sink.failWhere((e) => eventIdOf(e) === batch[0]?.eventID);

    // Act
    const response = await handler({ Records: batch }, context);

    // Assess: the answer is still right, and both failures were logged as warnings.
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: batch[0]?.dynamodb.SequenceNumber }] });
    expect(sink.delivered.map(eventIdOf)).toEqual([batch[1]?.eventID]);
    const warnings = logger.entries.filter((e) => e.level === 'warn').map((e) => e.msg);
    expect(warnings).toContain('progress store read failed; records re-delivered after a partial failure may be sent again');
    expect(warnings).toContain('progress store write failed; records done after the failure may be sent again');
  });

  it('sends nothing and asks for the batch again when the progress store can be neither read nor written', async () => {
    // Prepare: a store whose reads and writes both throw.
    const failingStore: ProgressStore = {
      load: async () => {
        throw transientError('progress table unavailable');
      },
      save: () => {
        throw transientError('progress table unavailable');
      },
    };
    const records = streamRecords();
    const batch = [records.insert(task(1, 1)), records.insert(task(2, 1))];
    const { handler, sink, logger } = makeHandler({ retry: { maxAttempts: 1 } }, failingStore);

    // Act
    const response = await handler({ Records: batch }, context);

    // Assess: nothing went out unrecorded; Lambda retries from the first record; the reason is logged.
    expect(response).toEqual({ batchItemFailures: [{ itemIdentifier: batch[0]?.dynamodb.SequenceNumber }] });
    expect(sink.delivered).toEqual([]);
    expect(logger.entries.filter((e) => e.level === 'error').map((e) => e.msg)[0]).toMatch(/^progress store can be neither read nor written/);
  });

  it('does not drop a record without a sequence number on re-delivery after a partial failure', async () => {
    // Prepare: record 0 blocks (its dead letter fails); a malformed record without SequenceNumber is
    // dead-lettered. Lambda re-delivers from record 0 with a second such record after it.
    const records = streamRecords();
    const stripSeq = (r: ReturnType<typeof records.insert>) => {
      const { SequenceNumber: _seq, ...dynamodb } = r.dynamodb;
      return { ...r, dynamodb };
    };
    const first = records.insert(task(1, 1));
    const noSeqA = stripSeq(records.insert(task(2, 1)));
    const noSeqB = stripSeq(records.insert(task(3, 1)));
    const letters: DeadLetter[] = [];
    let sinkLetterFails = 1;
    const dlq: DeadLetterQueue = {
      name: 'picky-dlq',
      send: async (batch) => {
        if (batch.some((l) => l.sink !== undefined) && sinkLetterFails-- > 0) throw permanentError('queue rejected');
        letters.push(...batch);
      },
    };
    const progressStore = new MemoryProgressStore();
    const { handler, sink } = makeHandler({ deadLetter: dlq, retry: { maxAttempts: 1 } }, progressStore);
    sink.failWhere((e) => eventIdOf(e) === first.eventID, { times: 1, error: () => permanentError() });

    // Act
    const firstResponse = await handler({ Records: [first, noSeqA] }, context);
    const secondResponse = await handler({ Records: [first, noSeqA, noSeqB] }, context);

    // Assess: the second malformed record was dead-lettered, not skipped as "already done".
    expect(firstResponse.batchItemFailures).toEqual([{ itemIdentifier: first.dynamodb.SequenceNumber }]);
    expect(secondResponse).toEqual({ batchItemFailures: [] });
    expect(letters.map((l) => l.record)).toContain(noSeqB);
  });
});

describe('createStreamHandler under the event source mapping, edge cases', () => {
  it('delivers a shard whose records go to two sinks, one flaky, exactly once per sink and in order', async () => {
    // Prepare: 60 records over 6 keys; sink B fails each entry once; batches of 20.
    const clock = new FakeClock();
    const a = new MemorySink({ clock, latencyMs: 5, name: 'a' });
    const b = new MemorySink({ clock, latencyMs: 5, name: 'b' }).failWhere(() => true, { times: 1 });
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(a), route('*').to(b)] });
    const handler = createStreamHandler(app, { clock, logger: memoryLogger(), random: () => 0.5, progressStore: new MemoryProgressStore() });
    const records = streamRecords();
    const shard = Array.from({ length: 60 }, (_, i) => records.modify(task(i % 6, Math.floor(i / 6)), task(i % 6, Math.floor(i / 6) + 1)));

    // Act
    const { checkpoint, invocations } = await simulateEventSourceMapping({ records: shard, handler, clock, batchSize: 20 });

    // Assess
    expect(checkpoint).toBe(60);
    expect(invocations.every((i) => i.result === 'done')).toBe(true);
    for (const sink of [a, b]) {
      expect(sink.delivered.map(eventIdOf).sort()).toEqual(shard.map((r) => r.eventID).sort());
      for (let k = 0; k < 6; k++) {
        const versions = sink.delivered.filter((e) => (e as ChangeEvent<Task>).key['PK'] === `USER#${k}`).map(versionOf);
        expect(versions).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
      }
    }
  });
});

describe('Engine with a misconfigured partitionKey', () => {
  it('falls back to per-item order and says how to fix the configuration', async () => {
    // Prepare: ordering by 'pk' on a table whose partition key is 'PK'; one item, five versions.
    const clock = new FakeClock();
    const sink = new MemorySink({ clock, latencyMs: 5, maxRecords: 1 });
    const logger = memoryLogger();
    const app = defineApp({ table: 'TaskApp', ordering: 'partitionKey', partitionKey: 'pk', routes: [route('*').to(sink)] });
    const engine = new Engine({ app, logger, clock });
    const records = streamRecords();
    const batch = Array.from({ length: 5 }, (_, v) => records.modify({ PK: 'USER#1', SK: 'TASK#1', Version: v }, { PK: 'USER#1', SK: 'TASK#1', Version: v + 1 }));

    // Act
    await engine.process(batch);

    // Assess: one lane for the item (one request at a time, in order), and a loud log naming the fix.
    expect(sink.maxInFlight).toBe(1);
    expect(sink.delivered.map((e) => e.newImage?.["Version"])).toEqual([1, 2, 3, 4, 5]);
    expect(logger.entries.find((e) => e.level === 'error')?.msg).toMatch(/Set partitionKey/);
  });
});

describe('Engine with a dead-letter queue that fails one letter of a hand-off', () => {
  it('blocks only that letter’s lane; the letters handed off with it are done', async () => {
    // Prepare: every record fails for good; the DLQ refuses key 1's letters, stores the rest.
    const clock = new FakeClock();
    const sink = new MemorySink({ clock }).failWhere(() => true, { error: () => permanentError() });
    const stored: DeadLetter[] = [];
    const dlq: DeadLetterQueue = {
      name: 'picky-dlq',
      async send(letters) {
        const failed: SinkFailure[] = [];
        letters.forEach((l, index) => {
          if ((l.record as { dynamodb: { Keys: { PK: { S: string } } } }).dynamodb.Keys.PK.S === 'USER#1') failed.push({ index, error: permanentError('too large') });
          else stored.push(l);
        });
        return { failed };
      },
    };
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], deadLetter: dlq, retry: { maxAttempts: 1 } });
    const engine = new Engine({ app, logger: memoryLogger(), clock });
    const records = streamRecords();
    const batch = [0, 1, 2, 3].map((k) => records.insert({ PK: `USER#${k}`, SK: `TASK#${k}` }));

    // Act
    const outcome = await engine.process(batch);

    // Assess
    expect(outcome.statuses).toEqual(['dead-lettered', 'blocked', 'dead-lettered', 'dead-lettered']);
    expect(stored.map((l) => l.position.eventID).sort()).toEqual([batch[0], batch[2], batch[3]].map((r) => r?.eventID).sort());
    expect(outcome.watermark).toBe(1);
  });
});
