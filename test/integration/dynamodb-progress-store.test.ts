import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { dynamoDbProgressStore, progressTableDefinition } from '../../src/lambda/index.js';
import type { Progress } from '../../src/ports.js';
import { FakeClock } from '../../src/testing/clock.js';
import { createTable, deleteTable, localClient, uniqueTableName } from '../support/dynamo.js';

const STREAM_ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/TaskApp/stream/2026-01-01T00:00:00.000';
const OTHER_STREAM_ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/TaskApp/stream/2026-02-01T00:00:00.000';
const ITEM_LIMIT_BYTES = 400 * 1024;
const SINKS = ['task-events', 'audit-queue', 'data-lake', 'search-index'];

/** Sequence numbers as a shard hands them out: 21+ digits, increasing by uneven steps. */
const sequenceNumbers = (count: number, start = 49_039_552_900_000_000_000_000_000_001n): string[] => {
  const out: string[] = [];
  let n = start;
  for (let i = 0; i < count; i++) {
    n += BigInt(1 + ((i * 7919) % 200_000));
    out.push(n.toString());
  }
  return out;
};

/**
 * A progress record for `seqs` as a 10,000-record batch leaves it: 9 in 10 done, the rest
 * acknowledged by some of four sinks (or none).
 */
const progressOf = (seqs: readonly string[], streamArn = STREAM_ARN): Progress => {
  const done = new Set<string>();
  const acknowledged = new Map<string, Set<string>>();
  seqs.forEach((s, i) => {
    if (i % 10 !== 3) done.add(s);
    else acknowledged.set(s, new Set(SINKS.filter((_, k) => (i >> k) & 1)));
  });
  return { streamArn, sequenceNumber: seqs[0] as string, done, acknowledged };
};

const key = (streamArn: string, seq: string) => ({ pk: { S: streamArn }, sk: { S: seq.padStart(40, '0') } });

/** An item's size as DynamoDB counts it: attribute names plus values. */
const itemSize = (item: Record<string, AttributeValue>): number => {
  let size = 0;
  for (const [name, value] of Object.entries(item)) {
    size += Buffer.byteLength(name);
    if (value.S !== undefined) size += Buffer.byteLength(value.S);
    else if (value.N !== undefined) size += value.N.length;
    else if (value.B !== undefined) size += value.B.byteLength;
  }
  return size;
};

/** Counts the commands a client sends, by name. */
const countCommands = (client: DynamoDBClient): string[] => {
  const sent: string[] = [];
  client.middlewareStack.add(
    (next, context) => async (args) => {
      sent.push(context.commandName ?? 'unknown');
      return next(args);
    },
    { step: 'initialize', name: 'countCommands' },
  );
  return sent;
};

const signal = () => new AbortController().signal;

describe('dynamoDbProgressStore', () => {
  let client: DynamoDBClient;
  let tableName: string;
  const tables: string[] = [];

  beforeAll(() => {
    client = localClient();
  });

  beforeEach(async () => {
    tableName = await createTable(client, progressTableDefinition(uniqueTableName('progress')));
    tables.push(tableName);
  });

  afterAll(async () => {
    for (const t of tables) await deleteTable(client, t);
    client.destroy();
  });

  it('round-trips the record of a 10,000-record batch, with per-sink acknowledgements, in an item well under 400 KB', async () => {
    // Prepare
    const store = dynamoDbProgressStore({ tableName, client });
    const progress = progressOf(sequenceNumbers(10_000));

    // Act
    await store.save(progress, signal());
    const loaded = await store.load(progress, signal());

    // Assess
    expect(loaded).toEqual([progress]);
    const { Item: item } = await client.send(new GetItemCommand({ TableName: tableName, Key: key(STREAM_ARN, progress.sequenceNumber) }));
    expect(item?.['count']).toEqual({ N: '10000' });
    expect(itemSize(item ?? {})).toBeLessThan(ITEM_LIMIT_BYTES / 10);
  });

  it('round-trips 10,000 random 40-digit sequence numbers within the item limit', async () => {
    // Prepare: the worst case for the delta encoding (real shards are dense).
    const store = dynamoDbProgressStore({ tableName, client });
    const seqs = new Set<string>();
    let seed = 12_345n;
    while (seqs.size < 10_000) {
      seed = (seed * 6_364_136_223_846_793_005n + 1_442_695_040_888_963_407n) % 2n ** 133n;
      seqs.add((10n ** 39n + (seed % (9n * 10n ** 39n))).toString());
    }
    const sorted = [...seqs].sort((a, b) => (BigInt(a) < BigInt(b) ? -1 : 1));
    const progress = progressOf(sorted);

    // Act
    await store.save(progress, signal());
    const loaded = await store.load(progress, signal());

    // Assess
    expect(loaded).toEqual([progress]);
    const { Item: item } = await client.send(new GetItemCommand({ TableName: tableName, Key: key(STREAM_ARN, progress.sequenceNumber) }));
    expect(itemSize(item ?? {})).toBeLessThan(ITEM_LIMIT_BYTES);
  });

  it('finds the records keyed at or before a position that mention something at or after it, newest first, across a digit-length boundary', async () => {
    // Prepare: keys 99 and 998 (shorter numbers) before 1000; a record that ends before the
    // position; one after it; one of another stream.
    const store = dynamoDbProgressStore({ tableName, client });
    const record = (streamArn: string, sequenceNumber: string, done: string[]): Progress => ({ streamArn, sequenceNumber, done: new Set(done), acknowledged: new Map() });
    const covering = record(STREAM_ARN, '99', ['99', '1005']);
    const coveringToo = record(STREAM_ARN, '998', ['999', '1001']);
    const endsBefore = record(STREAM_ARN, '500', ['501', '999']);
    const after = record(STREAM_ARN, '1001', ['1002']);
    const otherStream = record(OTHER_STREAM_ARN, '998', ['1003']);
    for (const p of [covering, coveringToo, endsBefore, after, otherStream]) await store.save(p, signal());

    // Act
    const loaded = await store.load({ streamArn: STREAM_ARN, sequenceNumber: '1000' }, signal());

    // Assess
    expect(loaded).toEqual([coveringToo, covering]);
  });

  it('keeps the blind flag, and returns a blind record for every position after its key', async () => {
    // Prepare
    const store = dynamoDbProgressStore({ tableName, client });
    const blind: Progress = { streamArn: STREAM_ARN, sequenceNumber: '50', done: new Set(['51']), acknowledged: new Map(), blind: true };
    await store.save(blind, signal());

    // Act
    const loaded = await store.load({ streamArn: STREAM_ARN, sequenceNumber: '9'.repeat(30) }, signal());

    // Assess
    expect(loaded).toEqual([blind]);
  });

  it('reads at most lookBack records, the newest first', async () => {
    // Prepare: three records that all cover 1000.
    const store = dynamoDbProgressStore({ tableName, client, lookBack: 2 });
    for (const seq of ['10', '20', '30']) await store.save({ streamArn: STREAM_ARN, sequenceNumber: seq, done: new Set(['1000']), acknowledged: new Map() }, signal());

    // Act
    const loaded = await store.load({ streamArn: STREAM_ARN, sequenceNumber: '1000' }, signal());

    // Assess
    expect(loaded.map((p) => p.sequenceNumber)).toEqual(['30', '20']);
  });

  it('returns nothing for a position no record knows about', async () => {
    // Prepare
    const store = dynamoDbProgressStore({ tableName, client });
    await store.save({ streamArn: STREAM_ARN, sequenceNumber: '100', done: new Set(['101']), acknowledged: new Map() }, signal());

    // Act
    const loaded = await store.load({ streamArn: STREAM_ARN, sequenceNumber: '200' }, signal());

    // Assess
    expect(loaded).toEqual([]);
  });

  it('sends one Query per load and one PutItem per save', async () => {
    // Prepare
    const sent = countCommands(client);
    const store = dynamoDbProgressStore({ tableName, client });
    const progress = progressOf(sequenceNumbers(10_000, 301n));
    try {
      // Act
      await store.save(progress, signal());
      const afterSave = [...sent];
      await store.load(progress, signal());
      await store.load({ streamArn: STREAM_ARN, sequenceNumber: '999' }, signal());

      // Assess
      expect(afterSave).toEqual(['PutItemCommand']);
      expect(sent).toEqual(['PutItemCommand', 'QueryCommand', 'QueryCommand']);
    } finally {
      client.middlewareStack.remove('countCommands');
    }
  });

  it('aborts its request when the signal aborts', async () => {
    // Prepare
    const store = dynamoDbProgressStore({ tableName, client });
    const aborted = AbortSignal.abort(new Error('deadline'));

    // Act
    const load = store.load({ streamArn: STREAM_ARN, sequenceNumber: '1' }, aborted);
    const save = store.save({ streamArn: STREAM_ARN, sequenceNumber: '1', done: new Set(['2']), acknowledged: new Map() }, aborted);

    // Assess: nothing was written.
    await expect(load).rejects.toThrow();
    await expect(save).rejects.toThrow();
    const { Item: item } = await client.send(new GetItemCommand({ TableName: tableName, Key: key(STREAM_ARN, '1') }));
    expect(item).toBeUndefined();
  });

  it('ignores a record whose expiresAt has passed, even when TTL has not deleted it yet', async () => {
    // Prepare
    const clock = new FakeClock(Date.UTC(2026, 0, 1));
    const store = dynamoDbProgressStore({ tableName, client, clock, ttlSeconds: 3600 });
    const progress: Progress = { streamArn: STREAM_ARN, sequenceNumber: '400', done: new Set(['401', '402']), acknowledged: new Map([['403', new Set(['a'])]]) };
    await store.save(progress, signal());

    // Act
    clock.advance(3599_000);
    const beforeExpiry = await store.load(progress, signal());
    clock.advance(1_000);
    const atExpiry = await store.load(progress, signal());

    // Assess
    expect(beforeExpiry).toEqual([progress]);
    expect(atExpiry).toEqual([]);
    const { Item: item } = await client.send(new GetItemCommand({ TableName: tableName, Key: key(STREAM_ARN, '400') }));
    expect(item?.['expiresAt']).toEqual({ N: String(Date.UTC(2026, 0, 1) / 1000 + 3600) });
  });

  it('rejects a sequence number that is not a canonical decimal, naming it', async () => {
    // Prepare
    const store = dynamoDbProgressStore({ tableName, client });

    // Act
    const save = store.save({ streamArn: STREAM_ARN, sequenceNumber: '5', done: new Set(['007']), acknowledged: new Map() }, signal());

    // Assess
    await expect(save).rejects.toThrow(/got `007`/);
  });

  it('rejects a missing table name and a bad lookBack with a ConfigError that names the field', () => {
    // Act
    const noName = () => dynamoDbProgressStore({ tableName: '' });
    const badLookBack = () => dynamoDbProgressStore({ tableName: 'progress', lookBack: 0 });

    // Assess
    expect(noName).toThrow(ConfigError);
    expect(noName).toThrow(/`progressStore\.tableName` must be/);
    expect(badLookBack).toThrow(/`progressStore\.lookBack` must be an integer >= 1, got `0`/);
  });
});
