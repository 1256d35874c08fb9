import { DescribeTableCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DescribeStreamCommand, DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import type { _Record, DescribeStreamCommandInput, Shard } from '@aws-sdk/client-dynamodb-streams';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { localClientConfig } from '../../src/local/dynamodb-local.js';
import { FakeClock } from '../../src/testing/index.js';
import { dynamoDbStreamsApi } from '../../src/worker/dynamodb-streams-api.js';
import type { StreamsApi } from '../../src/worker/ports.js';
import { createTable, deleteTable, localClient, uniqueTableName } from '../support/dynamo.js';

const ITEMS = 6;

const serviceError = (name: string, message = name) => Object.assign(new Error(message), { name, $fault: 'client', $metadata: { httpStatusCode: 400 } });

/** Reads a shard from `iterator` until `count` records arrived; DynamoDB Local may answer a poll with none. */
const readRecords = async (api: StreamsApi, iterator: string, count: number, limit = 100): Promise<_Record[]> => {
  const out: _Record[] = [];
  let next: string | undefined = iterator;
  for (let polls = 0; next !== undefined && out.length < count && polls < 20; polls++) {
    const page = await api.getRecords(next, limit);
    out.push(...(page.records as _Record[]));
    next = page.nextIterator;
  }
  return out;
};

const keyOf = (r: _Record | undefined) => r?.dynamodb?.Keys?.['PK']?.S;

describe('dynamoDbStreamsApi against DynamoDB Local', () => {
  let tables: DynamoDBClient;
  let streams: DynamoDBStreamsClient;
  let api: StreamsApi;
  let table: string;
  let streamArn: string;

  beforeAll(async () => {
    // Prepare: a table with a stream and ITEMS inserts, in order.
    tables = localClient();
    streams = new DynamoDBStreamsClient(localClientConfig(inject('dynamoEndpoint')));
    api = dynamoDbStreamsApi({ client: streams });
    table = await createTable(tables, { tableName: uniqueTableName('streams-api'), partitionKey: 'PK', streamViewType: 'NEW_AND_OLD_IMAGES' });
    for (let i = 0; i < ITEMS; i++) {
      await tables.send(new PutItemCommand({ TableName: table, Item: { PK: { S: `ITEM#${i}` }, Version: { N: String(i) } } }));
    }
    const { Table } = await tables.send(new DescribeTableCommand({ TableName: table }));
    streamArn = Table?.LatestStreamArn as string;
  });

  afterAll(async () => {
    await deleteTable(tables, table);
    tables.destroy();
    streams.destroy();
  });

  it('describes the open shard of the stream', async () => {
    // Act
    const shards = await api.describeShards(streamArn);

    // Assess
    expect(shards.length).toBeGreaterThanOrEqual(1);
    for (const shard of shards) {
      expect(shard.shardId).toMatch(/^shardId-/);
      expect(shard.startingSequenceNumber).toMatch(/^[0-9]+$/);
      expect(shard.endingSequenceNumber).toBeUndefined();
    }
  });

  it('reads the records from TRIM_HORIZON in order and in the GetRecords shape', async () => {
    // Prepare
    const [shard] = await api.describeShards(streamArn);
    const iterator = await api.getShardIterator(streamArn, shard?.shardId as string, { type: 'TRIM_HORIZON' });

    // Act
    const records = await readRecords(api, iterator, ITEMS);

    // Assess
    expect(records.map(keyOf)).toEqual(Array.from({ length: ITEMS }, (_, i) => `ITEM#${i}`));
    const sequenceNumbers = records.map((r) => BigInt(r.dynamodb?.SequenceNumber as string));
    expect(sequenceNumbers).toEqual([...sequenceNumbers].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    expect(new Set(sequenceNumbers).size).toBe(ITEMS);
    const first = records[0];
    expect(first).toMatchObject({ eventName: 'INSERT', eventSource: 'aws:dynamodb', dynamodb: { NewImage: { PK: { S: 'ITEM#0' }, Version: { N: '0' } }, StreamViewType: 'NEW_AND_OLD_IMAGES' } });
    expect(first?.dynamodb?.ApproximateCreationDateTime).toBeInstanceOf(Date);
    expect(first).not.toHaveProperty('eventSourceARN');
  });

  it('respects the limit of one GetRecords call', async () => {
    // Prepare
    const [shard] = await api.describeShards(streamArn);
    const iterator = await api.getShardIterator(streamArn, shard?.shardId as string, { type: 'TRIM_HORIZON' });

    // Act
    const page = await api.getRecords(iterator, 2);

    // Assess
    expect((page.records as _Record[]).map(keyOf)).toEqual(['ITEM#0', 'ITEM#1']);
    expect(page.nextIterator).toEqual(expect.any(String));
    expect((await readRecords(api, page.nextIterator as string, 1, 1)).map(keyOf)).toEqual(['ITEM#2']);
  });

  it('resumes after a sequence number, and reads at one', async () => {
    // Prepare
    const [shard] = await api.describeShards(streamArn);
    const shardId = shard?.shardId as string;
    const all = await readRecords(api, await api.getShardIterator(streamArn, shardId, { type: 'TRIM_HORIZON' }), ITEMS);
    const second = all[1]?.dynamodb?.SequenceNumber as string;

    // Act
    const after = await readRecords(api, await api.getShardIterator(streamArn, shardId, { type: 'AFTER_SEQUENCE_NUMBER', sequenceNumber: second }), ITEMS - 2);
    const at = await readRecords(api, await api.getShardIterator(streamArn, shardId, { type: 'AT_SEQUENCE_NUMBER', sequenceNumber: second }), ITEMS - 1);

    // Assess
    expect(after.map(keyOf)).toEqual(['ITEM#2', 'ITEM#3', 'ITEM#4', 'ITEM#5']);
    expect(at.map(keyOf)).toEqual(['ITEM#1', 'ITEM#2', 'ITEM#3', 'ITEM#4', 'ITEM#5']);
  });

  it('reads nothing from LATEST until a new change arrives', async () => {
    // Prepare: a table of its own, so the write below disturbs no other test.
    const own = await createTable(tables, { tableName: uniqueTableName('streams-api-latest'), partitionKey: 'PK', streamViewType: 'KEYS_ONLY' });
    try {
      await tables.send(new PutItemCommand({ TableName: own, Item: { PK: { S: 'BEFORE' } } }));
      const { Table } = await tables.send(new DescribeTableCommand({ TableName: own }));
      const arn = Table?.LatestStreamArn as string;
      const [shard] = await api.describeShards(arn);
      const iterator = await api.getShardIterator(arn, shard?.shardId as string, { type: 'LATEST' });
      const empty = await api.getRecords(iterator, 100);

      // Act
      await tables.send(new PutItemCommand({ TableName: own, Item: { PK: { S: 'AFTER' } } }));
      const records = await readRecords(api, empty.nextIterator as string, 1);

      // Assess
      expect(empty.records).toEqual([]);
      expect(records.map(keyOf)).toEqual(['AFTER']);
    } finally {
      await deleteTable(tables, own);
    }
  });

  it('finds no children of the open shard, without an error', async () => {
    // Prepare
    const [shard] = await api.describeShards(streamArn);

    // Act
    const children = await api.childShards(streamArn, shard?.shardId as string);

    // Assess
    expect(children).toEqual([]);
  });

  it('gets the children from DynamoDB Local in one filtered DescribeStream call', async () => {
    // Prepare: a client that records what it sends, so the fallback would show as a second call.
    const recording = new DynamoDBStreamsClient(localClientConfig(inject('dynamoEndpoint')));
    const sent: DescribeStreamCommandInput[] = [];
    recording.middlewareStack.add((next, context) => (args) => {
      if (context.commandName === 'DescribeStreamCommand') sent.push(args.input as DescribeStreamCommandInput);
      return next(args);
    }, { step: 'initialize' });
    const [shard] = await api.describeShards(streamArn);
    const shardId = shard?.shardId as string;

    // Act
    const children = await dynamoDbStreamsApi({ client: recording }).childShards(streamArn, shardId);

    // Assess: DynamoDB Local accepts ShardFilter and answers an open shard with no children.
    expect(children).toEqual([]);
    expect(sent).toEqual([{ StreamArn: streamArn, Limit: 100, ShardFilter: { Type: 'CHILD_SHARDS', ShardId: shardId } }]);
    recording.destroy();
  });

  it('keeps the service error names', async () => {
    // Prepare: a well-formed shard id that the stream does not have, and a stream that does not exist.
    const missingShard = 'shardId-00000000000000000000-00000000';
    const missingStream = streamArn.replace(table, uniqueTableName('missing'));

    // Act
    const [iterator, described] = await Promise.allSettled([
      api.getShardIterator(streamArn, missingShard, { type: 'TRIM_HORIZON' }),
      api.describeShards(missingStream),
    ]);

    // Assess
    expect(iterator).toMatchObject({ status: 'rejected', reason: { name: 'ResourceNotFoundException' } });
    expect(described).toMatchObject({ status: 'rejected', reason: { name: 'ResourceNotFoundException' } });
  });

  it('passes the abort signal to the client', async () => {
    // Prepare
    const [shard] = await api.describeShards(streamArn);
    const iterator = await api.getShardIterator(streamArn, shard?.shardId as string, { type: 'TRIM_HORIZON' });

    // Act
    const read = api.getRecords(iterator, 10, AbortSignal.abort());

    // Assess
    await expect(read).rejects.toMatchObject({ name: 'AbortError' });
  });
});

const STREAM_ARN = 'arn:aws:dynamodb:us-east-1:123456789012:table/TaskApp/stream/2026-01-01T00:00:00.000';
const shardId = (n: number) => `shardId-${String(n).padStart(20, '0')}-0000abcd`;
const shard = (n: number, parent?: number): Shard => ({
  ShardId: shardId(n),
  ...(parent !== undefined ? { ParentShardId: shardId(parent) } : {}),
  SequenceNumberRange: { StartingSequenceNumber: String(100 + n) },
});

/** A client whose DescribeStream is answered by `answer`, and a clock that moves only when slept on. */
const mocked = (answer: (input: DescribeStreamCommandInput) => Shard[] | { shards: Shard[]; last?: string } | Error) => {
  const client = new DynamoDBStreamsClient({ region: 'us-east-1' });
  const mock = mockClient(client);
  const clock = new FakeClock();
  const times: number[] = [];
  mock.on(DescribeStreamCommand).callsFake((input: DescribeStreamCommandInput) => {
    times.push(clock.now());
    const result = answer(input);
    if (result instanceof Error) throw result;
    const { shards, last } = Array.isArray(result) ? { shards: result, last: undefined } : result;
    return { StreamDescription: { StreamArn: input.StreamArn, Shards: shards, ...(last !== undefined ? { LastEvaluatedShardId: last } : {}) } };
  });
  const inputs = () => mock.commandCalls(DescribeStreamCommand).map((c) => c.args[0].input);
  return { api: dynamoDbStreamsApi({ client, clock }), clock, times, inputs };
};

describe('dynamoDbStreamsApi with a mocked client', () => {
  it('describes every page of a stream with 250 shards', async () => {
    // Prepare: pages of 100, 100 and 50 shards, each naming the last shard it holds until the end.
    const all = Array.from({ length: 250 }, (_, i) => shard(i));
    const { api, inputs } = mocked((input) => {
      const from = input.ExclusiveStartShardId === undefined ? 0 : all.findIndex((s) => s.ShardId === input.ExclusiveStartShardId) + 1;
      const page = all.slice(from, from + (input.Limit ?? 100));
      return { shards: page, ...(from + page.length < all.length ? { last: page.at(-1)?.ShardId } : {}) };
    });

    // Act
    const shards = await api.describeShards(STREAM_ARN);

    // Assess
    expect(shards.map((s) => s.shardId)).toEqual(all.map((s) => s.ShardId));
    expect(inputs().map((i) => [i.ExclusiveStartShardId, i.Limit])).toEqual([
      [undefined, 100],
      [shardId(99), 100],
      [shardId(199), 100],
    ]);
    expect(shards[7]).toEqual({ shardId: shardId(7), parentShardId: undefined, startingSequenceNumber: '107', endingSequenceNumber: undefined });
  });

  it('makes at most 10 DescribeStream calls in any second', async () => {
    // Prepare
    const { api, clock, times } = mocked(() => [shard(1)]);
    const start = clock.now();

    // Act: 25 callers at once.
    await Promise.all(Array.from({ length: 25 }, () => api.describeShards(STREAM_ARN)));

    // Assess
    expect(times).toHaveLength(25);
    expect(clock.now() - start).toBeGreaterThanOrEqual(2000);
    for (const t of times) expect(times.filter((u) => u >= t && u < t + 1000).length).toBeLessThanOrEqual(10);
  });

  it('retries a throttled DescribeStream with growing delays', async () => {
    // Prepare: the service throttles twice, then answers.
    let calls = 0;
    const { api, clock, times } = mocked(() => (++calls <= 2 ? serviceError('LimitExceededException', 'Rate exceeded') : [shard(1)]));
    const start = clock.now();

    // Act
    const shards = await api.describeShards(STREAM_ARN);

    // Assess
    expect(shards.map((s) => s.shardId)).toEqual([shardId(1)]);
    expect(times.map((t) => t - start)).toEqual([0, 200, 600]);
  });

  it('gives up on throttling after a few retries, keeping the error name', async () => {
    // Prepare
    const { api, times } = mocked(() => serviceError('LimitExceededException', 'Rate exceeded'));

    // Act
    const described = api.describeShards(STREAM_ARN);

    // Assess
    await expect(described).rejects.toMatchObject({ name: 'LimitExceededException' });
    expect(times).toHaveLength(5);
  });

  it('does not retry other errors', async () => {
    // Prepare
    const { api, times } = mocked(() => serviceError('ResourceNotFoundException', 'Requested resource not found'));

    // Act
    const described = api.describeShards(STREAM_ARN);

    // Assess
    await expect(described).rejects.toMatchObject({ name: 'ResourceNotFoundException' });
    expect(times).toHaveLength(1);
  });

  it('asks for the children of a shard with ShardFilter CHILD_SHARDS', async () => {
    // Prepare
    const { api, inputs } = mocked((input) => (input.ShardFilter ? [shard(2, 1), shard(3, 1)] : serviceError('UnexpectedCall')));

    // Act
    const children = await api.childShards(STREAM_ARN, shardId(1));

    // Assess
    expect(children.map((s) => [s.shardId, s.parentShardId])).toEqual([
      [shardId(2), shardId(1)],
      [shardId(3), shardId(1)],
    ]);
    expect(inputs()).toEqual([{ StreamArn: STREAM_ARN, Limit: 100, ShardFilter: { Type: 'CHILD_SHARDS', ShardId: shardId(1) } }]);
  });

  it('keeps only the children when the service ignores the filter', async () => {
    // Prepare
    const { api } = mocked(() => [shard(1), shard(2, 1), shard(3, 1), shard(4, 2)]);

    // Act
    const children = await api.childShards(STREAM_ARN, shardId(1));

    // Assess
    expect(children.map((s) => s.shardId)).toEqual([shardId(2), shardId(3)]);
  });

  it('falls back to the whole stream when the service rejects the filter, and stops sending it', async () => {
    // Prepare
    const { api, inputs } = mocked((input) => (input.ShardFilter ? serviceError('ValidationException', 'Unknown parameter ShardFilter') : [shard(1), shard(2, 1), shard(3, 1), shard(4, 2)]));

    // Act
    const first = await api.childShards(STREAM_ARN, shardId(1));
    const second = await api.childShards(STREAM_ARN, shardId(2));

    // Assess
    expect(first.map((s) => s.shardId)).toEqual([shardId(2), shardId(3)]);
    expect(second.map((s) => s.shardId)).toEqual([shardId(4)]);
    expect(inputs().map((i) => i.ShardFilter !== undefined)).toEqual([true, false, false]);
  });

  it('rejects at once when aborted while waiting for its turn', async () => {
    // Prepare: ten calls use up the second.
    const { api, times } = mocked(() => [shard(1)]);
    await Promise.all(Array.from({ length: 10 }, () => api.describeShards(STREAM_ARN)));
    const controller = new AbortController();

    // Act
    const described = api.describeShards(STREAM_ARN, controller.signal);
    controller.abort(new Error('shutting down'));

    // Assess
    await expect(described).rejects.toThrow('shutting down');
    expect(times).toHaveLength(10);
  });
});
