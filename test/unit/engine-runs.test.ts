import { describe, expect, it } from 'vitest';
import { defineApp, Engine, entity, route } from '../../src/index.js';
import type { ChangeEvent } from '../../src/index.js';
import { FakeClock, memoryLogger, MemoryDeadLetterQueue, MemorySink, permanentError, streamRecords } from '../../src/testing/index.js';

type Task = { PK: string; SK: string; Version: number };
const Task = entity<Task>('Task', { key: { PK: 'USER#', SK: 'TASK#' } });

/** `versions` changes of each of `keys` items, stream-ordered item by item round-robin. */
const changes = (keys: number, versions: number) => {
  const records = streamRecords();
  const out = [];
  for (let v = 1; v <= versions; v++) for (let k = 0; k < keys; k++) out.push(records.modify({ PK: `USER#${k}`, SK: `TASK#${k}`, Version: v - 1 }, { PK: `USER#${k}`, SK: `TASK#${k}`, Version: v }));
  return out;
};

const version = (e: unknown) => Number((e as ChangeEvent<Task>).newImage?.Version);
const key = (e: unknown) => String((e as ChangeEvent<Task>).key['PK']);

const setup = (sink: MemorySink, extra: { deadLetter?: MemoryDeadLetterQueue; clock?: FakeClock; otherSink?: MemorySink } = {}) => {
  const clock = extra.clock ?? new FakeClock();
  const routes = [route('*').to(sink), ...(extra.otherSink ? [route(Task).when((e) => e.newImage?.Version === 3).to(extra.otherSink)] : [])];
  const app = defineApp({ table: 'TaskApp', routes, retry: { maxAttempts: 3 }, ...(extra.deadLetter ? { deadLetter: extra.deadLetter } : {}) });
  return { clock, engine: new Engine({ app, logger: memoryLogger(), clock, random: () => 0.5 }) };
};

describe('Engine runs to destinations that keep the order of a request', () => {
  it('sends a lane’s consecutive records in one request, in stream order', async () => {
    // Prepare: one item, five changes; a sink that keeps a request's order.
    const sink = new MemorySink({ preservesOrderWithinRequest: true, maxRecords: 100 });
    const { engine } = setup(sink);

    // Act
    const outcome = await engine.process(changes(1, 5));

    // Assess
    expect(outcome.counts.delivered).toBe(5);
    expect(sink.requests.map((r) => r.map(version))).toEqual([[1, 2, 3, 4, 5]]);
  });

  it('cuts runs at the destination’s limits and sends them one after another', async () => {
    // Prepare
    const sink = new MemorySink({ preservesOrderWithinRequest: true, maxRecords: 2 });
    const { engine } = setup(sink);

    // Act
    await engine.process(changes(1, 5));

    // Assess
    expect(sink.requests.map((r) => r.map(version))).toEqual([[1, 2], [3, 4], [5]]);
    expect(sink.maxInFlight).toBe(1);
  });

  it('packs the runs of several items into one request', async () => {
    // Prepare: 4 items, 3 changes each.
    const sink = new MemorySink({ preservesOrderWithinRequest: true, maxRecords: 100 });
    const { engine } = setup(sink);

    // Act
    await engine.process(changes(4, 3));

    // Assess: one request; within it, each item's changes in order.
    expect(sink.requests).toHaveLength(1);
    const perKey = new Map<string, number[]>();
    for (const e of sink.requests[0] ?? []) perKey.set(key(e), [...(perKey.get(key(e)) ?? []), version(e)]);
    for (const versions of perKey.values()) expect(versions).toEqual([1, 2, 3]);
  });

  it('re-sends the failed record and everything after it in its run, so the destination ends in order', async () => {
    // Prepare: change 3 fails once.
    const sink = new MemorySink({ preservesOrderWithinRequest: true, maxRecords: 100 }).failWhere((e) => version(e) === 3, { times: 1 });
    const { engine } = setup(sink);

    // Act
    const outcome = await engine.process(changes(1, 5));

    // Assess: [1..5] with 3 failing, then 3 alone (a retry), then 4 and 5 again as a new run.
    expect(outcome.counts.delivered).toBe(5);
    expect(sink.requests.map((r) => r.map(version))).toEqual([[1, 2, 3, 4, 5], [3], [4, 5]]);
    expect(sink.delivered.map(version).slice(-3)).toEqual([3, 4, 5]);
  });

  it('dead-letters a record that fails for good inside a run and sends the rest again after it', async () => {
    // Prepare
    const sink = new MemorySink({ preservesOrderWithinRequest: true, maxRecords: 100 }).failWhere((e) => version(e) === 2, { error: () => permanentError() });
    const dlq = new MemoryDeadLetterQueue();
    const { engine } = setup(sink, { deadLetter: dlq });

    // Act
    const outcome = await engine.process(changes(1, 4));

    // Assess
    expect(outcome.statuses).toEqual(['delivered', 'dead-lettered', 'delivered', 'delivered']);
    expect(dlq.letters).toHaveLength(1);
    expect(sink.requests.map((r) => r.map(version))).toEqual([[1, 2, 3, 4], [3, 4]]);
  });

  it('ends a run at a record that also goes to a destination that does not keep order', async () => {
    // Prepare: change 3 also goes to a plain sink.
    const sink = new MemorySink({ preservesOrderWithinRequest: true, maxRecords: 100 });
    const other = new MemorySink({ name: 'plain' });
    const { engine } = setup(sink, { otherSink: other });

    // Act
    await engine.process(changes(1, 5));

    // Assess: [1, 2], then 3 on its own to both sinks, then [4, 5].
    expect(sink.requests.map((r) => r.map(version))).toEqual([[1, 2], [3], [4, 5]]);
    expect(other.delivered.map(version)).toEqual([3]);
  });
});

describe('Engine with a destination that waits for fuller requests (maxWaitMs)', () => {
  it('sends a waiting request as soon as every lane waits, instead of idling out maxWaitMs', async () => {
    // Prepare: three items, two changes each, and a destination willing to wait a minute.
    const clock = new FakeClock();
    const sink = new MemorySink({ preservesOrderWithinRequest: true, maxRecords: 100, maxWaitMs: 60_000 });
    const { engine } = setup(sink, { clock });
    const start = clock.now();

    // Act
    const outcome = await engine.process(changes(3, 2));

    // Assess: one request with every change, and no time spent waiting.
    expect(outcome.counts.delivered).toBe(6);
    expect(sink.requests).toHaveLength(1);
    expect(clock.now() - start).toBe(0);
  });

  it('sends at once when the request fills up', async () => {
    // Prepare
    const clock = new FakeClock();
    const full = new MemorySink({ name: 'full', maxRecords: 2, maxWaitMs: 1000 });
    const { engine } = setup(full, { clock });
    const start = clock.now();

    // Act
    await engine.process(changes(2, 1));

    // Assess
    expect(clock.now() - start).toBe(0);
    expect(full.requests).toHaveLength(1);
  });

  it('waits while a lane is still working towards the request, at most maxWaitMs, and never past the deadline', async () => {
    // Prepare: a dispatcher with a one-minute wait and a lane that never parks (the deadline ends it).
    const clock = new FakeClock();
    const sent: number[] = [];
    const { Dispatcher } = await import('../../src/core/dispatcher.js');
    const d = new Dispatcher<number>({
      name: 'waiting',
      maxRecords: 10,
      maxBytes: Infinity,
      sizeOf: () => 0,
      send: async (entries) => {
        sent.push(clock.now());
        return entries.map(() => undefined).flatMap(() => []);
      },
      signal: new AbortController().signal,
      maxWaitMs: 60_000,
      clock,
      deadline: clock.now() + 300,
    });
    const start = clock.now();

    // Act
    await new Promise<void>((resolve) => d.submit(1, () => resolve()));

    // Assess: the request left when the deadline cut the wait short.
    expect(sent).toEqual([start + 300]);
  });
});

describe('Engine acknowledgements per sink', () => {
  /** Two order-keeping sinks, every record to both; `b` as given. */
  const twoSinks = (b: MemorySink, extra: { deadLetter?: MemoryDeadLetterQueue } = {}) => {
    const clock = new FakeClock();
    const a = new MemorySink({ name: 'a', preservesOrderWithinRequest: true, maxRecords: 100 });
    const counted = new Map<string, number>();
    const observer = { delivered: (sink: string, count: number) => counted.set(sink, (counted.get(sink) ?? 0) + count) };
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(a), route('*').to(b)], retry: { maxAttempts: 3 }, ...(extra.deadLetter ? { deadLetter: extra.deadLetter } : {}) });
    return { a, b, counted, engine: new Engine({ app, logger: memoryLogger(), clock, random: () => 0.5, observer }) };
  };

  it('sends each record once, in order, to a sink that acknowledged a run another sink failed in part (#9)', async () => {
    // Prepare: sink b fails change 3 of a five-change run once.
    const b = new MemorySink({ name: 'b', preservesOrderWithinRequest: true, maxRecords: 100 }).failWhere((e) => version(e) === 3, { times: 1 });
    const { a, counted, engine } = twoSinks(b);

    // Act
    const outcome = await engine.process(changes(1, 5));

    // Assess: a got 1..5 once, in one request; b ends in order; the counters count each acknowledgement once.
    expect(outcome.counts.delivered).toBe(5);
    expect(a.attempts.map(version)).toEqual([1, 2, 3, 4, 5]);
    expect(a.delivered.map(version)).toEqual([1, 2, 3, 4, 5]);
    expect(b.delivered.map(version).slice(-3)).toEqual([3, 4, 5]);
    expect(counted.get('a')).toBe(5);
    expect(counted.get('b')).toBe(5);
  });

  it('sends a record again only to the sinks not in ProcessOptions.acknowledged, and skips one every sink acknowledged', async () => {
    // Prepare: three records; a acknowledged the first earlier, both acknowledged the second.
    const b = new MemorySink({ name: 'b' });
    const { a, engine } = twoSinks(b);
    const batch = streamRecords();
    const records = [1, 2, 3].map((v) => batch.modify({ PK: `USER#${v}`, SK: `TASK#${v}`, Version: v - 1 }, { PK: `USER#${v}`, SK: `TASK#${v}`, Version: v }));
    const seq = (i: number) => records[i]?.dynamodb.SequenceNumber as string;
    const acknowledged = new Map([
      [seq(0), new Set(['a'])],
      [seq(1), new Set(['a', 'b'])],
    ]);

    // Act
    const outcome = await engine.process(records, { acknowledged });

    // Assess
    expect(outcome.statuses).toEqual(['delivered', 'skipped', 'delivered']);
    expect(a.attempts.map(version)).toEqual([3]);
    expect(b.attempts.map(version).sort()).toEqual([1, 3]);
    expect(outcome.acknowledged.size).toBe(0);
  });

  it('reports in the outcome which sinks acknowledged each record that is not done', async () => {
    // Prepare: one item, four changes, run to both sinks; b fails change 2 for good and there is no DLQ.
    const b = new MemorySink({ name: 'b', preservesOrderWithinRequest: true, maxRecords: 100 }).failWhere((e) => version(e) === 2, { error: () => permanentError() });
    const { a, engine } = twoSinks(b);
    const records = changes(1, 4);
    // An earlier delivery had b acknowledge change 4.
    const acknowledged = new Map([[records[3]?.dynamodb.SequenceNumber as string, new Set(['b'])]]);

    // Act
    const outcome = await engine.process(records, { acknowledged });

    // Assess: change 2 blocks the lane; a acknowledged 2, 3 and 4 in the run (4 went to a alone).
    expect(outcome.statuses).toEqual(['delivered', 'blocked', 'blocked', 'blocked']);
    expect(a.attempts.map(version)).toEqual([1, 2, 3, 4]);
    expect(outcome.acknowledged).toEqual(
      new Map([
        [1, new Set(['a'])],
        [2, new Set(['a'])],
        [3, new Set(['a', 'b'])],
      ]),
    );
  });

  it('counts a sink as acknowledged only when every target of the record to it was acknowledged', async () => {
    // Prepare: two routes to sink a (one with a transform) and one to b; a fails the transformed entry for good.
    const clock = new FakeClock();
    const a = new MemorySink({ name: 'a' }).failWhere((e) => (e as { transformed?: boolean }).transformed === true, { error: () => permanentError() });
    const b = new MemorySink({ name: 'b' });
    const app = defineApp({
      table: 'TaskApp',
      routes: [route('*').to(a as MemorySink), route('*').transform((e) => ({ ...e, transformed: true })).to(a as MemorySink), route('*').to(b)],
      retry: { maxAttempts: 1 },
    });
    const engine = new Engine({ app, logger: memoryLogger(), clock, random: () => 0.5 });

    // Act
    const outcome = await engine.process(changes(1, 1));

    // Assess: blocked; only b counts as acknowledged.
    expect(outcome.statuses).toEqual(['blocked']);
    expect(outcome.acknowledged).toEqual(new Map([[0, new Set(['b'])]]));
  });
});
