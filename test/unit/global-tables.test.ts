import { describe, expect, it } from 'vitest';
import { ConfigError, decodeRecord, defineApp, Engine, route } from '../../src/index.js';
import type { AppConfig, ChangeEvent } from '../../src/index.js';
import { writtenIn } from '../../src/global-tables.js';
import { createStreamHandler } from '../../src/lambda/index.js';
import { createWorkerMetrics } from '../../src/observability/metrics.js';
import { FakeClock, memoryLogger, MemoryProgressStore, MemorySink, streamRecords } from '../../src/testing/index.js';

type Task = { PK: string; SK: string; Version: number; writtenIn?: string };

const task = (k: number, version: number, extra: Record<string, unknown> = {}): Task => ({ PK: `USER#${k}`, SK: `TASK#${k}`, Version: version, ...extra });
/** Legacy (2017.11.29) stamps, as that version writes them on every item. */
const rep = (region: string, time: number) => ({ 'aws:rep:updateregion': region, 'aws:rep:updatetime': time, 'aws:rep:deleting': false });

/** The stream of the eu-west-1 replica: every record's awsRegion is eu-west-1, wherever the write was made. */
const here = () => streamRecords({ region: 'eu-west-1' });

const keysOf = (events: readonly unknown[]) => (events as ChangeEvent<Task>[]).map((e) => `${e.key['PK'] as string}@${(e.newImage ?? e.oldImage)?.Version}`);

/**
 * A stream holding both kinds: changes written in eu-west-1 and changes replicated from us-east-1,
 * stamped by the application (version 2019.11.21 writes no attribute of its own).
 */
const mixedByAttribute = () => {
  const r = here();
  return [
    r.insert(task(1, 1, { writtenIn: 'eu-west-1' })),
    r.insert(task(2, 1, { writtenIn: 'us-east-1' })),
    r.modify(task(1, 1, { writtenIn: 'eu-west-1' }), task(1, 2, { writtenIn: 'us-east-1' })),
    r.modify(task(2, 1, { writtenIn: 'us-east-1' }), task(2, 2, { writtenIn: 'eu-west-1' })),
    r.remove(task(1, 2, { writtenIn: 'us-east-1' })),
    r.remove(task(2, 2, { writtenIn: 'eu-west-1' })),
    r.insert(task(3, 1)),
  ];
};

/** The same with legacy global tables: each local write is followed by replication's stamping modify. */
const mixedLegacy = () => {
  const r = here();
  return [
    r.insert(task(1, 1)), // a local PutItem: no stamps yet
    r.modify(task(1, 1), task(1, 1, rep('eu-west-1', 100))), // replication stamps it
    r.insert(task(2, 1, rep('us-east-1', 101))), // replicated from us-east-1
    r.modify(task(2, 1, rep('us-east-1', 101)), task(2, 2, rep('us-east-1', 101))), // a local UpdateItem carries the old stamps
    r.modify(task(2, 2, rep('us-east-1', 101)), task(2, 2, rep('eu-west-1', 102))), // and is stamped
    r.modify(task(1, 1, rep('eu-west-1', 100)), task(1, 2, rep('us-east-1', 103))), // replicated update
    r.remove(task(1, 2, rep('us-east-1', 103))), // item last written in us-east-1
  ];
};

const setup = (config: Partial<AppConfig> = {}) => {
  const clock = new FakeClock();
  const sink = new MemorySink({ clock });
  const logger = memoryLogger();
  const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], globalTable: { deliver: 'local-writes', regionAttribute: 'writtenIn' }, ...config });
  return { clock, sink, logger, app, engine: new Engine({ app, logger, clock }) };
};

describe('globalTable: local writes only', () => {
  describe('writtenIn', () => {
    it.each([
      ['an insert stamped by the application', here().insert(task(1, 1, { writtenIn: 'us-east-1' })), 'us-east-1'],
      ['a remove, by its old image', here().remove(task(1, 1, { writtenIn: 'us-east-1' })), 'us-east-1'],
      ['an item without the attribute', here().insert(task(1, 1)), undefined],
      ['a legacy replicated insert', here().insert(task(1, 1, rep('us-east-1', 1))), 'us-east-1'],
      ['a legacy local UpdateItem that carries the previous stamps', here().modify(task(1, 1, rep('us-east-1', 1)), task(1, 2, rep('us-east-1', 1))), undefined],
      ['a legacy stamping modify', here().modify(task(1, 1), task(1, 1, rep('eu-west-1', 2))), 'replication'],
      ['a legacy replicated modify', here().modify(task(1, 1, rep('eu-west-1', 1)), task(1, 2, rep('us-east-1', 2))), 'us-east-1'],
    ])('%s', (_, record, expected) => {
      expect(writtenIn(decodeRecord(record), 'writtenIn')).toBe(expected);
    });

    it('reads the legacy attribute before the application one', () => {
      expect(writtenIn(decodeRecord(here().insert(task(1, 1, { ...rep('us-east-1', 1), writtenIn: 'eu-west-1' }))), 'writtenIn')).toBe('us-east-1');
    });
  });

  it('the engine delivers changes written here and counts the replicated ones as done (application attribute)', async () => {
    // Prepare
    const { engine, sink } = setup();
    const batch = mixedByAttribute();

    // Act
    const outcome = await engine.process(batch);

    // Assess: a remove goes with its old image's region; an unstamped item is delivered.
    expect(keysOf(sink.delivered).sort()).toEqual(['USER#1@1', 'USER#2@2', 'USER#2@2', 'USER#3@1']);
    expect(outcome.statuses).toEqual(['delivered', 'replicated', 'replicated', 'delivered', 'replicated', 'delivered', 'delivered']);
    expect(outcome.counts.replicated).toBe(3);
    expect(outcome.watermark).toBe(batch.length);
  });

  it('the engine delivers each legacy write once: not replication’s stamping, not another region’s writes', async () => {
    // Prepare
    const { engine, sink } = setup({ globalTable: { deliver: 'local-writes' } });

    // Act
    const outcome = await engine.process(mixedLegacy());

    // Assess
    expect(keysOf(sink.delivered).sort()).toEqual(['USER#1@1', 'USER#2@2']);
    expect(outcome.counts.replicated).toBe(5);
  });

  it('counts replicated records in dynamo_cdc_replicated_total', async () => {
    // Prepare
    const metrics = createWorkerMetrics({ defaultMetrics: false });
    const { app, clock } = setup();
    const engine = new Engine({ app, logger: memoryLogger(), clock, observer: metrics.observer });

    // Act
    await engine.process(mixedByAttribute());

    // Assess
    expect(await metrics.registry.getSingleMetricAsString('dynamo_cdc_replicated_total')).toContain('dynamo_cdc_replicated_total 3');
  });

  it('without globalTable, delivers every change', async () => {
    const { engine, sink } = setup({ globalTable: undefined });
    await engine.process(mixedByAttribute());
    expect(sink.delivered).toHaveLength(7);
  });

  it('takes `region` over the stream’s region', async () => {
    const { engine, sink } = setup({ globalTable: { deliver: 'local-writes', regionAttribute: 'writtenIn', region: 'us-east-1' } });
    await engine.process(mixedByAttribute());
    expect(keysOf(sink.delivered).sort()).toEqual(['USER#1@2', 'USER#1@2', 'USER#2@1', 'USER#3@1']);
  });

  it('leaves replicated records out of runs, so a bulk destination gets only local writes, in order', async () => {
    // Prepare: one item's changes, alternating regions, to a destination that takes runs.
    const clock = new FakeClock();
    const sink = new MemorySink({ clock, preservesOrderWithinRequest: true, maxRecords: 100 });
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], globalTable: { deliver: 'local-writes', regionAttribute: 'writtenIn' } });
    const r = here();
    const batch = Array.from({ length: 8 }, (_, v) => r.modify(task(1, v), task(1, v + 1, { writtenIn: v % 2 ? 'us-east-1' : 'eu-west-1' })));

    // Act
    const outcome = await new Engine({ app, logger: memoryLogger(), clock }).process(batch);

    // Assess
    expect(keysOf(sink.delivered)).toEqual(['USER#1@1', 'USER#1@3', 'USER#1@5', 'USER#1@7']);
    expect(outcome.counts.replicated).toBe(4);
  });

  it('the Lambda handler reports the batch done and logs the replicated count', async () => {
    // Prepare
    const { app, sink, logger, clock } = setup();
    const handler = createStreamHandler(app, { clock, logger, progressStore: new MemoryProgressStore(), random: () => 0.5 });

    // Act
    const response = await handler({ Records: mixedByAttribute() }, { getRemainingTimeInMillis: () => 60_000 });

    // Assess
    expect(response).toEqual({ batchItemFailures: [] });
    expect(sink.delivered).toHaveLength(4);
    expect(logger.entries.find((e) => e.msg === 'batch done')).toMatchObject({ obj: { records: 7, delivered: 4, replicated: 3 } });
  });

  it.each([
    [{ deliver: 'all' }, 'globalTable.deliver'],
    [{ deliver: 'local-writes', regionAttribute: '' }, 'globalTable.regionAttribute'],
    [{ deliver: 'local-writes', region: 42 }, 'globalTable.region'],
  ])('refuses %o at start-up, naming the field', (globalTable, field) => {
    expect(() => defineApp({ table: 'T', routes: [route('*').to(new MemorySink())], globalTable: globalTable as AppConfig['globalTable'] })).toThrow(ConfigError);
    expect(() => defineApp({ table: 'T', routes: [route('*').to(new MemorySink())], globalTable: globalTable as AppConfig['globalTable'] })).toThrow(`\`${field}\``);
  });
});
