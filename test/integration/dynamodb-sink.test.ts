import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DeleteItemCommand, DescribeTableCommand, GetItemCommand, PutItemCommand, ScanCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { marshall, unmarshall } from '@aws-sdk/util-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { classify, decodeRecord, defineApp, Engine, route } from '../../src/index.js';
import type { ChangeEvent, Item } from '../../src/index.js';
import { dynamoDb, ItemTooLargeError } from '../../src/sinks/dynamodb/index.js';
import { createStreamHandler } from '../../src/lambda/index.js';
import { localClientConfig } from '../../src/local/dynamodb-local.js';
import { readWholeStream } from '../../src/local/read-stream.js';
import { FakeClock, memoryLogger, MemoryDeadLetterQueue, seededRandom, streamRecords } from '../../src/testing/index.js';
import { describeSinkContract } from '../contract/sink-contract.js';
import { createTable, deleteTable, localClient, uniqueTableName } from '../support/dynamo.js';
import { backfillRecord } from '../../src/backfill/records.js';

type Task = { PK: string; SK: string; Status: string; Version: number; Body?: string };

const signal = () => new AbortController().signal;

const task = (k: number, version: number, extra: Partial<Task> = {}): Task => ({ PK: `USER#${k}`, SK: `TASK#${k}`, Status: 'OPEN', Version: version, ...extra });

describe('dynamoDb sink on DynamoDB Local', () => {
  let client: DynamoDBClient;
  const tables: string[] = [];

  const newTable = async (keys: { partitionKey: string; sortKey?: string } = { partitionKey: 'PK', sortKey: 'SK' }): Promise<string> => {
    const tableName = await createTable(client, { tableName: uniqueTableName('view'), ...keys });
    tables.push(tableName);
    return tableName;
  };

  const getItem = async (tableName: string, key: Item): Promise<Item | undefined> => {
    const out = await client.send(new GetItemCommand({ TableName: tableName, Key: Object.fromEntries(Object.entries(key).map(([k, v]) => [k, { S: String(v) }])), ConsistentRead: true }));
    return out.Item ? unmarshall(out.Item) : undefined;
  };

  const scan = async (tableName: string): Promise<Record<string, AttributeValue>[]> => (await client.send(new ScanCommand({ TableName: tableName, ConsistentRead: true }))).Items ?? [];

  beforeAll(() => {
    client = localClient();
  });

  afterAll(async () => {
    for (const t of tables) await deleteTable(client, t);
    client.destroy();
  });

  describeSinkContract('dynamoDb', async () => {
    const c = localClient();
    const tableName = await createTable(c, { tableName: uniqueTableName('contract'), partitionKey: 'PK', sortKey: 'SK' });
    const records = streamRecords();
    return {
      // The default item is the new image; the contract needs the eventID to reach the table.
      sink: dynamoDb({ tableName, client: c, item: (e) => ({ ...e.newImage, eventID: e.eventID }) }),
      makeEvents: (n) => Array.from({ length: n }, (_, i) => decodeRecord(records.insert(task(i, 1)))),
      // A table has no arrival order; the order its writes took effect in is their stream position.
      received: async () => {
        const items = (await c.send(new ScanCommand({ TableName: tableName, ConsistentRead: true }))).Items ?? [];
        return items.map((i) => unmarshall(i)).sort((a, b) => String(a['_cdcSeq']).localeCompare(String(b['_cdcSeq']))).map((i) => String(i['eventID']));
      },
      // The same change sent again meets its own position, which the condition refuses: one write.
      overwritesOnRetry: true,
      close: async () => {
        await deleteTable(c, tableName);
        c.destroy();
      },
    };
  });

  it('puts the new image under the source key with the padded sequence number', async () => {
    // Prepare
    const tableName = await newTable();
    const sink = dynamoDb<Task>({ tableName, client });
    const event = decodeRecord<Task>(streamRecords().insert(task(1, 1)));

    // Act
    const { failed } = await sink.send([event], signal());

    // Assess
    expect(failed).toEqual([]);
    expect(await getItem(tableName, { PK: 'USER#1', SK: 'TASK#1' })).toEqual({ ...task(1, 1), _cdcSeq: event.meta.sequenceNumber.padStart(40, '0') });
  });

  it('never goes backwards: a late or replayed older change is acknowledged and leaves the newer state', async () => {
    // Prepare: v1, v2, v3 of one item; v3 lands first.
    const tableName = await newTable();
    const sink = dynamoDb<Task>({ tableName, client });
    const records = streamRecords();
    const [v1, v2, v3] = [records.insert(task(1, 1)), records.modify(task(1, 1), task(1, 2)), records.modify(task(1, 2), task(1, 3))].map((r) => decodeRecord<Task>(r)) as [ChangeEvent<Task>, ChangeEvent<Task>, ChangeEvent<Task>];
    await sink.send([v3], signal());

    // Act: the older ones arrive late, in and out of order, then all again (a replay).
    const late = await sink.send([v2, v1], signal());
    const afterLate = await getItem(tableName, { PK: 'USER#1', SK: 'TASK#1' });
    const replay = await sink.send([v1, v2], signal());

    // Assess: acknowledged, not errors, and the item is still v3.
    expect(late.failed).toEqual([]);
    expect(replay.failed).toEqual([]);
    expect(afterLate).toMatchObject({ Version: 3 });
    expect(await getItem(tableName, { PK: 'USER#1', SK: 'TASK#1' })).toMatchObject({ Version: 3, _cdcSeq: v3.meta.sequenceNumber.padStart(40, '0') });
  });

  it('compares positions as numbers, whatever their digit count or leading zeros (DynamoDB Local pads to 21 digits)', async () => {
    // Prepare: item 1 at 99 then 100 (as strings, 99 sorts after 100); item 2 at 100 then 101 as
    // DynamoDB Local writes it, padded to 21 digits (as strings, below 100).
    const tableName = await newTable();
    const sink = dynamoDb<Task>({ tableName, client });
    const records = streamRecords();
    const changes = [
      [records.insert(task(1, 1), { sequenceNumber: '99' }), records.modify(task(1, 1), task(1, 2), { sequenceNumber: '100' })],
      [records.insert(task(2, 1), { sequenceNumber: '100' }), records.modify(task(2, 1), task(2, 2), { sequenceNumber: '000000000000000000101' })],
    ].map((pair) => pair.map((r) => decodeRecord<Task>(r)) as [ChangeEvent<Task>, ChangeEvent<Task>]);

    // Act: each older change, its newer one, then the older again.
    for (const [older, newer] of changes) {
      await sink.send([older], signal());
      await sink.send([newer], signal());
      await sink.send([older], signal());
    }

    // Assess
    expect(await getItem(tableName, { PK: 'USER#1', SK: 'TASK#1' })).toMatchObject({ Version: 2 });
    expect(await getItem(tableName, { PK: 'USER#2', SK: 'TASK#2' })).toMatchObject({ Version: 2 });
  });

  it('leaves a tombstone on remove that a late older write cannot bring back, and a newer insert replaces it', async () => {
    // Prepare
    const tableName = await newTable();
    const sink = dynamoDb<Task>({ tableName, client, tombstoneTtl: { attribute: 'expiresAt', seconds: 3600 } });
    const records = streamRecords();
    const [insert, modify, remove, again] = [
      records.insert(task(1, 1)),
      records.modify(task(1, 1), task(1, 2)),
      records.remove(task(1, 2)),
      records.insert(task(1, 7)),
    ].map((r) => decodeRecord<Task>(r)) as ChangeEvent<Task>[];
    await sink.send([insert as ChangeEvent<Task>], signal());

    // Act: the remove lands before the modify it follows (a late re-delivery of the modify).
    const removed = await sink.send([remove as ChangeEvent<Task>], signal());
    const late = await sink.send([modify as ChangeEvent<Task>], signal());
    const tombstone = await getItem(tableName, { PK: 'USER#1', SK: 'TASK#1' });
    await sink.send([again as ChangeEvent<Task>], signal());

    // Assess
    expect(removed.failed).toEqual([]);
    expect(late.failed).toEqual([]);
    expect(tombstone).toEqual({
      PK: 'USER#1',
      SK: 'TASK#1',
      _cdcSeq: (remove as ChangeEvent<Task>).meta.sequenceNumber.padStart(40, '0'),
      _cdcDeleted: true,
      expiresAt: Math.floor((remove as ChangeEvent<Task>).meta.approximateCreationTime / 1000) + 3600,
    });
    expect(await getItem(tableName, { PK: 'USER#1', SK: 'TASK#1' })).toEqual({ ...task(1, 7), _cdcSeq: (again as ChangeEvent<Task>).meta.sequenceNumber.padStart(40, '0') });
  });

  it('writes a backfilled item only where no stream change has written one, and never stamps it with a position (docs/backfill.md)', async () => {
    // Prepare
    const tableName = await newTable();
    const sink = dynamoDb({ tableName, client });
    const records = streamRecords();
    const started = Date.now();
    const ctx = { streamArn: 'arn:aws:dynamodb:us-east-1:000000000000:table/T/stream/x', region: 'us-east-1', keyNames: ['PK', 'SK'], info: { id: 'b1', segment: 0, totalSegments: 1, startedAt: started, scannedAt: started } };
    const scanned = (k: number, status: string) => decodeRecord(backfillRecord(marshall(task(k, 1, { Status: status })), ctx));
    // Item 1: a stream change landed first (newer than the scan); item 2: removed by the stream; item 3: backfill only.
    await sink.send([decodeRecord(records.insert(task(1, 2, { Status: 'DONE' })))], signal());
    await sink.send([decodeRecord(records.remove(task(2, 1)))], signal());

    // Act
    const result = await sink.send([scanned(1, 'STALE'), scanned(2, 'RESURRECTED'), scanned(3, 'OPEN')], signal());
    const later = await sink.send([decodeRecord(records.modify(task(3, 1), task(3, 2, { Status: 'DONE' })))], signal());

    // Assess
    expect(result.failed).toEqual([]);
    expect(later.failed).toEqual([]);
    expect(await getItem(tableName, { PK: 'USER#1', SK: 'TASK#1' })).toMatchObject({ Status: 'DONE' });
    expect(await getItem(tableName, { PK: 'USER#2', SK: 'TASK#2' })).toMatchObject({ _cdcDeleted: true });
    const third = await getItem(tableName, { PK: 'USER#3', SK: 'TASK#3' });
    expect(third).toMatchObject({ Status: 'DONE' });
    expect(typeof third?.['_cdcSeq']).toBe('string');
  });

  it('maps keys and items, and takes an item out of the view when `item` returns undefined', async () => {
    // Prepare: a view of open tasks keyed by one attribute.
    const tableName = await newTable({ partitionKey: 'id' });
    const sink = dynamoDb<Task>({
      tableName,
      client,
      key: (e) => ({ id: `${e.key['PK'] as string}|${e.key['SK'] as string}` }),
      item: (e) => (e.newImage?.Status === 'DONE' ? undefined : { status: e.newImage?.Status, version: e.newImage?.Version }),
    });
    const records = streamRecords();
    const events = [records.insert(task(1, 1)), records.insert(task(2, 1)), records.modify(task(2, 1), task(2, 2, { Status: 'DONE' }))].map((r) => decodeRecord<Task>(r));

    // Act
    const { failed } = await sink.send(events, signal());

    // Assess
    expect(failed).toEqual([]);
    expect(await getItem(tableName, { id: 'USER#1|TASK#1' })).toMatchObject({ status: 'OPEN', version: 1 });
    expect(await getItem(tableName, { id: 'USER#2|TASK#2' })).toMatchObject({ _cdcDeleted: true });
    expect((await getItem(tableName, { id: 'USER#2|TASK#2' }))?.['status']).toBeUndefined();
  });

  it('writes one item’s changes of one request in order, and reports per-item failures: too large and invalid are permanent', async () => {
    // Prepare: three changes of item 1, one item over 400 KB, one whose key has the wrong type, one fine.
    const tableName = await newTable();
    const records = streamRecords();
    const sink = dynamoDb<Task>({ tableName, client, key: (e) => (e.key['PK'] === 'USER#4' ? { PK: 4, SK: 'TASK#4' } : e.key) });
    const events = [
      records.insert(task(1, 1)),
      records.modify(task(1, 1), task(1, 2)),
      records.insert(task(3, 1, { Body: 'x'.repeat(410 * 1024) })),
      records.insert(task(4, 1)),
      records.modify(task(1, 2), task(1, 3)),
      records.insert(task(5, 1)),
    ].map((r) => decodeRecord<Task>(r));

    // Act
    const { failed } = await sink.send(events, signal());

    // Assess
    expect(failed.map((f) => f.index)).toEqual([2, 3]);
    expect(failed[0]?.error).toBeInstanceOf(ItemTooLargeError);
    expect((failed[0]?.error as Error).message).toContain('400 KB');
    expect(classify(failed[0]?.error)).toBe('PERMANENT');
    expect((failed[1]?.error as Error).name).toBe('ValidationException');
    expect(classify(failed[1]?.error)).toBe('PERMANENT');
    expect(await getItem(tableName, { PK: 'USER#1', SK: 'TASK#1' })).toMatchObject({ Version: 3 });
    expect(await getItem(tableName, { PK: 'USER#5', SK: 'TASK#5' })).toMatchObject({ Version: 1 });
    expect(await scan(tableName)).toHaveLength(2);
  });

  it('through the engine: dead-letters the oversized change, delivers the rest, and a replay of the batch changes nothing', async () => {
    // Prepare
    const tableName = await newTable();
    const dlq = new MemoryDeadLetterQueue();
    const sink = dynamoDb<Task>({ tableName, client });
    const app = defineApp({ table: 'TaskApp', routes: [route('*').to(sink)], deadLetter: dlq, retry: { maxAttempts: 2, baseDelayMs: 0, maxDelayMs: 0 } });
    const engine = new Engine({ app, logger: memoryLogger(), clock: new FakeClock() });
    const records = streamRecords();
    const batch = [
      ...Array.from({ length: 5 }, (_, k) => records.insert(task(k, 1))),
      ...Array.from({ length: 5 }, (_, k) => records.modify(task(k, 1), task(k, 2))),
      records.modify(task(2, 2), task(2, 3, { Body: 'x'.repeat(410 * 1024) })),
      records.remove(task(4, 2)),
    ];

    // Act
    const first = await engine.process(batch);
    const before = await scan(tableName);
    const replay = await engine.process(batch.slice(0, 6));

    // Assess
    expect(first.watermark).toBe(batch.length);
    expect(first.counts['dead-lettered']).toBe(1);
    expect(dlq.letters.map((l) => l.error.name)).toEqual(['ItemTooLargeError']);
    expect(replay.counts.delivered).toBe(6);
    expect(await scan(tableName)).toEqual(expect.arrayContaining(before));
    const items = new Map(before.map((i) => unmarshall(i)).map((i) => [i['PK'] as string, i]));
    expect([0, 1, 2, 3].map((k) => items.get(`USER#${k}`)?.['Version'])).toEqual([2, 2, 2, 2]);
    expect(items.get('USER#4')).toMatchObject({ _cdcDeleted: true });
  });

  it('a projection built from a real stream, with batches re-delivered out of order, equals the source table', async () => {
    // Prepare: random puts, updates and deletes on 12 items of a source table with a stream.
    const random = seededRandom(7);
    const source = await createTable(client, { tableName: uniqueTableName('source'), partitionKey: 'PK', sortKey: 'SK', streamViewType: 'NEW_AND_OLD_IMAGES' });
    tables.push(source);
    const target = await newTable();
    let writes = 0;
    for (let i = 0; i < 150; i++) {
      const k = Math.floor(random() * 12);
      const Key = marshall({ PK: `USER#${k}`, SK: `TASK#${k}` });
      const roll = random();
      if (roll < 0.5) await client.send(new PutItemCommand({ TableName: source, Item: marshall({ ...task(k, i), Tags: new Set([`t${i % 3}`]) }) }));
      else if (roll < 0.8) await client.send(new UpdateItemCommand({ TableName: source, Key, UpdateExpression: 'SET Version = :v, #s = :s', ExpressionAttributeNames: { '#s': 'Status' }, ExpressionAttributeValues: marshall({ ':v': i, ':s': i % 2 ? 'DONE' : 'OPEN' }) }));
      else await client.send(new DeleteItemCommand({ TableName: source, Key }));
      writes++;
    }
    const streams = new DynamoDBStreamsClient(localClientConfig(inject('dynamoEndpoint')));
    const { Table } = await client.send(new DescribeTableCommand({ TableName: source }));
    const records = await readWholeStream(streams, Table?.LatestStreamArn as string, writes);
    streams.destroy();
    const app = defineApp({ table: source, routes: [route('*').to(dynamoDb({ tableName: target, client }))] });
    const handler = createStreamHandler(app, { logger: memoryLogger() });
    const context = { getRemainingTimeInMillis: () => 60_000 };

    // Act: batches in order, then earlier stretches delivered again, late and out of order.
    for (let at = 0; at < records.length; at += 25) await handler({ Records: records.slice(at, at + 25) }, context);
    for (const [from, to] of [[40, 90], [0, 30], [100, records.length], [10, 60]] as const) await handler({ Records: records.slice(from, to) }, context);

    // Assess: the live items of the target are the source's items, attribute for attribute.
    const strip = (items: Record<string, AttributeValue>[]) =>
      items
        .map((i) => unmarshall(i))
        .filter((i) => i['_cdcDeleted'] !== true)
        .map(({ _cdcSeq, ...rest }) => rest)
        .sort((a, b) => String(a['PK']).localeCompare(String(b['PK'])));
    const expected = strip(await scan(source));
    expect(records.length).toBeGreaterThan(100);
    expect(expected.length).toBeGreaterThan(0);
    expect(strip(await scan(target))).toEqual(expected);
  });
});
