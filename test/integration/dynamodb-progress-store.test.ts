import type { AttributeValue, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.js';
import { dynamoDbProgressStore, progressTableDefinition } from '../../src/lambda/index.js';
import type { ProgressKey } from '../../src/ports.js';
import { FakeClock } from '../../src/testing/clock.js';
import { createTable, deleteTable, localClient, uniqueTableName } from '../support/dynamo.js';

const STREAM_ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/TaskApp/stream/2026-01-01T00:00:00.000';
const ITEM_LIMIT_BYTES = 400 * 1024;

/** Sequence numbers as a shard hands them out: 21+ digits, increasing by uneven steps. */
const sequenceNumbers = (count: number, start = 49_039_552_900_000_000_000_000_000_001n): Set<string> => {
  const out = new Set<string>();
  let n = start;
  for (let i = 0; i < count; i++) {
    n += BigInt(1 + ((i * 7919) % 200_000));
    out.add(n.toString());
  }
  return out;
};

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

  it('round-trips 10,000 sequence numbers exactly in an item well under 400 KB', async () => {
    // Prepare
    const store = dynamoDbProgressStore({ tableName, client });
    const done = sequenceNumbers(10_000);
    const position: ProgressKey = { streamArn: STREAM_ARN, sequenceNumber: '49039552900000000000000000000' };

    // Act
    await store.save(position, done);
    const loaded = await store.load(position);

    // Assess
    expect(loaded).toEqual(done);
    const { Item: item } = await client.send(new GetItemCommand({ TableName: tableName, Key: { pk: { S: `${STREAM_ARN}#${position.sequenceNumber}` } } }));
    expect(item?.['count']).toEqual({ N: '10000' });
    expect(itemSize(item ?? {})).toBeLessThan(ITEM_LIMIT_BYTES / 4);
  });

  it('round-trips 10,000 random 40-digit sequence numbers within the item limit', async () => {
    // Prepare
    const store = dynamoDbProgressStore({ tableName, client });
    const done = new Set<string>();
    let seed = 12_345n;
    while (done.size < 10_000) {
      seed = (seed * 6_364_136_223_846_793_005n + 1_442_695_040_888_963_407n) % 2n ** 133n;
      done.add((10n ** 39n + (seed % (9n * 10n ** 39n))).toString());
    }
    const position: ProgressKey = { streamArn: STREAM_ARN, sequenceNumber: '1' };

    // Act
    await store.save(position, done);
    const loaded = await store.load(position);

    // Assess
    expect(loaded).toEqual(done);
    const { Item: item } = await client.send(new GetItemCommand({ TableName: tableName, Key: { pk: { S: `${STREAM_ARN}#1` } } }));
    expect(itemSize(item ?? {})).toBeLessThan(ITEM_LIMIT_BYTES);
  });

  it('keeps sequence numbers that are not canonical decimals verbatim', async () => {
    // Prepare
    const store = dynamoDbProgressStore({ tableName, client });
    const done = new Set(['100', '0', '007', '', 'x,y\nz', '99999999999999999999999']);
    const position: ProgressKey = { streamArn: STREAM_ARN, sequenceNumber: '5' };

    // Act
    await store.save(position, done);
    const loaded = await store.load(position);

    // Assess
    expect(loaded).toEqual(done);
  });

  it('returns undefined for a position with no record', async () => {
    // Prepare
    const store = dynamoDbProgressStore({ tableName, client });
    await store.save({ streamArn: STREAM_ARN, sequenceNumber: '100' }, new Set(['101']));

    // Act
    const loaded = await store.load({ streamArn: STREAM_ARN, sequenceNumber: '200' });

    // Assess
    expect(loaded).toBeUndefined();
  });

  it('sends one GetItem per load and one PutItem per save', async () => {
    // Prepare
    const sent = countCommands(client);
    const store = dynamoDbProgressStore({ tableName, client });
    const position: ProgressKey = { streamArn: STREAM_ARN, sequenceNumber: '300' };
    try {
      // Act
      await store.save(position, sequenceNumbers(10_000, 301n));
      const afterSave = [...sent];
      await store.load(position);
      await store.load({ streamArn: STREAM_ARN, sequenceNumber: '999' });

      // Assess
      expect(afterSave).toEqual(['PutItemCommand']);
      expect(sent).toEqual(['PutItemCommand', 'GetItemCommand', 'GetItemCommand']);
    } finally {
      client.middlewareStack.remove('countCommands');
    }
  });

  it('ignores a record whose expiresAt has passed, even when TTL has not deleted it yet', async () => {
    // Prepare
    const clock = new FakeClock(Date.UTC(2026, 0, 1));
    const store = dynamoDbProgressStore({ tableName, client, clock, ttlSeconds: 3600 });
    const position: ProgressKey = { streamArn: STREAM_ARN, sequenceNumber: '400' };
    await store.save(position, new Set(['401', '402']));

    // Act
    clock.advance(3599_000);
    const beforeExpiry = await store.load(position);
    clock.advance(1_000);
    const atExpiry = await store.load(position);

    // Assess
    expect(beforeExpiry).toEqual(new Set(['401', '402']));
    expect(atExpiry).toBeUndefined();
    const { Item: item } = await client.send(new GetItemCommand({ TableName: tableName, Key: { pk: { S: `${STREAM_ARN}#400` } } }));
    expect(item?.['expiresAt']).toEqual({ N: String(Date.UTC(2026, 0, 1) / 1000 + 3600) });
  });

  it('rejects a missing table name with a ConfigError that names the field', () => {
    // Prepare
    const options = { tableName: '' };

    // Act
    const act = () => dynamoDbProgressStore(options);

    // Assess
    expect(act).toThrow(ConfigError);
    expect(act).toThrow(/`progressStore\.tableName` must be/);
  });
});
