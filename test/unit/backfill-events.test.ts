import { describe, expect, it } from 'vitest';
import { backfillEventId, backfillRecord } from '../../src/backfill/records.js';
import type { BackfillRecordContext } from '../../src/backfill/records.js';
import { backfill } from '../../src/backfill/backfill.js';
import { ReadBudget } from '../../src/backfill/read-budget.js';
import { backfillVersion, decodeRecord, defineApp, Engine, entity, isBackfillEvent, route } from '../../src/index.js';
import type { ChangeEvent } from '../../src/index.js';
import { contentName, exportPositionOf, isChangeEvent, defaultLine } from '../../src/sinks/s3/export-layout.js';
import { changeVersion } from '../../src/sinks/opensearch/version.js';
import { openSearch } from '../../src/sinks/opensearch/index.js';
import { FakeClock, memoryLogger, MemoryDeadLetterQueue, MemorySink, permanentError, streamRecords } from '../../src/testing/index.js';

const STREAM = 'arn:aws:dynamodb:eu-west-1:123456789012:table/TaskApp/stream/2026-01-01T00:00:00.000';
const STARTED = Date.UTC(2026, 0, 2, 10, 0, 0, 500);

const ctx = (segment = 1): BackfillRecordContext => ({
  streamArn: STREAM,
  region: 'eu-west-1',
  keyNames: ['PK', 'SK'],
  info: { id: 'b1', segment, totalSegments: 4, startedAt: STARTED, scannedAt: STARTED + 2000 },
});

const item = (k: number, status = 'OPEN') => ({ PK: { S: `USER#${k}` }, SK: { S: `TASK#${k}` }, Status: { S: status }, Version: { N: '3' } });

type Task = { PK: string; SK: string; Status: string; Version: number };
const Task = entity<Task>('Task', { key: { PK: 'USER#', SK: 'TASK#' } });

describe('backfill events', () => {
  it('decodes a scanned item into a backfill event with the item, every attribute changed and the backfill in meta', () => {
    // Act
    const event = decodeRecord(backfillRecord(item(7), ctx()), { entityOf: (keys) => (keys['PK']?.S?.startsWith('USER#') ? 'Task' : undefined) });
    // Assess
    expect(event.kind).toBe('backfill');
    expect(isBackfillEvent(event)).toBe(true);
    expect(event.newImage).toEqual({ PK: 'USER#7', SK: 'TASK#7', Status: 'OPEN', Version: 3 });
    expect(event.oldImage).toBeUndefined();
    expect(event.key).toEqual({ PK: 'USER#7', SK: 'TASK#7' });
    expect(event.changed).toEqual(['PK', 'SK', 'Status', 'Version']);
    expect(event.entity).toBe('Task');
    expect(event.expired).toBe(false);
    expect(event.meta).toMatchObject({ table: 'TaskApp', region: 'eu-west-1', streamArn: STREAM, shardId: undefined, sequenceNumber: '', approximateCreationTime: STARTED });
    expect(event.meta.backfill).toEqual({ id: 'b1', segment: 1, totalSegments: 4, startedAt: STARTED, scannedAt: STARTED + 2000 });
  });

  it('gives an item the same event id in every segment and run of one backfill, and another in another backfill', () => {
    const a = backfillEventId('b1', item(1), ['PK', 'SK']);
    expect(backfillRecord(item(1, 'DONE'), ctx(3)).eventID).toBe(a); // the key decides, not the image or the segment
    expect(backfillEventId('b1', item(2), ['PK', 'SK'])).not.toBe(a);
    expect(backfillEventId('b2', item(1), ['PK', 'SK'])).not.toBe(a);
    expect(a).toMatch(/^bf-b1-[0-9a-f]{24}$/);
  });

  it('refuses a backfill record without its backfill section as malformed', () => {
    const { backfill: _dropped, ...raw } = backfillRecord(item(1), ctx());
    expect(() => decodeRecord(raw)).toThrow(/no valid backfill section/);
  });

  it('a route without .on() takes backfill events; .on(kinds) takes them only when it lists backfill', async () => {
    // Prepare
    const all = new MemorySink({ name: 'all' });
    const inserts = new MemorySink({ name: 'inserts' });
    const both = new MemorySink({ name: 'both' });
    const app = defineApp({ table: 'TaskApp', routes: [route(Task).to(all), route(Task).on('insert').to(inserts), route(Task).on('insert', 'backfill').to(both)] });
    const engine = new Engine({ app, logger: memoryLogger(), clock: new FakeClock() });
    // Act
    const outcome = await engine.process([backfillRecord(item(1), ctx()), streamRecords({ region: 'eu-west-1' }).insert({ PK: 'USER#2', SK: 'TASK#2', Status: 'OPEN', Version: 1 })]);
    // Assess
    expect(outcome.counts.delivered).toBe(2);
    expect(all.delivered.map((e) => e.kind)).toEqual(expect.arrayContaining(['backfill', 'insert']));
    expect(inserts.delivered.map((e) => e.kind)).toEqual(['insert']);
    expect(both.delivered.map((e) => e.kind).sort()).toEqual(['backfill', 'insert']);
  });

  it('dead-letters a backfill item a sink refuses, with the raw record kept whole and no stream position', async () => {
    // Prepare
    const sink = new MemorySink({ name: 's' }).failRequests(Infinity, () => permanentError());
    const dlq = new MemoryDeadLetterQueue();
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], deadLetter: dlq });
    const engine = new Engine({ app, logger: memoryLogger(), clock: new FakeClock() });
    const raw = backfillRecord(item(1), ctx());
    // Act
    const outcome = await engine.process([raw]);
    // Assess
    expect(outcome.statuses).toEqual(['dead-lettered']);
    expect(dlq.letters[0]?.record).toEqual(raw);
    expect(dlq.letters[0]?.position).toEqual({ streamArn: STREAM, shardId: undefined, sequenceNumber: '', eventID: raw.eventID });
    // The letter decodes back to the same event: `dlq redrive` can send it again.
    expect(decodeRecord(dlq.letters[0]?.record).kind).toBe('backfill');
  });
});

describe('sinks and backfill events', () => {
  const event = decodeRecord(backfillRecord(item(1), ctx(2))) as ChangeEvent;

  it('S3 export files a backfill under its own stream label, by the Scan start, never as a transformed payload', () => {
    const position = exportPositionOf(event);
    expect(position).toEqual({ table: 'TaskApp', stream: 'backfill-b1-s2', sequence: event.eventID, time: STARTED });
    expect(isChangeEvent(event)).toBe(true);
    const line = defaultLine(event);
    expect(line).toMatchObject({ kind: 'backfill', sequenceNumber: null, shardId: null, oldImage: null, approximateCreationTime: new Date(STARTED).toISOString() });
    expect(contentName('x')).toMatch(/^transformed-/); // the other path, for contrast
  });

  it('OpenSearch versions a backfill below every change made from the Scan start on, at second or minute resolution, with the host a minute ahead', () => {
    const version = changeVersion(event);
    expect(version).toBe(backfillVersion(STARTED));
    // STARTED is 10:00:00.500: the version is 1 ms below 09:59:00.
    expect(version).toBe(Date.UTC(2026, 0, 2, 9, 59, 0) - 1);
    const atSecond = Math.floor(STARTED / 1000) * 1000;
    const atMinute = Math.floor(STARTED / 60_000) * 60_000;
    const hostAheadByAMinute = Math.floor((STARTED - 60_000) / 1000) * 1000;
    for (const changeTime of [atSecond, atMinute, hostAheadByAMinute]) expect(version).toBeLessThan(changeTime);
    // A change made well before the Scan (older than the scanned state) does not win over it.
    expect(version).toBeGreaterThan(STARTED - 3 * 60_000);
  });

  it('OpenSearch indexes a backfill event (external_gte with the backfill version)', async () => {
    // Prepare
    const bodies: string[] = [];
    const client = {
      transport: {
        request: (params: { bulkBody: string }) => {
          bodies.push(params.bulkBody);
          const p = Promise.resolve({ body: { items: [{ index: { status: 201 } }] } }) as Promise<unknown> & { abort: () => void };
          p.abort = () => {};
          return p;
        },
      },
    };
    const sink = openSearch({ index: 'tasks', client: client as never });
    // Act
    const result = await sink.send([event], new AbortController().signal);
    // Assess
    expect(result.failed).toEqual([]);
    const [action, document] = (bodies[0] ?? '').split('\n');
    expect(action).toContain(`"version":${backfillVersion(STARTED)},"version_type":"external_gte"`);
    expect(action).toMatch(/^\{"index":/);
    expect(JSON.parse(document ?? '{}')).toEqual({ PK: 'USER#1', SK: 'TASK#1', Status: 'OPEN', Version: 3 });
  });
});

describe('ReadBudget', () => {
  it('keeps the rate read at the budget across readers, pages dearer than the burst included', async () => {
    // Prepare: 4 readers, 10 pages of 25 units each, budget 50 units/s: 1000 units take about 19 s after the 1 s burst.
    const clock = new FakeClock(0);
    const budget = new ReadBudget(50, clock);
    // Act
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        let reserve = 1;
        for (let page = 0; page < 10; page++) {
          await budget.reserve(reserve);
          budget.settle(reserve, 25);
          reserve = 25;
        }
      }),
    );
    // Assess
    expect(clock.now()).toBeGreaterThanOrEqual(18_000);
    expect(clock.now()).toBeLessThanOrEqual(21_000);
  });
});

describe('backfill options', () => {
  const app = defineApp({ table: 'TaskApp', routes: [route('*').to(new MemorySink())] });
  it.each([
    [{ maxRcu: 0 }, /`maxRcu` must be a number of read capacity units per second > 0, got `0`/],
    [{ maxRcu: -1 }, /`maxRcu` must be a number/],
    [{ maxRcu: Number.NaN }, /`maxRcu` must be a number/],
    [{ segments: 0 }, /`segments` must be an integer from 1 to 1000/],
    [{ segments: 1001 }, /`segments` must be an integer from 1 to 1000/],
    [{ pageSize: 0 }, /`pageSize` must be an integer >= 1/],
    [{ leaseTable: '' }, /`leaseTable` must be the lease table/],
  ])('refuses %o before any request', async (bad, message) => {
    // An endpoint nothing listens on: a request would fail differently.
    await expect(backfill({ app, leaseTable: 'leases', endpoint: 'http://127.0.0.1:9', region: 'us-east-1', ...bad })).rejects.toThrow(message);
  });
});
