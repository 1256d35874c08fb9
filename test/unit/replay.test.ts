import { describe, expect, it } from 'vitest';
import { ConfigError, decodeRecord, defineApp, entity, route } from '../../src/index.js';
import type { ChangeEvent } from '../../src/index.js';
import { orderLines, parseExportObject, toStreamRecord } from '../../src/replay/export-lines.js';
import type { ExportLine } from '../../src/replay/export-lines.js';
import { MemoryReplayCheckpoints, parseTime, replay, resolveRange, selectRoutes } from '../../src/replay/index.js';
import { defaultLine } from '../../src/sinks/s3/export-layout.js';
import { FakeClock, MemoryDeadLetterQueue, MemorySink, ScriptedStreams, streamRecords, throttlingError, toGetRecordsShape } from '../../src/testing/index.js';
import type { LambdaStreamRecord } from '../../src/testing/index.js';
import type { StreamsApi } from '../../src/worker/index.js';

type Task = { PK: string; SK: string; Status: string; Version: number };
const Task = entity<Task>('Task', { key: { PK: 'USER#', SK: 'TASK#' } });

const appWith = (sinks: { search: MemorySink; bus: MemorySink }, deadLetter?: MemoryDeadLetterQueue) =>
  defineApp({
    table: 'TaskApp',
    routes: [route(Task).on('modify').to(sinks.bus), route(Task).to(sinks.search)],
    ...(deadLetter ? { deadLetter } : {}),
    retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 1, throttlingBaseDelayMs: 1 },
  });

const sinksOf = () => ({ search: new MemorySink({ name: 'search' }), bus: new MemorySink({ name: 'bus' }) });

const line = (over: Partial<ExportLine> & Pick<ExportLine, 'eventID' | 'sequenceNumber' | 'time'>): ExportLine => ({
  kind: 'insert',
  table: 'TaskApp',
  key: { PK: 'USER#1', SK: 'TASK#1' },
  newImage: { PK: 'USER#1', SK: 'TASK#1' },
  oldImage: null,
  changed: undefined,
  expired: false,
  shardId: 'shard-a',
  sizeBytes: 1,
  ...over,
});

describe('replay ranges', () => {
  const now = Date.UTC(2026, 0, 2, 12);

  it('reads ISO times, relative durations before now, epoch ms and Dates', () => {
    expect(parseTime('from', '2026-01-02T10:00:00Z', now)).toBe(Date.UTC(2026, 0, 2, 10));
    expect(parseTime('from', '2h', now)).toBe(now - 2 * 3_600_000);
    expect(parseTime('from', '90s', now)).toBe(now - 90_000);
    expect(parseTime('from', '1d', now)).toBe(now - 86_400_000);
    expect(parseTime('from', 5, now)).toBe(5);
    expect(parseTime('from', new Date(7), now)).toBe(7);
  });

  it('rejects a time it cannot read, naming the field', () => {
    expect(() => parseTime('from', 'yesterday', now)).toThrow(ConfigError);
    expect(() => parseTime('to', '2026', now)).toThrow(/`to` must be an ISO 8601 time/);
  });

  it('rejects a range that ends before it starts, and sequence numbers that are not numbers', () => {
    expect(() => resolveRange({ from: '1h', to: '2h' }, now)).toThrow(/`to` .* must be after from/);
    expect(() => resolveRange({ fromSequence: '12x' }, now)).toThrow(/fromSequence/);
    expect(() => resolveRange({ fromSequence: '200', toSequence: '100' }, now)).toThrow(/toSequence/);
  });
});

describe('replay route selection', () => {
  const sinks = sinksOf();
  const app = appWith(sinks);

  it('takes every route to a sink, a route by place or by description', () => {
    expect(selectRoutes(app, { sinks: ['search'] })).toEqual([app.routes[1]]);
    expect(selectRoutes(app, { routes: ['0'] })).toEqual([app.routes[0]]);
    expect(selectRoutes(app, { routes: ['routes[1]'] })).toEqual([app.routes[1]]);
    expect(selectRoutes(app, { routes: ['Task.modify -> bus'] })).toEqual([app.routes[0]]);
  });

  it('answers an unknown sink or route with the names that exist', () => {
    expect(() => selectRoutes(app, { sinks: ['serch'] })).toThrow('`sink` `serch` is not a sink of the app. Its sinks: bus, search.');
    expect(() => selectRoutes(app, { routes: ['7'] })).toThrow('Its routes: routes[0] (Task.modify -> bus), routes[1] (Task -> search).');
    expect(() => selectRoutes(app, {})).toThrow(/must name where the replay sends/);
  });
});

describe('replay of export lines', () => {
  it('orders a shard by sequence number exactly, and shards by creation time, dropping copies', () => {
    const lines = [
      line({ eventID: 'a3', sequenceNumber: '300', time: 3000, shardId: 'a' }),
      line({ eventID: 'a1', sequenceNumber: '100', time: 1000, shardId: 'a' }),
      // Same second as a2 but a smaller sequence number in another shard: time, then sequence.
      line({ eventID: 'b1', sequenceNumber: '150', time: 2000, shardId: 'b' }),
      line({ eventID: 'a2', sequenceNumber: '200', time: 2000, shardId: 'a' }),
      line({ eventID: 'a1', sequenceNumber: '100', time: 1000, shardId: 'a' }),
      // A shard's order wins over an out-of-order creation time.
      line({ eventID: 'b2', sequenceNumber: '9000', time: 1500, shardId: 'b' }),
    ];
    const { ordered, duplicates } = orderLines(lines);
    expect(ordered.map((l) => l.eventID)).toEqual(['a1', 'b1', 'b2', 'a2', 'a3']);
    expect(duplicates).toBe(1);
  });

  it('compares sequence numbers as numbers, not strings', () => {
    const { ordered } = orderLines([line({ eventID: 'big', sequenceNumber: '1000', time: 0 }), line({ eventID: 'small', sequenceNumber: '999', time: 0 })]);
    expect(ordered.map((l) => l.eventID)).toEqual(['small', 'big']);
  });

  it('rebuilds a record whose event writes the same JSON as the original', () => {
    const records = streamRecords();
    const original = decodeRecord(
      records.modify({ PK: 'USER#1', SK: 'TASK#1', Status: 'OPEN', Tags: new Set(['a', 'b']), N: 1.5, Nested: { L: [1, 'x', null, true] } }, { PK: 'USER#1', SK: 'TASK#1', Status: 'DONE', Tags: new Set(['a', 'b']), N: 1.5, Nested: { L: [1, 'x', null, true] } }),
      { shardId: 'shard-7' },
    );
    const parsed = parseExportObject(`${JSON.stringify(defaultLine(original))}\n`);
    if (typeof parsed === 'string') throw new Error(parsed);
    const rebuilt = toStreamRecord(parsed[0] as ExportLine, original.meta.streamArn);
    const event = decodeRecord(rebuilt, { shardId: 'shard-7' });
    expect(JSON.parse(JSON.stringify(defaultLine(event)))).toEqual(JSON.parse(JSON.stringify(defaultLine(original))));
  });

  it('keeps a TTL delete a TTL delete', () => {
    const original = decodeRecord(streamRecords().remove({ PK: 'USER#1', SK: 'TASK#1' }, { ttl: true }));
    const parsed = parseExportObject(JSON.stringify(defaultLine(original))) as ExportLine[];
    expect(decodeRecord(toStreamRecord(parsed[0] as ExportLine, original.meta.streamArn)).expired).toBe(true);
  });

  it('says which line of an object is not JSON or not a change event', () => {
    expect(parseExportObject('{"eventID":"e1"\n')).toMatch(/^line 1 is not JSON/);
    expect(parseExportObject('\n{"status":"DONE","eventID":"e1"}\n')).toMatch(/^line 2: `kind` is not insert, modify or remove/);
  });
});

describe('replay from the stream (scripted shards)', () => {
  const setup = () => {
    const records = streamRecords({ startTime: Date.UTC(2026, 0, 1) });
    const streams = new ScriptedStreams({ streamArn: records.streamArn });
    const clock = new FakeClock(Date.UTC(2026, 0, 1, 1));
    return { records, streams, clock };
  };
  const task = (n: number, status: string, version: number) => ({ PK: `USER#${n}`, SK: `TASK#${n}`, Status: status, Version: version });
  const getShape = (rs: LambdaStreamRecord[]) => rs.map(toGetRecordsShape);

  it('reads a parent before its children, and an item keeps its order across the split', async () => {
    const { records, streams, clock } = setup();
    streams.addShard({ shardId: 'parent' });
    streams.append('parent', getShape([records.insert(task(1, 'OPEN', 1)), records.modify(task(1, 'OPEN', 1), task(1, 'DONE', 2))]));
    streams.split('parent', ['child-a', 'child-b']);
    streams.append('child-a', getShape([records.modify(task(1, 'DONE', 2), task(1, 'OPEN', 3))]));
    streams.append('child-b', getShape([records.insert(task(2, 'OPEN', 1))]));
    streams.closeShard('child-a').closeShard('child-b');
    const sinks = sinksOf();
    const checkpoints = new MemoryReplayCheckpoints();
    const report = await replay({ app: appWith(sinks), sinks: ['search'], clock, source: { type: 'stream', streams, streamArn: records.streamArn, checkpoints, id: 'r1' } });
    expect(report.problems).toEqual([]);
    expect(report.complete).toBe(true);
    expect(sinks.search.delivered.filter((e) => e.key['PK'] === 'USER#1').map((e) => (e.newImage as Task).Version)).toEqual([1, 2, 3]);
    expect(sinks.search.delivered).toHaveLength(4);
    expect(sinks.bus.delivered).toHaveLength(0);
    expect(report.bySink).toEqual({ search: { insert: 2, modify: 2 } });
    expect(checkpoints.replays.get('r1')?.finished).toBe(true);
    expect([...(checkpoints.replays.get('r1')?.checkpoints.values() ?? [])]).toEqual(['END', 'END', 'END']);
  });

  it('sends only the records between --from and --to', async () => {
    const { records, streams, clock } = setup();
    streams.addShard({ shardId: 's1' });
    // One record a second from 00:00:01.
    streams.append('s1', getShape([1, 2, 3, 4, 5].map((i) => records.insert(task(i, 'OPEN', 1)))));
    const sinks = sinksOf();
    const report = await replay({
      app: appWith(sinks),
      sinks: ['search'],
      clock,
      from: '2026-01-01T00:00:02Z',
      to: '2026-01-01T00:00:04Z',
      source: { type: 'stream', streams, streamArn: records.streamArn, checkpoints: new MemoryReplayCheckpoints() },
    });
    expect(sinks.search.delivered.map((e) => e.key['PK'])).toEqual(['USER#2', 'USER#3']);
    expect(report.records).toBe(2);
    expect(report.complete).toBe(true);
  });

  it('stops at the tip of an open shard', async () => {
    const { records, streams, clock } = setup();
    streams.addShard({ shardId: 's1' });
    streams.append('s1', getShape([records.insert(task(1, 'OPEN', 1))]));
    const sinks = sinksOf();
    const report = await replay({ app: appWith(sinks), sinks: ['search'], clock, dryRun: true, source: { type: 'stream', streams, streamArn: records.streamArn } });
    expect(report.shards.map((s) => s.state)).toEqual(['done']);
    expect(report.bySink).toEqual({ search: { insert: 1 } });
    expect(sinks.search.delivered).toHaveLength(0);
  });

  it('a dry run counts per sink, per route and per kind, and sends and checkpoints nothing', async () => {
    const { records, streams, clock } = setup();
    streams.addShard({ shardId: 's1' });
    streams.append('s1', getShape([records.insert(task(1, 'OPEN', 1)), records.modify(task(1, 'OPEN', 1), task(1, 'DONE', 2)), records.remove(task(1, 'DONE', 2)), records.insert({ PK: 'OTHER#1', SK: 'X' })]));
    streams.closeShard('s1');
    const sinks = sinksOf();
    const checkpoints = new MemoryReplayCheckpoints();
    const report = await replay({ app: appWith(sinks), sinks: ['search', 'bus'], clock, dryRun: true, source: { type: 'stream', streams, streamArn: records.streamArn, checkpoints } });
    expect(report.bySink).toEqual({ search: { insert: 1, modify: 1, remove: 1 }, bus: { modify: 1 } });
    expect(report.byRoute).toEqual({ 'routes[1] (Task -> search)': { insert: 1, modify: 1, remove: 1 }, 'routes[0] (Task.modify -> bus)': { modify: 1 } });
    expect(report.unrouted).toBe(1);
    expect(sinks.search.attempts).toHaveLength(0);
    expect(sinks.bus.attempts).toHaveLength(0);
    expect(checkpoints.replays.size).toBe(0);
  });

  it('a blocked lane stops the shard before it, and a run with the same id resumes there', async () => {
    const { records, streams, clock } = setup();
    streams.addShard({ shardId: 's1' });
    streams.append('s1', getShape([records.insert(task(1, 'OPEN', 1)), records.insert(task(2, 'OPEN', 1)), records.insert(task(3, 'OPEN', 1))]));
    streams.closeShard('s1');
    const sinks = sinksOf();
    sinks.search.failWhere((e) => (e as ChangeEvent).key['PK'] === 'USER#2', { times: Infinity });
    const checkpoints = new MemoryReplayCheckpoints();
    const options = { app: appWith(sinks), sinks: ['search'], clock, source: { type: 'stream' as const, streams, streamArn: records.streamArn, checkpoints, id: 'r2' } };
    const first = await replay(options);
    expect(first.complete).toBe(false);
    expect(first.problems[0]).toMatch(/^shard s1: record \d+ could not be delivered .* same --id to resume$/);
    expect(first.statuses.blocked).toBe(1);
    // Checkpointed after USER#1, the record before the one that failed.
    expect(checkpoints.replays.get('r2')?.checkpoints.get('s1')).toBe(sinks.search.delivered[0]?.meta.sequenceNumber);

    const fixed = sinksOf();
    const second = await replay({ ...options, app: appWith(fixed) });
    expect(second.resumed).toBe(true);
    expect(second.complete).toBe(true);
    // USER#1 was done: not sent again; USER#2 and USER#3 were not.
    expect(fixed.search.delivered.map((e) => e.key['PK'])).toEqual(['USER#2', 'USER#3']);
  });

  it('with a dead-letter queue, a failing record goes there and the replay goes on', async () => {
    const { records, streams, clock } = setup();
    streams.addShard({ shardId: 's1' });
    streams.append('s1', getShape([records.insert(task(1, 'OPEN', 1)), records.insert(task(2, 'OPEN', 1))]));
    streams.closeShard('s1');
    const sinks = sinksOf();
    sinks.search.failWhere((e) => (e as ChangeEvent).key['PK'] === 'USER#1', { times: Infinity });
    const dlq = new MemoryDeadLetterQueue();
    const report = await replay({ app: appWith(sinks, dlq), sinks: ['search'], clock, source: { type: 'stream', streams, streamArn: records.streamArn, checkpoints: new MemoryReplayCheckpoints() } });
    expect(report.complete).toBe(true);
    expect(report.statuses['dead-lettered']).toBe(1);
    expect(dlq.letters.map((l) => l.sink)).toEqual(['search']);
  });

  it('refuses a start outside the 24 h retention in one line, before reading', async () => {
    const { records, streams, clock } = setup();
    await expect(
      replay({ app: appWith(sinksOf()), sinks: ['search'], clock, from: '25h', source: { type: 'stream', streams, streamArn: records.streamArn, checkpoints: new MemoryReplayCheckpoints() } }),
    ).rejects.toThrow(/`from` \(.*\) is outside the stream's 24 h retention/);
    expect(streams.calls.describeStream).toBe(0);
  });

  it('refuses a range that ends before the retention begins, rather than sending nothing', async () => {
    const { records, streams, clock } = setup();
    await expect(
      replay({ app: appWith(sinksOf()), sinks: ['search'], clock, to: '30h', source: { type: 'stream', streams, streamArn: records.streamArn, checkpoints: new MemoryReplayCheckpoints() } }),
    ).rejects.toThrow(/`to` \(.*\) is outside the stream's 24 h retention/);
  });

  it('reports a sequence number already trimmed', async () => {
    const { records, streams, clock } = setup();
    streams.addShard({ shardId: 's1', startingSequenceNumber: '100000000000000000100' });
    streams.append('s1', getShape([1, 2, 3].map((i) => records.insert(task(i, 'OPEN', 1)))));
    streams.trim('s1', '100000000000000000200');
    const report = await replay({
      app: appWith(sinksOf()),
      sinks: ['search'],
      clock,
      fromSequence: '100000000000000000100',
      source: { type: 'stream', streams, streamArn: records.streamArn, checkpoints: new MemoryReplayCheckpoints() },
    });
    expect(report.complete).toBe(false);
    expect(report.problems).toEqual([expect.stringMatching(/^shard s1: sequence number 100000000000000000100 is past the stream's 24 h retention/)]);
  });

  it('retries a throttled read, and is not thrown off by it', async () => {
    const { records, streams, clock } = setup();
    streams.addShard({ shardId: 's1' });
    streams.append('s1', getShape([records.insert(task(1, 'OPEN', 1))]));
    streams.closeShard('s1');
    streams.failNext('getRecords', () => Object.assign(throttlingError(), { name: 'LimitExceededException' }), 2);
    streams.failNext('getShardIterator', () => throttlingError(), 1);
    const sinks = sinksOf();
    const report = await replay({ app: appWith(sinks), sinks: ['search'], clock, source: { type: 'stream', streams, streamArn: records.streamArn, checkpoints: new MemoryReplayCheckpoints() } });
    expect(report.complete).toBe(true);
    expect(sinks.search.delivered).toHaveLength(1);
  });

  it('refuses to resume an id with other routes, in one line naming them', async () => {
    const { records, streams, clock } = setup();
    streams.addShard({ shardId: 's1' });
    streams.closeShard('s1');
    const checkpoints = new MemoryReplayCheckpoints();
    const source = { type: 'stream' as const, streams, streamArn: records.streamArn, checkpoints, id: 'r3' };
    await replay({ app: appWith(sinksOf()), sinks: ['search'], clock, source });
    await expect(replay({ app: appWith(sinksOf()), sinks: ['bus'], clock, source })).rejects.toThrow(
      '`id` `r3` names a replay that began with other routes (Task -> search). Pass a new --id for a new replay, or the same sink/route to resume it.',
    );
  });

  it('reads more shards than it reads at once, and a finished id sends nothing again', async () => {
    const { records, streams, clock } = setup();
    for (let i = 0; i < 11; i++) {
      streams.addShard({ shardId: `s${i}` });
      streams.append(`s${i}`, getShape([records.insert(task(i, 'OPEN', 1))]));
      streams.closeShard(`s${i}`);
    }
    const sinks = sinksOf();
    const checkpoints = new MemoryReplayCheckpoints();
    const source = { type: 'stream' as const, streams, streamArn: records.streamArn, checkpoints, id: 'r4' };
    const first = await replay({ app: appWith(sinks), sinks: ['search'], clock, source });
    expect(first.complete).toBe(true);
    expect(first.shards).toHaveLength(11);
    expect(sinks.search.delivered).toHaveLength(11);
    const again = await replay({ app: appWith(sinks), sinks: ['search'], clock, source });
    expect(again.finishedBefore).toBe(true);
    expect(sinks.search.delivered).toHaveLength(11);
  });

  it('is not fooled by empty pages in the middle of an open shard', async () => {
    const { records, streams, clock } = setup();
    streams.addShard({ shardId: 's1' });
    streams.append('s1', getShape([records.insert(task(1, 'OPEN', 1))]));
    // The service may answer empty pages before the part of a shard that holds records.
    let empties = 4;
    const gappy: StreamsApi = {
      describeShards: (arn, signal) => streams.describeShards(arn, signal),
      childShards: (arn, shardId, signal) => streams.childShards(arn, shardId, signal),
      getShardIterator: (arn, shardId, position, signal) => streams.getShardIterator(arn, shardId, position, signal),
      getRecords: async (iterator, limit, signal) => (empties-- > 0 ? { records: [], nextIterator: iterator } : streams.getRecords(iterator, limit, signal)),
    };
    const sinks = sinksOf();
    const report = await replay({ app: appWith(sinks), sinks: ['search'], clock, source: { type: 'stream', streams: gappy, streamArn: records.streamArn, checkpoints: new MemoryReplayCheckpoints() } });
    expect(report.complete).toBe(true);
    expect(sinks.search.delivered).toHaveLength(1);
  });
});
