import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Dispatcher } from '../../src/core/dispatcher.js';
import { defineApp, Engine, entity, route } from '../../src/index.js';
import type { ChangeEvent, EngineObserver, Logger } from '../../src/index.js';
import { FakeClock, memoryLogger, MemoryDeadLetterQueue, MemorySink, permanentError, streamRecords } from '../../src/testing/index.js';

type Task = { PK: string; SK: string; Version: number };
const Task = entity<Task>('Task', { key: { PK: 'USER#', SK: 'TASK#' } });
const version = (e: unknown) => Number((e as ChangeEvent<Task>).newImage?.Version);
const key = (e: unknown) => String((e as ChangeEvent<Task>).key['PK']);

/** Three changes of each of four items, item by item round-robin. */
const changes = () => {
  const records = streamRecords();
  const out = [];
  for (let v = 1; v <= 3; v++) for (let k = 0; k < 4; k++) out.push(records.modify({ PK: `USER#${k}`, SK: `TASK#${k}`, Version: v - 1 }, { PK: `USER#${k}`, SK: `TASK#${k}`, Version: v }));
  return out;
};

const HOOKS = ['delivered', 'retried', 'deadLettered', 'batch'] as const;

const throwing = (hooks: readonly (typeof HOOKS)[number][]): EngineObserver =>
  Object.fromEntries(
    hooks.map((hook) => [
      hook,
      () => {
        throw new Error(`${hook} hook is broken`);
      },
    ]),
  );

/** Every record to a plain sink (v2 fails once: a retry) and to an order-keeping one (USER#1 v3 fails for good: a dead letter). */
const setup = (observer: EngineObserver, logger: Logger = memoryLogger()) => {
  const clock = new FakeClock();
  const plain = new MemorySink({ name: 'plain' }).failWhere((e) => version(e) === 2, { times: 1 });
  const ordered = new MemorySink({ name: 'ordered', preservesOrderWithinRequest: true, maxRecords: 100 }).failWhere((e) => key(e) === 'USER#1' && version(e) === 3, {
    error: () => permanentError(),
  });
  const dlq = new MemoryDeadLetterQueue();
  const app = defineApp({ table: 'TaskApp', routes: [route(Task).to(plain), route('*').to(ordered)], retry: { maxAttempts: 3 }, deadLetter: dlq });
  return { plain, ordered, dlq, engine: new Engine({ app, logger, clock, random: () => 0.5, observer }) };
};

/** Rejects when `promise` has not settled within `ms` of real time: a hang fails the test instead of timing it out. */
const within = <T>(promise: Promise<T>, ms = 2000): Promise<T> =>
  Promise.race([promise, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`still pending after ${ms} ms: the engine hangs`)), ms).unref())]);

const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => unhandled.push(reason);

describe('Engine with an observer that throws', () => {
  beforeEach(() => {
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
  });
  afterEach(() => {
    process.off('unhandledRejection', onUnhandled);
  });

  const expected = changes().map((r) => (r.dynamodb.Keys.PK?.S === 'USER#1' && r.dynamodb.NewImage?.['Version']?.N === '3' ? 'dead-lettered' : 'delivered'));

  it.each([...HOOKS.map((h) => [h, [h]] as const), ['every hook', HOOKS] as const])('resolves with the right statuses when %s throws', async (_, hooks) => {
    // Prepare
    const { engine, plain, ordered, dlq } = setup(throwing(hooks));

    // Act
    const outcome = await within(engine.process(changes()));
    await new Promise((resolve) => setImmediate(resolve));

    // Assess: the same outcome as with a healthy observer, and no promise left rejected.
    expect(outcome.statuses).toEqual(expected);
    expect(plain.delivered).toHaveLength(12);
    expect(ordered.delivered).toHaveLength(11);
    expect(dlq.letters).toHaveLength(1);
    expect(unhandled).toEqual([]);
  });

  it('logs a broken hook once per hook kind, with the error under err', async () => {
    // Prepare
    const logger = memoryLogger();
    const { engine } = setup(throwing(HOOKS), logger);

    // Act
    await within(engine.process(changes()));
    await within(engine.process(changes()));

    // Assess
    const lines = logger.entries.filter((e) => e.obj['hook'] !== undefined);
    expect(lines.map((e) => e.obj['hook']).sort()).toEqual([...HOOKS].sort());
    for (const line of lines) {
      expect(line.level).toBe('error');
      expect(line.obj['err']).toMatchObject({ message: `${String(line.obj['hook'])} hook is broken` });
    }
  });

  it('ends a record not done, instead of hanging, when the logger throws on its retry path', async () => {
    // Prepare: a logger whose warn throws; the plain sink's retries log a warning first.
    const logger = memoryLogger();
    logger.warn = () => {
      throw new Error('log transport down');
    };
    const { engine } = setup({}, logger);

    // Act
    const outcome = await within(engine.process(changes()));
    await new Promise((resolve) => setImmediate(resolve));

    // Assess: the records whose retry could not be handled are not done, so the checkpoint stays before them.
    expect(outcome.statuses.slice(0, 4)).toEqual(['delivered', 'delivered', 'delivered', 'delivered']);
    expect(outcome.statuses.slice(4).every((s) => s === 'blocked')).toBe(true);
    expect(outcome.watermark).toBe(4);
    expect(unhandled).toEqual([]);
  });
});

describe('Engine with a clock that throws', () => {
  beforeEach(() => {
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
  });
  afterEach(() => {
    process.off('unhandledRejection', onUnhandled);
  });

  it.each(Array.from({ length: 40 }, (_, i) => 2 * i + 1))('settles, never marking done a record no sink acknowledged, when now() starts throwing after %i calls', async (calls) => {
    // Prepare: a clock that breaks part-way through the batch, inside the lanes' callbacks.
    const clock = new FakeClock();
    let left = calls;
    const now = clock.now.bind(clock);
    clock.now = () => {
      if (--left < 0) throw new Error('clock is broken');
      return now();
    };
    const sink = new MemorySink({ name: 'plain' }).failWhere((e) => version(e) === 2, { times: 1 });
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], retry: { maxAttempts: 3 } });
    const engine = new Engine({ app, logger: memoryLogger(), clock, random: () => 0.5 });
    const batch = changes();

    // Act: it may reject (a clock it cannot read), but it settles.
    const outcome = await within(engine.process(batch).catch(() => undefined));
    await new Promise((resolve) => setImmediate(resolve));

    // Assess
    const delivered = new Set(sink.delivered.map((e) => (e as ChangeEvent).eventID));
    outcome?.statuses.forEach((s, i) => {
      if (s === 'delivered') expect(delivered.has(batch[i]?.eventID as string)).toBe(true);
    });
    expect(unhandled).toEqual([]);
  });
});

describe('Dispatcher with a settle callback that throws', () => {
  it('settles the other entries of the request and reports the error instead of rejecting', async () => {
    // Prepare
    const errors: unknown[] = [];
    const d = new Dispatcher<number>({
      name: 'test',
      maxRecords: 10,
      maxBytes: Infinity,
      sizeOf: () => 0,
      send: async () => [],
      signal: new AbortController().signal,
      onCallbackError: (error) => errors.push(error),
    });
    const settled: number[] = [];

    // Act
    const all = Promise.all(
      [1, 2, 3].map(
        (n) =>
          new Promise<void>((resolve) =>
            d.submit(n, () => {
              settled.push(n);
              resolve();
              if (n === 1) throw new Error('callback is broken');
            }),
          ),
      ),
    );
    await within(all);
    await new Promise((resolve) => setImmediate(resolve));

    // Assess
    expect(settled).toEqual([1, 2, 3]);
    expect(errors).toHaveLength(1);
  });
});
