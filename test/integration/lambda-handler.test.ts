import { DescribeTableCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBStreamsClient } from '@aws-sdk/client-dynamodb-streams';
import { readWholeStream } from '../../src/local/read-stream.js';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { defineApp, route } from '../../src/index.js';
import type { ChangeEvent } from '../../src/index.js';
import { createStreamHandler, dynamoDbProgressStore, progressTableDefinition } from '../../src/lambda/index.js';
import { memoryLogger, MemorySink, simulateEventSourceMapping } from '../../src/testing/index.js';
import type { LambdaStreamRecord } from '../../src/testing/index.js';
import { localClientConfig } from '../../src/local/dynamodb-local.js';
import { createTable, deleteTable, localClient, uniqueTableName } from '../support/dynamo.js';

const KEYS = 20;
const VERSIONS = 10;

describe('Lambda handler against DynamoDB Local', () => {
  let client: DynamoDBClient;
  let streams: DynamoDBStreamsClient;
  let table: string;
  let progressTable: string;
  let records: LambdaStreamRecord[];

  beforeAll(async () => {
    // Prepare: a TaskApp table with a stream, 200 changes over 20 tasks, and a progress table.
    client = localClient();
    streams = new DynamoDBStreamsClient(localClientConfig(inject('dynamoEndpoint')));
    table = await createTable(client, { tableName: uniqueTableName('TaskApp'), partitionKey: 'PK', sortKey: 'SK', streamViewType: 'NEW_AND_OLD_IMAGES' });
    progressTable = await createTable(client, progressTableDefinition(uniqueTableName('progress')));
    for (let k = 0; k < KEYS; k++) {
      await client.send(new PutItemCommand({ TableName: table, Item: { PK: { S: `USER#${k}` }, SK: { S: `TASK#${k}` }, Status: { S: 'OPEN' }, Version: { N: '1' } } }));
    }
    for (let v = 2; v <= VERSIONS; v++) {
      for (let k = 0; k < KEYS; k++) {
        await client.send(
          new UpdateItemCommand({
            TableName: table,
            Key: { PK: { S: `USER#${k}` }, SK: { S: `TASK#${k}` } },
            UpdateExpression: 'SET Version = :v, #s = :s',
            ConditionExpression: 'Version = :prev',
            ExpressionAttributeNames: { '#s': 'Status' },
            ExpressionAttributeValues: { ':v': { N: String(v) }, ':prev': { N: String(v - 1) }, ':s': { S: v === VERSIONS ? 'DONE' : 'IN_PROGRESS' } },
          }),
        );
      }
    }
    const { Table } = await client.send(new DescribeTableCommand({ TableName: table }));
    records = await readWholeStream(streams, Table?.LatestStreamArn as string, KEYS * VERSIONS);
  });

  afterAll(async () => {
    await deleteTable(client, table);
    await deleteTable(client, progressTable);
    client.destroy();
    streams.destroy();
  });

  it('delivers every change of a real stream once, in order per item, through failures and re-deliveries', async () => {
    // Prepare: without a DLQ, failing entries block their lanes, batches end partly done, Lambda
    // re-delivers from the watermark, and the DynamoDB progress store skips what was done.
    expect(records).toHaveLength(KEYS * VERSIONS);
    const sink = new MemorySink();
    sink.failWhere((e) => Number((e.newImage as { Version: number }).Version) % 4 === 2 && e.key['PK'] !== 'USER#0', { times: 2 });
    const progressClient = localClient();
    const commands: string[] = [];
    progressClient.middlewareStack.add((next, context) => (args) => (commands.push(String(context.commandName)), next(args)), { step: 'initialize' });
    const handler = createStreamHandler(defineApp({ table, routes: [route('*').to(sink)], retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 5 } }), {
      logger: memoryLogger(),
      progressStore: dynamoDbProgressStore({ tableName: progressTable, client: progressClient }),
    });
    const clock = { now: () => Date.now(), sleep: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)) };

    // Act
    const { invocations, checkpoint } = await simulateEventSourceMapping({ records, handler, clock, batchSize: 50 });

    // Assess: everything delivered exactly once and in per-item order.
    expect(checkpoint).toBe(records.length);
    expect(invocations.filter((i) => i.result === 'partial').length).toBeGreaterThan(0);
    const byKey = new Map<string, number[]>();
    for (const e of sink.delivered as ChangeEvent<{ Version: number }>[]) {
      const key = String(e.key['PK']);
      byKey.set(key, [...(byKey.get(key) ?? []), Number(e.newImage?.Version)]);
    }
    expect(byKey.size).toBe(KEYS);
    for (const versions of byKey.values()) expect(versions).toEqual(Array.from({ length: VERSIONS }, (_, i) => i + 1));
    // At most one read per batch, one write per partial failure.
    expect(commands.filter((c) => c === 'QueryCommand')).toHaveLength(invocations.length);
    expect(commands.filter((c) => c === 'PutItemCommand').length).toBeLessThanOrEqual(invocations.filter((i) => i.result === 'partial').length);
    expect(commands.filter((c) => c === 'PutItemCommand').length).toBeGreaterThan(0);
    progressClient.destroy();
  });
});
