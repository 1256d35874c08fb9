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

  it('sends nothing twice to a sink when Lambda re-batches retries, every invocation on a cold start (only the progress table remembers)', async () => {
    // Prepare: two sinks, each failing about 10 % of the entries once; one attempt per invocation,
    // no DLQ, so failures block and end batches partly done.
    const a = new MemorySink({ name: 'a' });
    const b = new MemorySink({ name: 'b' });
    let seed = 42;
    const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
    const unlucky = new Set(records.flatMap((r) => ['a', 'b'].filter(() => random() < 0.1).map((sink) => `${sink}${r.eventID}`)));
    a.failWhere((e) => unlucky.has(`a${e.eventID}`), { times: 1 });
    b.failWhere((e) => unlucky.has(`b${e.eventID}`), { times: 1 });
    const progressClient = localClient();
    const tableName = await createTable(client, progressTableDefinition(uniqueTableName('progress')));
    const app = defineApp({ table, routes: [route('*').to(a), route('*').to(b)], retry: { maxAttempts: 1 } });
    const progressStore = dynamoDbProgressStore({ tableName, client: progressClient });
    const context = { getRemainingTimeInMillis: () => 60_000 };
    let checkpoint = 0;
    let size = 30;
    let partial = 0;

    // Act: after a partial failure the retry may be shorter or longer; one in five partly failed
    // invocations fails anyway, and Lambda retries the whole batch or its first half.
    for (let n = 0; checkpoint < records.length && n < 500; n++) {
      const batch = records.slice(checkpoint, checkpoint + size);
      size = 1 + Math.floor(random() * 40);
      const handler = createStreamHandler(app, { logger: memoryLogger(), progressStore });
      const failed = (await handler({ Records: batch }, context)).batchItemFailures[0]?.itemIdentifier;
      if (failed === undefined) {
        checkpoint += batch.length;
        continue;
      }
      partial++;
      if (random() < 0.2) {
        if (random() < 0.5) size = Math.ceil(batch.length / 2);
      } else {
        checkpoint += batch.findIndex((r) => r.dynamodb.SequenceNumber === failed);
      }
    }

    // Assess: each sink acknowledged each change exactly once, in order per item.
    expect(checkpoint).toBe(records.length);
    expect(partial).toBeGreaterThan(5);
    for (const sink of [a, b]) {
      const byKey = new Map<string, number[]>();
      for (const e of sink.delivered as ChangeEvent<{ Version: number }>[]) byKey.set(String(e.key['PK']), [...(byKey.get(String(e.key['PK'])) ?? []), Number(e.newImage?.Version)]);
      expect([...byKey.values()]).toEqual(Array(KEYS).fill(Array.from({ length: VERSIONS }, (_, i) => i + 1)));
    }
    progressClient.destroy();
    await deleteTable(client, tableName);
  });
});
