import { describe, expect, it } from 'vitest';
import { ConfigError, defineApp, route } from '../../src/index.js';
import type { ChangeEvent } from '../../src/index.js';
import { createStreamHandler } from '../../src/lambda/index.js';
import { emfObserver } from '../../src/observability/index.js';
import type { EmfObserverOptions } from '../../src/observability/index.js';
import { FakeClock, memoryLogger, MemoryDeadLetterQueue, MemorySink, permanentError, streamRecords } from '../../src/testing/index.js';

type Task = { PK: string; SK: string; Version: number };
type Doc = Record<string, unknown> & {
  _aws: { Timestamp: number; CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string; Unit: string }[] }[] };
};

const NOW = Date.UTC(2026, 4, 1, 12);
const UNITS = new Set(['Seconds', 'Microseconds', 'Milliseconds', 'Bytes', 'Kilobytes', 'Megabytes', 'Gigabytes', 'Terabytes', 'Bits', 'Percent', 'Count', 'None']);

const keyOf = (e: unknown) => String((e as ChangeEvent<Task>).key['PK']);

/**
 * Checks a line against AWS's EMF specification: a JSON object whose `_aws` holds an integer
 * Timestamp and metric directives; every dimension key a directive names is a root member with a
 * string value (at most 30 per set), and every metric a root member with a number.
 */
const parseEmf = (line: string): Doc => {
  const doc = JSON.parse(line) as Doc;
  expect(Number.isInteger(doc._aws.Timestamp)).toBe(true);
  expect(doc._aws.CloudWatchMetrics.length).toBeGreaterThanOrEqual(1);
  for (const directive of doc._aws.CloudWatchMetrics) {
    expect(directive.Namespace).toMatch(/^.{1,255}$/);
    expect(directive.Dimensions.length).toBeGreaterThanOrEqual(1);
    for (const set of directive.Dimensions) {
      expect(set.length).toBeLessThanOrEqual(30);
      for (const key of set) expect(typeof doc[key], `dimension ${key}`).toBe('string');
    }
    expect(directive.Metrics.length).toBeLessThanOrEqual(100);
    for (const metric of directive.Metrics) {
      expect(UNITS.has(metric.Unit), `unit ${metric.Unit}`).toBe(true);
      expect(typeof doc[metric.Name], `metric ${metric.Name}`).toBe('number');
    }
  }
  return doc;
};

/** A Lambda handler over two sinks and a DLQ, writing EMF lines into `lines`. */
const setup = (options: EmfObserverOptions = {}) => {
  const clock = new FakeClock();
  const lines: string[] = [];
  const orders = new MemorySink({ name: 'orders', clock, latencyMs: 5 });
  const search = new MemorySink({ name: 'search', clock, latencyMs: 5 });
  const app = defineApp({
    table: 'TaskApp',
    routes: [route('*').to(orders), route('*').to(search)],
    retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 50 },
    deadLetter: new MemoryDeadLetterQueue(),
  });
  const observer = emfObserver({ write: (line) => lines.push(line), now: () => NOW, ...options });
  const handler = createStreamHandler(app, { clock, logger: memoryLogger(), random: () => 0.5, observer });
  const invoke = (records: readonly unknown[]) => handler({ Records: records }, { getRemainingTimeInMillis: () => 60_000 });
  return { lines, orders, search, invoke };
};

const bySink = (docs: readonly Doc[]) => new Map(docs.filter((d) => 'Sink' in d).map((d) => [d['Sink'] as string, d]));

describe('emfObserver', () => {
  it('writes one valid EMF line per sink and one batch line, with the counts of each sink', async () => {
    // Prepare: orders fails USER#1 once (a 503), search rejects USER#2 for good, and one record is malformed.
    const { lines, orders, search, invoke } = setup();
    orders.failWhere((e) => keyOf(e) === 'USER#1', { times: 1 });
    search.failWhere((e) => keyOf(e) === 'USER#2', { error: () => permanentError() });
    const records = streamRecords();
    const batch = [0, 1, 2, 3].map((k) => records.insert({ PK: `USER#${k}`, SK: 'TASK#1', Version: 1 }));
    const malformed = { ...records.insert({ PK: 'USER#9', SK: 'TASK#1', Version: 1 }), eventName: 'UPSERT' };

    // Act
    await invoke([...batch, malformed]);

    // Assess
    expect(lines).toHaveLength(4);
    const docs = lines.map(parseEmf);
    const sinks = bySink(docs);
    expect([...sinks.keys()].sort()).toEqual(['none', 'orders', 'search']);
    expect(sinks.get('orders')).toMatchObject({ Delivered: 4, DeadLettered: 0, Retries: 1 });
    expect(sinks.get('search')).toMatchObject({ Delivered: 3, DeadLettered: 1, Retries: 0 });
    expect(sinks.get('none')).toMatchObject({ Delivered: 0, DeadLettered: 1, Retries: 0 });
    for (const doc of sinks.values()) {
      expect(doc._aws).toEqual({
        Timestamp: NOW,
        CloudWatchMetrics: [
          {
            Namespace: 'DynamoCdc',
            Dimensions: [['Sink'], []],
            Metrics: [
              { Name: 'Delivered', Unit: 'Count' },
              { Name: 'DeadLettered', Unit: 'Count' },
              { Name: 'Retries', Unit: 'Count' },
            ],
          },
        ],
      });
    }
    const last = docs.at(-1) as Doc;
    expect(last).not.toHaveProperty('Sink');
    expect(last._aws.CloudWatchMetrics[0]).toEqual({
      Namespace: 'DynamoCdc',
      Dimensions: [[]],
      Metrics: [
        { Name: 'RecordsIn', Unit: 'Count' },
        { Name: 'BatchDuration', Unit: 'Milliseconds' },
      ],
    });
    expect(last['RecordsIn']).toBe(5);
    expect(last['BatchDuration']).toBeGreaterThanOrEqual(5); // at least one sink request of 5 ms
  });

  it('adds custom dimensions to every dimension set and counts each batch from zero', async () => {
    // Prepare
    const { lines, invoke } = setup({ namespace: 'TasksCdc', dimensions: { Service: 'tasks' } });
    const records = streamRecords();
    const first = [0, 1, 2].map((k) => records.insert({ PK: `USER#${k}`, SK: 'TASK#1', Version: 1 }));
    const second = [records.insert({ PK: 'USER#7', SK: 'TASK#1', Version: 1 })];

    // Act
    await invoke(first);
    const afterFirst = lines.length;
    await invoke(second);

    // Assess: three lines a batch (two sinks, one batch line), each batch with its own counts.
    expect(afterFirst).toBe(3);
    const docs = lines.map(parseEmf);
    for (const doc of docs) {
      expect(doc['Service']).toBe('tasks');
      expect(doc._aws.CloudWatchMetrics[0]?.Namespace).toBe('TasksCdc');
      for (const set of doc._aws.CloudWatchMetrics[0]?.Dimensions ?? []) expect(set[0]).toBe('Service');
    }
    expect(bySink(docs.slice(0, 3)).get('orders')).toMatchObject({ Delivered: 3, Sink: 'orders' });
    expect(bySink(docs.slice(3)).get('orders')).toMatchObject({ Delivered: 1, Sink: 'orders' });
    expect(docs[3]?._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([['Service', 'Sink'], ['Service']]);
    expect(docs[5]?._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([['Service']]);
    expect(docs[5]?.['RecordsIn']).toBe(1);
  });

  it('refuses a dimension that takes the name of one of its own members', () => {
    // Act
    const act = () => emfObserver({ dimensions: { Sink: 'orders' } });

    // Assess
    expect(act).toThrow(ConfigError);
    expect(act).toThrow(/dimensions\.Sink/);
  });
});
